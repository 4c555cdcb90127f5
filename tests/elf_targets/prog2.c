/* Second translation unit of the test executable: a static with a clashing name. */
static __attribute__((noinline, used)) int dup_helper(int x) { return x * 7; }

int other_unit(int x) { return dup_helper(x); }
