/* Target executable for tests/test_elf_*.py: every symbol kind a uprobe may name. */
#include <stdio.h>
#include <stdlib.h>

int other_unit(int x);

/* Static: only in .symtab (gone when stripped). */
static __attribute__((noinline, used)) int static_helper(int x) { return x * 3 + 1; }

/* Same static name as in prog2.c: two different LOCAL definitions. */
static __attribute__((noinline, used)) int dup_helper(int x) { return x + 11; }

/* A global function and an alias of it at the same address. */
__attribute__((noinline)) int target_func(int x) {
    int acc = 0;
    for (int i = 0; i < x; i++) acc += static_helper(i) ^ dup_helper(i);
    return acc;
}
int target_alias(int x) __attribute__((alias("target_func")));

/* A weak function. */
__attribute__((weak, noinline)) int weak_func(int x) { return x - 1; }

/* A function with no size (.size missing): st_size is 0. */
__asm__(".text\n.globl zero_size_func\n.type zero_size_func, @function\n"
        "zero_size_func:\n\tmov %edi, %eax\n\tret\n");
int zero_size_func(int x);

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    int r = target_func(n) + weak_func(n) + zero_size_func(n) + other_unit(n);
    printf("%d\n", r);
    return 0;
}
