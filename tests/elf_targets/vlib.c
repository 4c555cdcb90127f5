/* Test shared library: versioned symbols (two versions of vfoo), an IFUNC, a plain export. */
#include <stddef.h>

__attribute__((noinline)) int vfoo_old(int x) { return x + 1; }
__attribute__((noinline)) int vfoo_new(int x) { return x + 2; }
__asm__(".symver vfoo_old, vfoo@VLIB_1");
__asm__(".symver vfoo_new, vfoo@@VLIB_2");

int plain_export(int x) { return x * 2; }

static int ifunc_impl_generic(int x) { return x; }
static int ifunc_impl_fast(int x) { return x; }
static int (*resolve_pick(void))(int) {
    return sizeof(void *) == 8 ? ifunc_impl_fast : ifunc_impl_generic;
}
int picked(int x) __attribute__((ifunc("resolve_pick")));
