"""Per-event overhead of each hook kind on the running kernel (``ebpfhooks bench``).

The seed rates each kind's overhead in words (极低 very low, 低 low, 一般
moderate); this module measures it, the way the kernel selftests' ``bench``
does (tools/testing/selftests/bpf/benchs/bench_trigger.c): a tight trigger loop
runs without and with a minimal counting program attached, over several rounds,
and the program's own per-CPU counter proves every hit. The extra time per event
is the difference of the two loops, per event.

Triggers (a small C program compiled with gcc at first use into
``~/.cache/ebpfhooks/bench``, so the interpreter's own overhead never enters
the loop; it pins itself to one CPU):

- tracepoint ``syscalls:sys_enter_getppid``, raw tracepoint ``sys_enter``
  (filtered to getppid), kprobe and kretprobe on ``sys_getppid``: a loop of
  ``getppid()`` syscalls;
- uprobe and uretprobe: a loop of calls of ``ehk_bench_target()`` in the trigger;
- xdp (generic/skb mode) and raw_socket: 60-byte frames sent with an AF_PACKET
  socket over a veth pair made for the run (unique names, deleted afterwards);
  the receive path runs in the sender's softirq, so its cost lands in the loop.

The programs count only the trigger's own events (its pid for syscalls, its
EtherType for frames), so other processes cannot inflate the proof. Kinds the
kernel cannot attach (kprobes without ``CONFIG_KPROBES``) are reported as not
supported, with the reason, and the rest go on.

Needs root, bcc and gcc. Minimum kernel: that of each kind (4.17 for raw
tracepoints, 5.9 for the XDP link used by default).

>>> from ebpfhooks import bench                              # doctest: +SKIP
>>> report = bench.run(kinds=["tracepoint", "uprobe"], rounds=3)   # doctest: +SKIP
>>> print(report.format_table())                           # doctest: +SKIP

From the shell: ``ebpfhooks bench [--kinds K,...] [--rounds N] [--json] [--plot F.png]``
(or ``python -m ebpfhooks.bench``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ebpfhooks.errors import EbpfHooksError, HookPermissionError, NotSupportedError, SpecError

__all__ = [
    "KIND_ORDER",
    "SEED_RATING",
    "BenchReport",
    "KindResult",
    "build_trigger",
    "main",
    "run",
]

#: The kinds, in the seed table's order.
KIND_ORDER = ("kprobe", "kretprobe", "tracepoint", "rawtracepoint", "xdp", "uprobe",
              "uretprobe", "raw_socket")

#: The seed's overhead column (性能开销), with its English rendering.
SEED_RATING: dict[str, tuple[str, str]] = {
    "kprobe": ("极低", "very low"),
    "kretprobe": ("极低", "very low"),
    "tracepoint": ("一般", "moderate"),
    "rawtracepoint": ("低", "low"),
    "xdp": ("极低", "very low"),
    "uprobe": ("极低", "very low"),
    "uretprobe": ("极低", "very low"),
    "raw_socket": ("极低", "very low"),
}

#: What each kind's trigger does, per event.
TRIGGERS: dict[str, str] = {
    "kprobe": "getppid() syscall",
    "kretprobe": "getppid() syscall",
    "tracepoint": "getppid() syscall",
    "rawtracepoint": "getppid() syscall",
    "xdp": "60-byte frame over veth",
    "uprobe": "call of a C function",
    "uretprobe": "call of a C function",
    "raw_socket": "60-byte frame over veth",
}

_MODE = {"kprobe": "syscall", "kretprobe": "syscall", "tracepoint": "syscall",
         "rawtracepoint": "syscall", "uprobe": "call", "uretprobe": "call",
         "xdp": "send", "raw_socket": "send"}

#: Events per timed batch at scale 1.0 (each batch takes ~10-60 ms here).
BATCH_EVENTS = {"syscall": 50_000, "call": 10_000, "send": 10_000}
BATCHES = 5
#: Rounds per kind by default, by trigger. The median of many short rounds repeats
#: within 3-9% on a quiet machine; the median of 5-7 long rounds did not (on this
#: 2-vCPU VM a syscall's cost jumps between ~215 and ~290 ns, and a frame's receive
#: softirq now and then runs in ksoftirqd). Packets are the noisiest (a few hundred ns
#: on a ~2.5 us path), calls the least.
DEFAULT_ROUNDS = {"syscall": 41, "call": 21, "send": 81}

_FN = {"kprobe": "bench_kprobe", "kretprobe": "bench_kretprobe", "tracepoint": "bench_tp",
       "rawtracepoint": "bench_rawtp", "xdp": "bench_xdp", "uprobe": "bench_uprobe",
       "uretprobe": "bench_uretprobe", "raw_socket": "bench_socket"}

BENCH_ETHERTYPE = 0x88B6
#: How a batch is timed: the trigger's CPU time (default) or wall time.
CLOCKS = ("cpu", "wall")

TARGET_FUNCTION = "ehk_bench_target"
_NR_GETPPID = {"x86_64": 110, "aarch64": 173, "riscv64": 173, "ppc64le": 64, "s390x": 64}

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

PROGRAM_SOURCE = r"""/* ebpfhooks bench: minimal counting programs, one per kind. */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf.h>

