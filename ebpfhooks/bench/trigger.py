"""The trigger: a small C program of tight, timed loops, and the veth pair it sends over.

:func:`build_trigger` compiles :data:`TRIGGER_SOURCE` with gcc once (cached by the
source's hash in :func:`cache_dir`); the running process (``_Trigger``) takes commands
on stdin (``syscall N B``, ``call N B``, ``send N B``) and answers the wall and CPU
nanoseconds of each batch. ``_veth_pair`` makes the veth pair packets are sent over
(unique names, deleted afterwards)::

    from ebpfhooks.bench import build_trigger
    exe = build_trigger()   # ~/.cache/ebpfhooks/bench/ehk_bench_trigger-<hash>
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ebpfhooks.errors import EbpfHooksError, NotSupportedError

__all__ = ["BENCH_ETHERTYPE", "TARGET_FUNCTION", "TRIGGER_SOURCE", "build_trigger",
           "cache_dir"]

BENCH_ETHERTYPE = 0x88B6
TARGET_FUNCTION = "ehk_bench_target"

TRIGGER_SOURCE = r"""/* ebpfhooks bench trigger: tight loops timed in C (made by ebpfhooks.bench).
 * Usage: ehk_bench_trigger CPU [IFACE DST_MAC ETHERTYPE]; commands on stdin, one a line:
 *   syscall N B | call N B | send N B
 * answered by one line: WALL/CPU nanoseconds each of the B batches of N events took
 * (CLOCK_MONOTONIC / CLOCK_THREAD_CPUTIME_ID). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline, noclone, used)) long ehk_bench_target(long x) {
    __asm__ volatile("" : : : "memory");
    return x + 1;
}

static unsigned long long now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static int sock = -1;
static unsigned char frame[60];

static int open_sender(const char *iface, const char *mac, const char *etype) {
    unsigned int m[6];
    struct sockaddr_ll sll;
    int idx = (int)if_nametoindex(iface);
    if (idx == 0 || sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4],
                           &m[5]) != 6)
        return -1;
    sock = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: this socket receives nothing */
    if (sock < 0) return -1;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = idx;
    if (bind(sock, (struct sockaddr *)&sll, sizeof(sll)) < 0) return -1;
    for (int i = 0; i < 6; i++) frame[i] = (unsigned char)m[i];
    for (int i = 6; i < 12; i++) frame[i] = 0x02;
    unsigned long t = strtoul(etype, NULL, 0);
    frame[12] = (unsigned char)(t >> 8);
    frame[13] = (unsigned char)t;
    memcpy(frame + 14, "ebpfhooks-bench", 15);
    return 0;
}

int main(int argc, char **argv) {
    char line[128], mode[16];
    long n, batches;
    volatile long acc = 0;
    if (argc < 2) return 2;
    int cpu = atoi(argv[1]);
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof(set), &set);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 5 && open_sender(argv[2], argv[3], argv[4]) < 0) {
        printf("error: cannot open a packet socket on %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    printf("ready\n");
    while (fgets(line, sizeof(line), stdin)) {
        if (sscanf(line, "%15s %ld %ld", mode, &n, &batches) != 3 || n <= 0 || batches <= 0) {
            printf("error: bad command\n");
            continue;
        }
        int kind = strcmp(mode, "syscall") == 0 ? 0 : strcmp(mode, "call") == 0 ? 1
                 : strcmp(mode, "send") == 0 ? 2 : -1;
        if (kind < 0 || (kind == 2 && sock < 0)) {
            printf("error: unknown or unavailable mode %s\n", mode);
            continue;
        }
        for (long b = 0; b < batches; b++) {
            unsigned long long t0 = now_ns(CLOCK_MONOTONIC);
            unsigned long long c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
            if (kind == 0) {
                for (long i = 0; i < n; i++) syscall(SYS_getppid);
            } else if (kind == 1) {
                for (long i = 0; i < n; i++) acc = ehk_bench_target(acc);
            } else {
                for (long i = 0; i < n; i++) {
                    while (send(sock, frame, sizeof(frame), 0) < 0) {
                        if (errno != ENOBUFS && errno != EAGAIN) {
                            printf("error: send: %s\n", strerror(errno));
                            return 1;
                        }
                    }
                }
            }
            unsigned long long c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
            printf(b + 1 < batches ? "%llu/%llu " : "%llu/%llu\n", now_ns(CLOCK_MONOTONIC) - t0,
                   c1 - c0);
        }
    }
    return 0;
}
"""


def cache_dir() -> Path:
    """Where the compiled trigger lives (``$XDG_CACHE_HOME/ebpfhooks/bench``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ebpfhooks" / "bench"


def build_trigger(directory: Path | None = None) -> Path:
    """Compile the trigger program with gcc (once: cached by the source's hash); return it.

    Raises :class:`ebpfhooks.NotSupportedError` when gcc is missing or fails.
    """
    gcc = shutil.which("gcc") or shutil.which("cc")
    directory = directory or cache_dir()
    digest = hashlib.sha256(TRIGGER_SOURCE.encode() + platform.machine().encode()).hexdigest()
    out = directory / f"ehk_bench_trigger-{digest[:16]}"
    if out.exists():
        return out
    if gcc is None:
        raise NotSupportedError(
            "ebpfhooks bench compiles a small C trigger and needs gcc: apt-get install gcc",
            missing="gcc",
        )
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / f"trigger-{os.getpid()}.c"
    tmp = directory / f".{out.name}.{os.getpid()}"
    src.write_text(TRIGGER_SOURCE)
    try:
        proc = subprocess.run([gcc, "-O2", "-g", "-o", str(tmp), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise NotSupportedError(
                f"compiling the bench trigger with {gcc} failed:\n{proc.stderr.strip()}",
                missing="a working C compiler",
            )
        os.replace(tmp, out)
    finally:
        src.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return out


class _Trigger:
    """The running trigger process: send a command, get the batch times."""

    def __init__(self, exe: Path, cpu: int | None, sender: tuple[str, str] | None) -> None:
        args = [str(exe), str(-1 if cpu is None else cpu)]
        if sender is not None:
            args += [sender[0], sender[1], hex(BENCH_ETHERTYPE)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self._expect("ready")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line or line.startswith("error"):
            raise EbpfHooksError(f"the bench trigger failed: {line or 'it exited'}")
        return line

    def _expect(self, word: str) -> None:
        line = self._readline()
        if line != word:
            raise EbpfHooksError(f"the bench trigger said {line!r}, expected {word!r}")

    def run(self, mode: str, n: int, batches: int, clock: str = "cpu") -> list[int]:
        """Nanoseconds per batch, of wall time or of the trigger's own CPU time."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{mode} {n} {batches}\n")
        self.proc.stdin.flush()
        pairs = [x.split("/") for x in self._readline().split()]
        return [int(p[1] if clock == "cpu" else p[0]) for p in pairs]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EbpfHooksError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


@contextlib.contextmanager
def _veth_pair() -> Iterator[tuple[str, str]]:
    """A veth pair (receiver, sender) with unique names, deleted on exit."""
    base = f"ehb{os.getpid() % 1000000}"
    a, b = base + "a", base + "b"
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    try:
        for name in (a, b):
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1")
            _ip("link", "set", name, "up")
        yield a, b
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True)
