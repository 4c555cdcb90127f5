/* A shared library for the live uprobe tests (found by name through /proc/PID/maps). */
__attribute__((noinline)) int ehk_lib_fn(int x) {
    __asm__ volatile("" ::: "memory");
    return x ^ 0x5a;
}
