#!/usr/bin/env python3
"""Stay portable across kernels: try a kprobe, else the stable tracepoint ebpfhooks suggests.

Shows a fallback chain. Kernel functions are renamed and inlined between
releases and some kernels have no kprobes at all (this one, built without
CONFIG_KPROBES), so a script written once should not hard-code one hook. Here
the script asks the library for the stable alternative of the kernel function
(`ebpfhooks.suggest(SYMBOL).recommended`, the rule of docs/choosing.md: a stable tracepoint
first), builds the chain

    ebpfhooks.first_of(("kprobe:SYMBOL", "on_kprobe"), (TRACEPOINT, "on_tp"))

(each alternative with its own BPF function, since a kprobe program and a
tracepoint program take different contexts) and attaches it: the first
alternative that resolves and attaches on the running kernel is used.
`link.hook` says which, `link.passed_over` why each earlier one was not. Both
programs count events per process, which means the same thing at either hook
(for the default, do_sys_openat2: one open). If no alternative fits, one
error lists every reason.

    sudo .venv/bin/python examples/kprobe_fallback.py --duration 5
    sudo .venv/bin/python examples/kprobe_fallback.py --kprobe do_exit --duration 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import ebpfhooks

SOURCE = r"""
#include <uapi/linux/ptrace.h>

struct comm_t {
    char comm[16];
};
BPF_HASH(counts, u32, u64, 4096);
BPF_HASH(comms, u32, struct comm_t, 4096);

static inline int count(void) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid == SELF_PID)   /* SELF_PID: from cflags, an int */
        return 0;
    counts.increment(pid);
    struct comm_t comm = {};
    bpf_get_current_comm(&comm.comm, sizeof(comm.comm));
    comms.update(&pid, &comm);
    return 0;
}

int on_kprobe(struct pt_regs *ctx) { return count(); }   /* kprobe: registers */
int on_tp(void *args) { return count(); }                /* tracepoint: the parsed record */
int on_raw_tp(struct bpf_raw_tracepoint_args *ctx) { return count(); }
int on_tp_btf(u64 *ctx) { return count(); }              /* tp_btf: typed arguments */
"""

#: The BPF function for each kind the library may suggest.
FUNCTIONS = {"tracepoint": "on_tp", "rawtracepoint": "on_raw_tp", "tp_btf": "on_tp_btf"}


def build_chain(symbol: str) -> tuple[ebpfhooks.FirstOf, str]:
    """The chain for ``symbol`` (the kprobe, then the library's suggestion), and a note.

    The note says what ``ebpfhooks.suggest`` recommended and why.
    """
    kprobe = ebpfhooks.Kprobe(symbol)   # validates the symbol name
    suggestion = ebpfhooks.suggest(symbol)
    note = f"ebpfhooks.suggest({symbol!r}) -> {suggestion.recommended}: {suggestion.reason}"
    alternatives: list[tuple[ebpfhooks.Hook, str]] = [(kprobe, "on_kprobe")]
    if suggestion.recommended is not None:
        fallback = ebpfhooks.from_spec(suggestion.recommended)
        if fallback.kind in FUNCTIONS:   # a kprobe on another function is no fallback
            alternatives.append((fallback, FUNCTIONS[fallback.kind]))
    return ebpfhooks.first_of(*alternatives), note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kprobe", default="do_sys_openat2", metavar="SYMBOL",
                        help="the kernel function to try first (default do_sys_openat2)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds to count (default 5)")
    parser.add_argument("--top", type=int, default=10,
                        help="processes to show, most events first (default 10)")
    args = parser.parse_args(argv)
    try:
        chain, note = build_chain(args.kprobe)
    except ebpfhooks.EbpfHooksError as err:
        print(f"kprobe_fallback: {err}", file=sys.stderr)
        return 1
    print(note, flush=True)
    print(f"chain: {chain}", flush=True)
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1

    bpf = BPF(text=SOURCE, cflags=[f"-DSELF_PID={os.getpid()}"])
    try:
        with chain.attach(bpf) as link:
            for hook, reason in link.passed_over:
                print(f"passed over {hook}: {str(reason).splitlines()[0]}", flush=True)
            stable = "stable" if link.hook.stable else "unstable"
            print(f"attached {link.hook} ({stable}) -> {link.program.fn_name}: counting "
                  f"events per process for {args.duration:g} s", flush=True)
            with contextlib.suppress(KeyboardInterrupt):   # Ctrl-C: stop early, still print
                time.sleep(args.duration)
        counts = {int(k.value): int(v.value) for k, v in bpf["counts"].items()}
        comms = {int(k.value): bytes(v.comm).decode(errors="replace")
                 for k, v in bpf["comms"].items()}
    except ebpfhooks.EbpfHooksError as err:   # NoAlternativeError lists every reason
        print(f"kprobe_fallback: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    print(f"{'PID':>7} {'COMM':<16} {'EVENTS':>8}")
    for pid, n in sorted(counts.items(), key=lambda item: -item[1])[:args.top]:
        print(f"{pid:>7} {comms.get(pid, '?'):<16} {n:>8}")
    print(f"{sum(counts.values())} events from {len(counts)} processes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
