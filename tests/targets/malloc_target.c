/* A target for examples/mallocsize.py: after a line on stdin, calls malloc() with known
 * sizes, then exits. Prints "ready" once stdin's buffer is allocated, so the only mallocs
 * after the line are the ones below (and stdout's, already allocated by "ready").
 * Usage: malloc_target   (sizes and counts: see SIZES; keep in sync with the test) */
#include <stdio.h>
#include <stdlib.h>

static const struct { size_t size; int count; } SIZES[] = {
    {24, 100},      /* bucket 16 .. 31 */
    {12000, 11},    /* bucket 8192 .. 16383 */
    {300000, 7},    /* bucket 262144 .. 524287 */
};

int main(void) {
    char line[16];
    static void *volatile keep[128];   /* volatile: the compiler may not drop a malloc/free pair */
    int n = 0;
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 2;
    for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++)
        for (int j = 0; j < SIZES[i].count; j++)
            keep[n++] = malloc(SIZES[i].size);
    for (int i = 0; i < n; i++)
        free(keep[i]);
    printf("done %d\n", n);
    return 0;
}
