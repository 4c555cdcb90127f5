/* A target for the live uprobe tests: calls ehk_target() and ehk_ret() exactly N times,
 * and libc's getppid() N times with "getppid", and ehk_lib_fn() of libehklib.so N times
 * with "lib" (when built with -DWITH_LIB).
 * Usage: uprobe_target N [wait] [getppid|lib]   (with "wait", it reads a line from stdin
 * first (after printing "ready"), so a test can attach a pid-filtered probe before the
 * calls start). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef WITH_LIB
int ehk_lib_fn(int x);
#endif

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
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin)) return 2;
    }
    const char *mode = argc > 3 ? argv[3] : "";
    long sum = 0;
    for (int i = 0; i < n; i++) {
        sum += ehk_target(i);
        sum += ehk_ret(i);
        if (strcmp(mode, "getppid") == 0) sum += getppid() > 0;
#ifdef WITH_LIB
        if (strcmp(mode, "lib") == 0) sum += ehk_lib_fn(i);
#endif
    }
    printf("%ld\n", sum);
    return 0;
}