BPF_PERCPU_ARRAY(hits, u64, 8);
BPF_ARRAY(cfg, u32, 1);   /* cfg[0]: the trigger's pid */

static inline int mine(void) {
    int zero = 0;
    u32 *pid = cfg.lookup(&zero);
    return pid && (bpf_get_current_pid_tgid() >> 32) == *pid;
}

static inline void hit(int idx) {
    u64 *v = hits.lookup(&idx);
    if (v) *v += 1;
}

int bench_kprobe(struct pt_regs *ctx) { if (mine()) hit(0); return 0; }
int bench_kretprobe(struct pt_regs *ctx) { if (mine()) hit(1); return 0; }
int bench_tp(void *ctx) { if (mine()) hit(2); return 0; }
int bench_rawtp(struct bpf_raw_tracepoint_args *ctx) {
    if (ctx->args[1] == NR_GETPPID && mine()) hit(3);
    return 0;
}
int bench_xdp(struct xdp_md *ctx) {
    unsigned char *data = (unsigned char *)(long)ctx->data;
    unsigned char *end = (unsigned char *)(long)ctx->data_end;
    if (data + 14 <= end && data[12] == (ETHERTYPE >> 8) && data[13] == (ETHERTYPE & 0xff))
        hit(4);
    return XDP_PASS;
}
int bench_uprobe(struct pt_regs *ctx) { hit(5); return 0; }
int bench_uretprobe(struct pt_regs *ctx) { hit(6); return 0; }
int bench_socket(struct __sk_buff *skb) {
    if (load_half(skb, 12) == ETHERTYPE) hit(7);
    return 0;
}
"""


@dataclass
class KindResult:
    """The measured overhead of one hook kind (per event, in nanoseconds).

    ``rounds`` holds one ``(baseline, hooked)`` pair of ns per event per round
    (each the median of the round's timed batches); the figures are medians over
    rounds; ``hits``/``expected`` is the BPF program's own count against
    the events triggered while attached; ``clock`` how batches were timed.
    """

    kind: str
    spec: str
    trigger: str
    supported: bool = True
    reason: str | None = None
    events_per_batch: int = 0
    batches: int = 0
    rounds: list[tuple[float, float]] = field(default_factory=list)
    hits: int = 0
    expected: int = 0
    clock: str = "cpu"

    @property
    def seed_rating(self) -> str:
        """The seed's rating, e.g. ``'一般 moderate'``."""
        zh, en = SEED_RATING[self.kind]
        return f"{zh} {en}"

    @property
    def proven(self) -> bool:
        """True when the program counted exactly the events triggered while attached."""
        return self.supported and self.expected > 0 and self.hits == self.expected

    def _overheads(self) -> list[float]:
        return [h - b for b, h in self.rounds]

    @property
    def baseline_ns(self) -> float | None:
        """Median ns per event of the loop without the hook."""
        return statistics.median(b for b, _ in self.rounds) if self.rounds else None

    @property
    def hooked_ns(self) -> float | None:
        """Median ns per event of the loop with the hook attached."""
        return statistics.median(h for _, h in self.rounds) if self.rounds else None

    @property
    def overhead_ns(self) -> float | None:
        """Median over rounds of the extra ns per event the hook adds."""
        return statistics.median(self._overheads()) if self.rounds else None

    @property
    def spread_ns(self) -> tuple[float, float] | None:
        """(min, max) over rounds of the extra ns per event."""
        o = self._overheads()
        return (min(o), max(o)) if o else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every figure (ns per event, events per second)."""
        base, hooked = self.baseline_ns, self.hooked_ns
        spread = self.spread_ns
        return {
            "kind": self.kind,
            "spec": self.spec,
            "trigger": self.trigger,
            "seed_rating": self.seed_rating,
            "supported": self.supported,
            "reason": self.reason,
            "events_per_batch": self.events_per_batch,
            "batches": self.batches,
            "clock": self.clock,
            "rounds": [{"baseline_ns": b, "hooked_ns": h} for b, h in self.rounds],
            "baseline_ns": base,
            "hooked_ns": hooked,
            "overhead_ns": self.overhead_ns,
            "overhead_min_ns": spread[0] if spread else None,
            "overhead_max_ns": spread[1] if spread else None,
            "baseline_events_per_s": 1e9 / base if base else None,
            "hooked_events_per_s": 1e9 / hooked if hooked else None,
            "hits": self.hits,
            "expected": self.expected,
            "proven": self.proven,
        }


@dataclass
class BenchReport:
    """Results for every kind asked for, with the facts of the machine they were taken on."""

    kernel: str
    cpus: int
    cpu: int | None
    rounds: int | None
    scale: float
    results: list[KindResult]
    clock: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``ebpfhooks bench --json`` prints it)."""
        return {
            "kernel": self.kernel,
            "machine": platform.machine(),
            "cpus": self.cpus,
            "pinned_cpu": self.cpu,
            "rounds": self.rounds,
            "scale": self.scale,
            "clock": self.clock,
            "kinds": [r.to_dict() for r in self.results],
        }

    def rounds_text(self) -> str:
        """The rounds run per kind, e.g. ``'41 (syscalls), 21 (calls), 81 (packets)'``."""
        if self.rounds is not None:
            return str(self.rounds)
        return ", ".join(f"{DEFAULT_ROUNDS[m]} ({w})" for m, w in
                         (("syscall", "syscalls"), ("call", "calls"), ("send", "packets")))

    def format_table(self) -> str:
        """A text table: ns per event (median, min-max), events/s, the counter's proof."""
        head = ("kind", "seed", "trigger", "base ns", "hooked ns", "+ns/event", "(min..max)",
                "events/s base -> hooked", "hits")
        rows: list[tuple[str, ...]] = [head]
        notes = []
        for r in self.results:
            if not r.supported:
                rows.append((r.kind, r.seed_rating, r.trigger, "-", "-", "n/a", "", "", ""))
                notes.append(f"{r.kind}: not supported here: {r.reason}")
                continue
            base, hooked, over, spread = r.baseline_ns, r.hooked_ns, r.overhead_ns, r.spread_ns
            assert base is not None and hooked is not None and over is not None and spread
            rows.append((
                r.kind, r.seed_rating, r.trigger, f"{base:.1f}", f"{hooked:.1f}", f"{over:+.1f}",
                f"({spread[0]:.1f}..{spread[1]:.1f})",
                f"{_rate(1e9 / base)} -> {_rate(1e9 / hooked)}",
                f"{r.hits}/{r.expected}" + ("" if r.proven else " MISMATCH"),
            ))
        widths = [max(_width(row[i]) for row in rows) for i in range(len(head))]
        lines = [
            "  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row))
            .rstrip() for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        footer = (f"kernel {self.kernel}, {self.cpus} CPUs, trigger pinned to CPU {self.cpu}, "
                  f"{self.rounds_text()} rounds, {self.clock} time; +ns/event = hooked - base, "
                  "median over rounds")
        return "\n".join([*lines, "", footer, *notes])

    def plot(self, path: str | os.PathLike[str]) -> None:
        """Write a bar chart of the extra ns per event (needs ``pip install ebpfhooks[plot]``).

        Raises :class:`ebpfhooks.NotSupportedError` when matplotlib is missing.
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise NotSupportedError(
                "--plot needs matplotlib, which is not installed: "
                "pip install 'ebpfhooks[plot]' (or pip install matplotlib)",
                missing="matplotlib",
            ) from err
        done = [r for r in self.results if r.supported and r.rounds]
        fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(self.results), 2) + 1.2), dpi=80)
        names = [f"{r.kind} ({SEED_RATING[r.kind][1]})" for r in self.results]
        values = [r.overhead_ns or 0.0 for r in self.results]
        lo = [max(0.0, (r.overhead_ns or 0) - (r.spread_ns or (0, 0))[0]) for r in self.results]
        hi = [max(0.0, (r.spread_ns or (0, 0))[1] - (r.overhead_ns or 0)) for r in self.results]
        ys = list(range(len(self.results)))
        ax.barh(ys, values, xerr=[lo, hi], color="#4c72b0", capsize=3)
        ax.set_yticks(ys)
        ax.set_yticklabels(names)
        ax.invert_yaxis()
        top = max([v + h for v, h in zip(values, hi, strict=True)] or [1.0])
        for y, r, v, h in zip(ys, self.results, values, hi, strict=True):
            label = f"{r.overhead_ns:+.0f} ns" if r in done and r.overhead_ns is not None \
                else "not supported on this kernel"
            ax.text(v + h if r in done else 0, y, "  " + label, va="center", fontsize=8)
        ax.set_xlim(0, top * 1.3)
        ax.set_xlabel("extra ns per event (median over rounds, bars: min..max)")
        ax.set_title(f"Hook overhead, kernel {self.kernel}", fontsize=10)
        fig.tight_layout()
        fig.savefig(os.fspath(path))
        plt.close(fig)


def _rate(per_s: float) -> str:
    return f"{per_s / 1e6:.2f}M/s" if per_s >= 1e6 else f"{per_s / 1e3:.0f}k/s"


def _width(text: str) -> int:
    # CJK characters take two columns in a terminal
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text)


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


def _spec(kind: str, receiver: str | None, trigger: Path) -> str:
    return {
        "kprobe": "kprobe:sys_getppid",
        "kretprobe": "kretprobe:sys_getppid",
        "tracepoint": "tracepoint:syscalls:sys_enter_getppid",
        "rawtracepoint": "rawtracepoint:sys_enter",
        "xdp": f"xdp:{receiver}:skb",
        "uprobe": f"uprobe:{trigger}:{TARGET_FUNCTION}",
        "uretprobe": f"uretprobe:{trigger}:{TARGET_FUNCTION}",
        "raw_socket": f"raw_socket:{receiver}",
    }[kind]


def _default_cpu() -> int | None:
    try:
        return max(os.sched_getaffinity(0))
    except (AttributeError, OSError, ValueError):
        return None


def parse_kinds(kinds: Sequence[str] | None) -> list[str]:
    """Kind names (commas allowed) in the seed's order; raises :class:`ebpfhooks.SpecError`."""
    if not kinds:
        return list(KIND_ORDER)
    wanted: list[str] = []
    text = ",".join(kinds)
    col = 0
    for word in text.split(","):
        from ebpfhooks.hooks import kind_of

        named = kind_of(word.strip())  # every spelling a spec accepts
        name = named.kind if named is not None else word.strip().lower()
        if name and name not in KIND_ORDER:
            raise SpecError(f"unknown hook kind {word.strip()!r}", spec=text, column=col,
                            length=max(len(word), 1),
                            hint=f"choose from {', '.join(KIND_ORDER)}")
        if name and name not in wanted:
            wanted.append(name)
        col += len(word) + 1
    return [k for k in KIND_ORDER if k in wanted]


def run(
    kinds: Sequence[str] | None = None,
    rounds: int | None = None,
    *,
    scale: float = 1.0,
    cpu: int | None = -2,
    clock: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Measure the extra ns per event of each kind the kernel supports.

    ``kinds``: kind names (default: all eight); ``rounds``: alternating
    without/with rounds (each ``5`` timed batches; see below for the default);
    ``scale`` multiplies the events per batch; ``cpu``: the CPU the trigger is pinned
    to (default: the last one this process may use; ``None``: not pinned). ``clock``: ``"cpu"``
    times each batch by the trigger's own CPU time (``CLOCK_THREAD_CPUTIME_ID``: the
    syscall and the uprobe trap run in the trigger's context, while time other
    processes take the CPU away does not count, so a shared machine disturbs it
    less; the default), ``"wall"`` by ``CLOCK_MONOTONIC`` like the selftests.
    ``rounds=None`` runs :data:`DEFAULT_ROUNDS` for the kind's trigger. ``progress``
    gets a line per step.

    Raises :class:`ebpfhooks.HookPermissionError` without root,
    :class:`ebpfhooks.BccNotFoundError` without bcc and
    :class:`ebpfhooks.NotSupportedError` without gcc. A kind the kernel cannot
    attach is returned with ``supported=False`` and the reason.
    """
    from ebpfhooks import _bcc
    from ebpfhooks.hooks import Hook
    from ebpfhooks.hooks.link import Program

    wanted = parse_kinds(kinds)
    if clock not in CLOCKS:
        raise SpecError(f"unknown clock {clock!r}", spec=clock, column=0, length=len(clock),
                        hint=f"choose from {', '.join(CLOCKS)}")
    if rounds is not None and rounds < 1:
        raise SpecError("rounds must be at least 1", spec=str(rounds), column=0,
                        length=len(str(rounds)), hint="e.g. --rounds 21")
    if os.geteuid() != 0:
        raise HookPermissionError(
            "ebpfhooks bench loads BPF programs and makes a veth pair: run it as root",
            capability="CAP_SYS_ADMIN")
    say = progress or (lambda _msg: None)
    pin = _default_cpu() if cpu == -2 else cpu
    exe = build_trigger()
    bcc = _bcc.load()
    nr = _NR_GETPPID.get(platform.machine(), 110)
    say("compiling the BPF programs (bcc)")
    bpf = bcc.BPF(text=PROGRAM_SOURCE,
                  cflags=[f"-DNR_GETPPID={nr}", f"-DETHERTYPE={BENCH_ETHERTYPE:#x}"])
    results: list[KindResult] = []
    try:
        with contextlib.ExitStack() as stack:
            receiver = sender = None
            if {"xdp", "raw_socket"} & set(wanted):
                receiver, sender = stack.enter_context(_veth_pair())
            from ebpfhooks.kernel.netdev import ifindex

            mac = (Path(f"/sys/class/net/{receiver}/address").read_text().strip()
                   if receiver else None)
            trig = _Trigger(exe, pin, (sender, mac) if sender and mac else None)
            stack.callback(trig.close)
            bpf["cfg"][ctypes.c_int(0)] = ctypes.c_uint32(trig.pid)
            if receiver:
                ifindex(receiver)  # fail early and clearly if the pair vanished
            for kind in wanted:
                spec = _spec(kind, receiver, exe)
                result = KindResult(kind, spec, TRIGGERS[kind])
                results.append(result)
                hook = Hook.from_spec(spec)
                try:
                    hook.check_privileges()
                    hook.check_supported()
                    hook.resolve()
                except (NotSupportedError, LookupError) as err:
                    result.supported = False
                    result.reason = str(err).splitlines()[0]
                    say(f"{kind}: not supported: {result.reason}")
                    continue
                n_rounds = rounds if rounds is not None else DEFAULT_ROUNDS[_MODE[kind]]
                say(f"{kind}: {n_rounds} rounds on {spec}")
                _measure(result, hook, Program(bpf, _FN[kind]), trig, bpf, n_rounds, scale,
                         clock)
    finally:
        bpf.cleanup()
    return BenchReport(kernel=platform.release(), cpus=os.cpu_count() or 1, cpu=pin,
                       rounds=rounds, scale=scale, results=results, clock=clock)


def _hits(bpf: Any, kind: str) -> int:
    idx = KIND_ORDER.index(kind)
    return int(sum(v for v in bpf["hits"][ctypes.c_int(idx)]))


def _measure(result: KindResult, hook: Any, prog: Any, trig: _Trigger, bpf: Any,
             rounds: int, scale: float, clock: str) -> None:
    mode = _MODE[result.kind]
    n = max(1, int(BATCH_EVENTS[mode] * scale))
    batches = BATCHES
    result.events_per_batch, result.batches, result.clock = n, batches, clock
    trig.run(mode, n, 1)  # warm-up
    for r in range(rounds):
        # alternate which run goes first, so a drift in load biases neither side
        order = (False, True) if r % 2 == 0 else (True, False)
        per_event: dict[bool, float] = {}
        for hooked in order:
            if not hooked:
                per_event[False] = statistics.median(trig.run(mode, n, batches, clock)) / n
                continue
            with hook.attach(prog):
                before = _hits(bpf, result.kind)
                times = trig.run(mode, n, batches, clock)
                got = _settle(bpf, result.kind, before, n * batches, mode == "send")
            result.hits += got
            result.expected += n * batches
            per_event[True] = statistics.median(times) / n
        result.rounds.append((per_event[False], per_event[True]))


def _settle(bpf: Any, kind: str, before: int, expected: int, packets: bool) -> int:
    """Hits since ``before``; frames may still be in flight in softirq, so wait a little."""
    got = _hits(bpf, kind) - before
    if packets:
        deadline = time.monotonic() + 1.0
        while got < expected and time.monotonic() < deadline:
            time.sleep(0.01)
            got = _hits(bpf, kind) - before
    return got


def main(argv: Sequence[str] | None = None) -> int:
    """``ebpfhooks bench``: print the table (or JSON), optionally write the plot."""
    parser = argparse.ArgumentParser(
        prog="ebpfhooks bench",
        description="Measure the extra time per event each hook kind adds on this kernel.")
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` options, for the CLI's subparser."""
    parser.add_argument("--kinds", nargs="+", metavar="KIND",
                        help=f"kinds to measure (default: all; commas allowed): "
                             f"{', '.join(KIND_ORDER)}")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per kind (default: 41 for syscalls, 21 for calls, "
                             "81 for packets)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the events per batch (default 1.0)")
    parser.add_argument("--cpu", type=int, default=-2,
                        help="pin the trigger to this CPU (default: the last; -1: no pinning)")
    parser.add_argument("--clock", choices=CLOCKS, default="cpu",
                        help="time batches by the trigger's CPU time (default) or wall time")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="write a bar chart (needs matplotlib: ebpfhooks[plot])")


def run_command(args: argparse.Namespace) -> int:
    """Run the bench for parsed ``bench`` options; return the exit status."""
    if args.plot:  # fail before a minute of measuring, not after
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("ebpfhooks bench: --plot needs matplotlib: pip install 'ebpfhooks[plot]'",
                  file=sys.stderr)
            return 2
    cpu = None if args.cpu == -1 else args.cpu
    try:
        report = run(args.kinds, args.rounds, scale=args.scale, cpu=cpu,
                     clock=getattr(args, "clock", "cpu"),
                     progress=None if args.json else
                     (lambda m: print(f"... {m}", file=sys.stderr, flush=True)))
    except EbpfHooksError as err:
        print(f"ebpfhooks bench: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.format_table())
    if args.plot:
        report.plot(args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")
    bad = [r.kind for r in report.results if r.supported and not r.proven]
    if bad:
        print(f"ebpfhooks bench: the counter does not match the events for {', '.join(bad)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
