#!/usr/bin/env python3
"""Count file opens and failed opens per process with fentry/fexit, else the tracepoints.

fentry and fexit hook a kernel function through a BPF trampoline: cheaper than a
kprobe, with the function's arguments (and, at fexit, its return value) typed by BTF.
They need a kernel that can make BPF trampolines (x86-64 5.5+ with
CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS). This tool asks for them first and falls back
to the syscall tracepoints where the kernel has none (this one):

    first_of(("fentry:do_sys_openat2", "on_fentry"),
             ("tracepoint:syscalls:sys_enter_openat", "on_enter"))
    first_of(("fexit:do_sys_openat2", "on_fexit"),
             ("tracepoint:syscalls:sys_exit_openat", "on_exit"))

The BPF functions have names of their own: ebpfhooks loads what bcc compiled at the
function's BTF id, so none needs bcc's kfunc__ naming. on_fentry reads nothing
(``u64 *ctx`` holds the arguments, ctx[0] the first); on_fexit names them with bcc's
BPF_PROG macro and reads the return value, which comes after them. do_sys_openat2
serves open, openat and openat2; the fallback tracepoints see openat only (what glibc
calls on x86-64). Minimum kernel 5.5 with trampolines, else 4.7.

    sudo .venv/bin/python examples/fentry_opens.py --duration 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import ebpfhooks

FUNCTION = "do_sys_openat2"

SOURCE = r"""
struct comm_t {
    char comm[16];
};
BPF_HASH(opens, u32, u64, 4096);
BPF_HASH(failed, u32, u64, 4096);
BPF_HASH(comms, u32, struct comm_t, 4096);

static inline u32 caller(void) {
    return bpf_get_current_pid_tgid() >> 32;
}

static inline int count_open(void) {
    u32 pid = caller();
    if (pid == SELF_PID)   /* SELF_PID: from cflags, an int */
        return 0;
    opens.increment(pid);
    struct comm_t comm = {};
    bpf_get_current_comm(&comm.comm, sizeof(comm.comm));
    comms.update(&pid, &comm);
    return 0;
}

static inline int count_result(long ret) {
    u32 pid = caller();
    if (pid != SELF_PID && ret < 0)
        failed.increment(pid);
    return 0;
}

/* fentry:do_sys_openat2(int dfd, const char *filename, struct open_how *how) */
int on_fentry(u64 *ctx) { return count_open(); }

/* fexit:do_sys_openat2: the arguments, then the return value */
BPF_PROG(on_fexit, int dfd, const char *filename, void *how, long ret) {
    return count_result(ret);
}

/* the fallbacks: tracepoint:syscalls:sys_enter_openat / sys_exit_openat */
int on_enter(void *args) { return count_open(); }
int on_exit(struct tracepoint__syscalls__sys_exit_openat *args) {
    return count_result(args->ret);
}
"""


def chains(function: str) -> tuple[ebpfhooks.FirstOf, ebpfhooks.FirstOf]:
    """(entry chain, return chain): fentry/fexit on ``function``, then the tracepoints."""
    return (ebpfhooks.first_of((f"fentry:{function}", "on_fentry"),
                               ("tracepoint:syscalls:sys_enter_openat", "on_enter")),
            ebpfhooks.first_of((f"fexit:{function}", "on_fexit"),
                               ("tracepoint:syscalls:sys_exit_openat", "on_exit")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds to count (default 5)")
    parser.add_argument("--top", type=int, default=10,
                        help="processes to show, most opens first (default 10)")
    args = parser.parse_args(argv)
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1

    bpf = BPF(text=SOURCE, cflags=[f"-DSELF_PID={os.getpid()}"])
    try:
        with contextlib.ExitStack() as links:
            for chain in chains(FUNCTION):
                link = links.enter_context(chain.attach(bpf))
                for hook, reason in link.passed_over:
                    print(f"passed over {hook}: {str(reason).splitlines()[0]}", flush=True)
                print(f"attached {link.hook} -> {link.program.fn_name}", flush=True)
            print(f"counting opens for {args.duration:g} s", flush=True)
            with contextlib.suppress(KeyboardInterrupt):   # Ctrl-C: stop early, still print
                time.sleep(args.duration)
        opens = {int(k.value): int(v.value) for k, v in bpf["opens"].items()}
        failed = {int(k.value): int(v.value) for k, v in bpf["failed"].items()}
        comms = {int(k.value): bytes(v.comm).decode(errors="replace")
                 for k, v in bpf["comms"].items()}
    except ebpfhooks.EbpfHooksError as err:   # NoAlternativeError lists every reason
        print(f"fentry_opens: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    print(f"{'PID':>7} {'COMM':<16} {'OPENS':>7} {'FAILED':>7}")
    for pid, n in sorted(opens.items(), key=lambda item: -item[1])[:args.top]:
        print(f"{pid:>7} {comms.get(pid, '?'):<16} {n:>7} {failed.get(pid, 0):>7}")
    print(f"{sum(opens.values())} opens ({sum(failed.values())} failed) from "
          f"{len(opens)} processes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
