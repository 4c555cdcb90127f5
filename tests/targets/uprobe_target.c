/* A target for the live uprobe tests: calls ehk_target() and ehk_ret() exactly N times.
 * Usage: uprobe_target N [wait]   (with "wait", it reads a line from stdin first,
 * so a test can attach a pid-filtered probe before the calls start). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) int ehk_target(int x) {
    __asm__ volatile("" ::: "memory");
    return x + 1;
}

__attribute__((noinline)) int ehk_ret(int x) {
    __asm__ volatile("" ::: "memory");
    return x * 2;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2 && strcmp(argv[2], "wait") == 0) {
        char line[16];
        if (!fgets(line, sizeof line, stdin)) return 2;
    }
    long sum = 0;
    for (int i = 0; i < n; i++) {
        sum += ehk_target(i);
        sum += ehk_ret(i);
    }
    printf("%ld\n", sum);
    return 0;
}
