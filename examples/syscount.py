#!/usr/bin/env python3
"""Count system calls per process, from rawtracepoint:sys_enter (the raw, cheaper tracepoint).

Shows a raw tracepoint next to its parsed twin, the overhead column of docs/hooks.md
in practice. `rawtracepoint:sys_enter` hands the program the tracepoint's raw
arguments (`struct bpf_raw_tracepoint_args`: args[0] is the registers,
args[1] the syscall number) without the kernel first copying them into a
record: docs/hooks.md rates it "low" overhead. `tracepoint:raw_syscalls:sys_enter`
(--parsed) fires at the same place but fills the record described by its tracefs
format file first (`args->id`): rated "moderate". On a busy machine the
difference is paid per syscall, so it adds up: `ebpfhooks bench` (or
`python -m ebpfhooks.bench`) measures both on this kernel.

Every process on the machine is counted (this script itself excluded), or only
--pid. Minimum kernel 4.17 (raw tracepoints).

    sudo .venv/bin/python examples/syscount.py --duration 5 --top 10
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import defaultdict

import ebpfhooks

RAW = "rawtracepoint:sys_enter"
PARSED = "tracepoint:raw_syscalls:sys_enter"

SOURCE = r"""
#include <uapi/linux/bpf.h>

/* SELF_PID and FILTER_PID (0: every process) come from cflags, as validated ints. */
struct key_t {
    u32 pid;
    u32 nr;
};
struct comm_t {
    char comm[16];
};
BPF_HASH(counts, struct key_t, u64, 16384);
BPF_HASH(comms, u32, struct comm_t, 4096);

static inline int count(u32 nr) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid == SELF_PID || (FILTER_PID && pid != FILTER_PID))
        return 0;
    struct key_t key = {.pid = pid, .nr = nr};
    counts.increment(key);
    struct comm_t comm = {};
    bpf_get_current_comm(&comm.comm, sizeof(comm.comm));
    comms.update(&pid, &comm);
    return 0;
}

/* rawtracepoint:sys_enter: TP_PROTO(struct pt_regs *regs, long id) -> args[0], args[1] */
int on_sys_enter_raw(struct bpf_raw_tracepoint_args *ctx) {
    return count((u32)ctx->args[1]);
}

/* tracepoint:raw_syscalls:sys_enter: the parsed record (fields from the format file) */
int on_sys_enter_parsed(struct tracepoint__raw_syscalls__sys_enter *args) {
    return count((u32)args->id);
}
"""


def pid_arg(text: str) -> int:
    """argparse type: a positive process id (it reaches the generated C, so only an int)."""
    try:
        pid = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if not 0 < pid < 1 << 22:
        raise argparse.ArgumentTypeError(f"process id out of range: {pid}")
    return pid


def syscall_name(nr: int) -> str:
    """The syscall's name on this architecture (bcc's table), or its number."""
    try:
        from bcc.syscall import syscall_name as name
    except ImportError:
        return str(nr)
    return bytes(name(nr)).decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds to count (default 5)")
    parser.add_argument("--pid", type=pid_arg, default=0,
                        help="count only this process")
    parser.add_argument("--top", type=int, default=20,
                        help="processes to show, most calls first (default 20)")
    parser.add_argument("--parsed", action="store_true",
                        help=f"attach the parsed {PARSED} instead of {RAW}")
    args = parser.parse_args(argv)
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1

    hook = ebpfhooks.from_spec(PARSED if args.parsed else RAW)
    fn_name = "on_sys_enter_parsed" if args.parsed else "on_sys_enter_raw"
    bpf = BPF(text=SOURCE, cflags=[f"-DSELF_PID={os.getpid()}", f"-DFILTER_PID={args.pid}"])
    try:
        with hook.attach(bpf, fn_name=fn_name) as link:
            kind = "raw: arguments not parsed" if not args.parsed else "parsed record"
            print(f"attached {link.hook} ({kind}; its overhead is rated "
                  f"{link.hook.overhead!r}): counting for {args.duration:g} s", flush=True)
            with contextlib.suppress(KeyboardInterrupt):   # Ctrl-C: stop early, still print
                time.sleep(args.duration)
        per_pid: dict[int, dict[int, int]] = defaultdict(dict)
        for key, value in bpf["counts"].items():
            per_pid[int(key.pid)][int(key.nr)] = int(value.value)
        comms = {int(k.value): bytes(v.comm).decode(errors="replace")
                 for k, v in bpf["comms"].items()}
    except ebpfhooks.EbpfHooksError as err:
        print(f"syscount: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()

    print(f"{'PID':>7} {'COMM':<16} {'SYSCALLS':>10}  TOP SYSCALL")
    totals = sorted(per_pid.items(), key=lambda item: -sum(item[1].values()))
    for pid, by_nr in totals[:args.top]:
        nr, n = max(by_nr.items(), key=lambda item: item[1])
        print(f"{pid:>7} {comms.get(pid, '?'):<16} {sum(by_nr.values()):>10}  "
              f"{syscall_name(nr)} ({n})")
    grand = sum(sum(by_nr.values()) for by_nr in per_pid.values())
    print(f"{grand} syscalls by {len(per_pid)} processes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
