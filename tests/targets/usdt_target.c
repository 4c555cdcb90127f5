/* A target for the USDT tests, with its probes written as <sys/sdt.h> would (the note
 * format of the SystemTap SDT, version 3), by hand: the machine has no sdt.h.
 *
 *   ehk:tick    one location, a semaphore; six arguments in every kind of place:
 *               -4@%eXX (i), -8@%rXX (-1000 i), 2@%XX (60000 + i), 1@%Xl (7 i mod 256),
 *               -2@$-5 (a constant), -8@8(%rXX) (p[1] = -i - 1, in memory)
 *   ehk:multi   two locations (site_a, site_b) whose arguments live in different places:
 *               site_a: -4@%eXX (i), -8@%rXX (3 i); site_b: -4@N(%rXX) (q[2] = -i), -8@$1234
 *
 * Usage: usdt_target N [wait]: with "wait" it prints "ready" and reads a line first. Then
 * it prints "semaphore S" (the tick semaphore as the process sees it), runs N rounds
 * (each passes tick if its semaphore is set, and multi at both sites), and prints
 * "ticks K" (how many rounds found the semaphore set).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the section whose address the notes record as their base (prelink moves both) */
__asm__(".pushsection .stapsdt.base,\"a\",\"progbits\"\n"
        ".weak _.stapsdt.base\n"
        ".hidden _.stapsdt.base\n"
        "_.stapsdt.base: .space 1\n"
        ".size _.stapsdt.base, 1\n"
        ".popsection\n");

/* a nop, and a note saying where it is, where the semaphore is and where each argument
 * is at that point (ARGS is the argument specs, with the operands' %-references) */
#define EHK_PROBE(PROVIDER, NAME, SEMA, ARGS, ...)                 \
    __asm__ __volatile__("990: nop\n"                                \
                         ".pushsection .note.stapsdt,\"\",\"note\"\n" \
                         ".balign 4\n"                                \
                         ".4byte 992f-991f, 994f-993f, 3\n"           \
                         "991: .asciz \"stapsdt\"\n"                  \
                         "992: .balign 4\n"                           \
                         "993: .8byte 990b\n"                         \
                         ".8byte _.stapsdt.base\n"                    \
                         ".8byte " SEMA "\n"                          \
                         ".asciz \"" PROVIDER "\"\n"                  \
                         ".asciz \"" NAME "\"\n"                      \
                         ".asciz \"" ARGS "\"\n"                      \
                         "994: .balign 4\n"                           \
                         ".popsection\n"                              \
                         :: __VA_ARGS__)

volatile unsigned short ehk_tick_semaphore __attribute__((section(".probes"), used));

__attribute__((noinline)) int tick(int i, const long *p) {
    if (!ehk_tick_semaphore)
        return 0;
    EHK_PROBE("ehk", "tick", "ehk_tick_semaphore",
              "-4@%k0 -8@%q1 2@%w2 1@%b3 -2@%4 -8@%5",
              "r"(i), "r"(-1000L * i), "r"((unsigned short)(60000 + i)),
              "q"((unsigned char)(7 * i)), "n"(-5), "m"(p[1]));
    return 1;
}

__attribute__((noinline)) void site_a(int i) {
    EHK_PROBE("ehk", "multi", "0", "-4@%k0 -8@%q1", "r"(i), "r"(3L * i));
}

__attribute__((noinline)) void site_b(const int *q) {
    EHK_PROBE("ehk", "multi", "0", "-4@%0 -8@%1", "m"(q[2]), "n"(1234L));
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2 && strcmp(argv[2], "wait") == 0) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 2;
    }
    printf("semaphore %u\n", (unsigned)ehk_tick_semaphore);
    int ticks = 0;
    for (int i = 0; i < n; i++) {
        long p[2] = {0, -(long)i - 1};
        int q[3] = {0, 0, -i};
        ticks += tick(i, p);
        site_a(i);
        site_b(q);
    }
    printf("ticks %d\n", ticks);
    return 0;
}
