#!/usr/bin/env python3
"""Show a log2 histogram of the sizes one process passes to malloc(), from uprobe:libc:malloc.

Shows a uprobe on a shared library with a pid filter: the spec
`uprobe:libc:malloc[pid=N]` names the library, not a path; ebpfhooks finds the
libc that process N really has mapped (from /proc/N/maps, so a container's or a
custom libc is found too), resolves malloc in it, and the kernel runs the
program only for that process. The size is malloc's first argument
(PT_REGS_PARM1); the program counts it in a log2 histogram (BPF_HISTOGRAM), so
nothing but 64 counters crosses to user space. Stops early when the process
exits. Minimum kernel 4.3 (uprobes; the pid filter needs 4.14, bcc falls back).

    sudo .venv/bin/python examples/mallocsize.py --pid "$(pgrep -n bash)" --duration 10
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time

import ebpfhooks

SOURCE = r"""
#include <uapi/linux/ptrace.h>

BPF_HISTOGRAM(dist, int, 65);
BPF_ARRAY(total, u64, 2);   /* [0] calls, [1] bytes asked for */

int on_malloc(struct pt_regs *ctx) {
    u64 size = PT_REGS_PARM1(ctx);
    /* slot 0: malloc(0); slot k >= 1: 2^(k-1) <= size < 2^k */
    int slot = size ? bpf_log2l(size) : 0;
    dist.increment(slot);
    int calls = 0, bytes = 1;
    u64 *n = total.lookup(&calls);
    if (n)
        __sync_fetch_and_add(n, 1);
    n = total.lookup(&bytes);
    if (n)
        __sync_fetch_and_add(n, size);
    return 0;
}
"""


def pid_arg(text: str) -> int:
    """argparse type: a positive process id (it reaches the spec, so it must be an int)."""
    try:
        pid = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if not 0 < pid < 1 << 22:
        raise argparse.ArgumentTypeError(f"process id out of range: {pid}")
    return pid


def histogram_lines(counts: dict[int, int], width: int = 40) -> list[str]:
    """A log2 histogram: one line per slot from the first to the last that is not empty.

    >>> for line in histogram_lines({5: 2, 7: 1}, width=4)[1:]:
    ...     print(line)
            16 -> 31         : 2        |****|
            32 -> 63         : 0        |    |
            64 -> 127        : 1        |**  |
    """
    lines = [f"{'bytes':>10}    {'':<10} : {'count':<8} distribution"]
    used = [slot for slot, n in counts.items() if n]
    if not used:
        return lines
    top = max(counts.values())
    for slot in range(min(used), max(used) + 1):
        low, high = (0, 0) if slot == 0 else (1 << (slot - 1), (1 << slot) - 1)
        n = counts.get(slot, 0)
        bar = "*" * (n * width // top) if top else ""
        lines.append(f"{low:>10} -> {high:<10} : {n:<8} |{bar:<{width}}|")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pid", type=pid_arg, required=True,
                        help="the process to watch")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds to run (default 10)")
    args = parser.parse_args(argv)
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1

    try:
        hook = ebpfhooks.from_spec(f"uprobe:libc:malloc[pid={args.pid}]")
        hook.resolve()   # a missing process or libc is reported before the compile
    except ebpfhooks.EbpfHooksError as err:
        print(f"mallocsize: {err}", file=sys.stderr)
        return 1

    bpf = BPF(text=SOURCE)
    try:
        with hook.attach(bpf, fn_name="on_malloc") as link:
            print(f"attached {link.resolution}", flush=True)
            print(f"tracing malloc() sizes of pid {args.pid} for {args.duration:g} s",
                  flush=True)
            deadline = time.monotonic() + args.duration
            try:
                while time.monotonic() < deadline:
                    if not os.path.exists(f"/proc/{args.pid}"):
                        print(f"process {args.pid} exited", flush=True)
                        break
                    time.sleep(0.1)
            except KeyboardInterrupt:
                pass
        counts = {int(k.value): int(v.value) for k, v in bpf["dist"].items()}
        calls = int(bpf["total"][ctypes.c_int(0)].value)
        size_sum = int(bpf["total"][ctypes.c_int(1)].value)
    except ebpfhooks.EbpfHooksError as err:
        print(f"mallocsize: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    print("\n".join(histogram_lines(counts)))
    print(f"{calls} calls, {size_sum} bytes asked for", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
