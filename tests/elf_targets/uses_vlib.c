/* Executable importing vfoo from libvlib.so: resolving vfoo here must say "imported". */
int vfoo(int x);
int main(void) { return vfoo(1) == 3 ? 0 : 1; }
