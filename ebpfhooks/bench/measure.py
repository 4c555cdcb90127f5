"""The measurement: counting programs attached in turn while the trigger runs its loops.

:func:`run` compiles :data:`PROGRAM_SOURCE` (one minimal counting program per kind) with
bcc, starts the trigger, and for each kind alternates rounds without and with the hook
attached, checking the program's own per-CPU count against the events triggered::

    from ebpfhooks import bench
    report = bench.run(kinds=["tracepoint", "uprobe"], rounds=3)

Needs root, bcc and gcc.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ebpfhooks.bench.report import DEFAULT_ROUNDS, KIND_ORDER, TRIGGERS, BenchReport, KindResult
from ebpfhooks.bench.trigger import (
    BENCH_ETHERTYPE,
    TARGET_FUNCTION,
    _Trigger,
    _veth_pair,
    build_trigger,
)
from ebpfhooks.errors import HookPermissionError, NotSupportedError, SpecError

__all__ = ["BATCHES", "BATCH_EVENTS", "CLOCKS", "PROGRAM_SOURCE", "parse_kinds", "run"]

_MODE = {"kprobe": "syscall", "kretprobe": "syscall", "tracepoint": "syscall",
         "rawtracepoint": "syscall", "uprobe": "call", "uretprobe": "call",
         "xdp": "send", "raw_socket": "send", "fentry": "syscall", "fexit": "syscall",
         "tp_btf": "syscall"}

#: Events per timed batch at scale 1.0 (each batch takes ~10-60 ms here).
BATCH_EVENTS = {"syscall": 50_000, "call": 10_000, "send": 10_000}
BATCHES = 5

_FN = {"kprobe": "bench_kprobe", "kretprobe": "bench_kretprobe", "tracepoint": "bench_tp",
       "rawtracepoint": "bench_rawtp", "xdp": "bench_xdp", "uprobe": "bench_uprobe",
       "uretprobe": "bench_uretprobe", "raw_socket": "bench_socket",
       "fentry": "bench_fentry", "fexit": "bench_fexit", "tp_btf": "bench_tpbtf"}

#: How a batch is timed: the trigger's CPU time (default) or wall time.
CLOCKS = ("cpu", "wall")

_NR_GETPPID = {"x86_64": 110, "aarch64": 173, "riscv64": 173, "ppc64le": 64, "s390x": 64}

PROGRAM_SOURCE = r"""/* ebpfhooks bench: minimal counting programs, one per kind. */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf.h>

BPF_PERCPU_ARRAY(hits, u64, 16);
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
/* BTF-typed programs, loaded by ebpfhooks at a BTF id: u64 *ctx holds the arguments */
int bench_fentry(u64 *ctx) { if (mine()) hit(8); return 0; }
int bench_fexit(u64 *ctx) { if (mine()) hit(9); return 0; }
int bench_tpbtf(u64 *ctx) {   /* tp_btf:sys_enter(struct pt_regs *regs, long id) */
    if (ctx[1] == NR_GETPPID && mine()) hit(10);
    return 0;
}
"""


#: What getppid(2) calls once per syscall, for fentry/fexit where the kernel's BTF has no
#: FUNC of the syscall's own function (Debian's 6.1 has none for ``__x64_sys_getppid``).
GETPPID_CALLEE = "__task_pid_nr_ns"


def _getppid_function() -> str:
    """The kernel function the fentry/fexit rows hook, once per getppid() syscall: the
    syscall's own (``__x64_sys_getppid`` on x86-64: what ``kprobe:sys_getppid`` resolves
    to) where the kernel's BTF has it, else :data:`GETPPID_CALLEE`."""
    from ebpfhooks.errors import EbpfHooksError
    from ebpfhooks.kernel.btf import tracing_function_id
    from ebpfhooks.kernel.kallsyms import index

    try:
        own = index().syscall_prefix() + "getppid"
        return own if tracing_function_id(own, "vmlinux") is not None else GETPPID_CALLEE
    except EbpfHooksError:
        return GETPPID_CALLEE


def _spec(kind: str, receiver: str | None, trigger: Path) -> str:
    if kind in ("fentry", "fexit"):
        return f"{kind}:{_getppid_function()}"
    return {
        "kprobe": "kprobe:sys_getppid",
        "kretprobe": "kretprobe:sys_getppid",
        "tracepoint": "tracepoint:syscalls:sys_enter_getppid",
        "rawtracepoint": "rawtracepoint:sys_enter",
        "xdp": f"xdp:{receiver}:skb",
        "uprobe": f"uprobe:{trigger}:{TARGET_FUNCTION}",
        "uretprobe": f"uretprobe:{trigger}:{TARGET_FUNCTION}",
        "raw_socket": f"raw_socket:{receiver}",
        "tp_btf": "tp_btf:sys_enter",
    }[kind]


def _default_cpu() -> int | None:
    try:
        return max(os.sched_getaffinity(0))
    except (AttributeError, OSError, ValueError):
        return None


def parse_kinds(kinds: Sequence[str] | None) -> list[str]:
    """Kind names (commas allowed) in the registry's order; raises :class:`ebpfhooks.SpecError`."""
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

    ``kinds``: kind names (default: every kind of :data:`KIND_ORDER`); ``rounds``: alternating
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
