#!/usr/bin/env python3
"""Show Python's garbage collections per generation: how many, objects freed, time spent.

Shows USDT probes: Debian's python3.11 is built with static probes (`readelf -n
/usr/bin/python3.11` lists them in .note.stapsdt). ebpfhooks reads the notes itself
and attaches `usdt:/usr/bin/python3.11:python:gc__start` and `...:gc__done` as uprobes
with the probes' semaphores counted by the kernel (python3.11 only reaches a probe
while its semaphore is non-zero, so an untraced Python pays nothing).
`ebpfhooks.usdt_args()` writes the C that reads each probe's arguments where the notes
say they are: gc__start's generation (on the stack, -4@112(%rsp)) and gc__done's count
of unreachable objects found (a register, -8@%r12). The program pairs each start with
its done per thread and adds count, objects and nanoseconds per generation in a map;
nothing else crosses to user space. With --pid only that process is traced, and the
tool stops when it exits. Minimum kernel 4.20 (semaphores: ref_ctr_offset), 5.5 for
the stack read (bpf_probe_read_user).

    sudo .venv/bin/python examples/pygc.py --pid "$(pgrep -n python3)" --duration 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import ebpfhooks
from ebpfhooks import attach_all

PROGRAM = r"""
struct start_t {
    u64 ns;
    u64 generation;
};
struct gen_t {
    u64 collections;
    u64 objects;
    u64 ns;
    u64 max_ns;
};
BPF_HASH(running, u32, struct start_t);  /* by thread: the collection it is in */
BPF_ARRAY(gens, struct gen_t, 4);        /* by generation; [3]: any other value */

int on_gc__start(struct pt_regs *ctx) {
    struct start_t start = {.ns = bpf_ktime_get_ns(), .generation = 3};
    usdt_python_gc__start_arg(ctx, 0, &start.generation);
    u32 tid = bpf_get_current_pid_tgid();
    running.update(&tid, &start);
    return 0;
}

int on_gc__done(struct pt_regs *ctx) {
    u32 tid = bpf_get_current_pid_tgid();
    struct start_t *start = running.lookup(&tid);
    if (!start)
        return 0;   /* started before the probes were attached */
    u64 ns = bpf_ktime_get_ns() - start->ns, objects = 0;
    int slot = start->generation < 3 ? (int)start->generation : 3;
    running.delete(&tid);
    usdt_python_gc__done_arg(ctx, 0, &objects);
    struct gen_t *gen = gens.lookup(&slot);
    if (gen) {
        __sync_fetch_and_add(&gen->collections, 1);
        __sync_fetch_and_add(&gen->objects, objects);
        __sync_fetch_and_add(&gen->ns, ns);
        if (ns > gen->max_ns)
            gen->max_ns = ns;   /* a race between CPUs can lose a maximum: fine here */
    }
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


def table(gens: list[tuple[int, int, int, int]]) -> list[str]:
    """One line per generation (collections, objects, ns, max ns); "other" when used.

    >>> print("\\n".join(table([(2, 10, 3_000_000, 2_000_000), (0, 0, 0, 0),
    ...                         (1, 20, 500_000, 500_000), (0, 0, 0, 0)])))
    GENERATION  COLLECTIONS  UNREACHABLE   TOTAL ms     MAX ms
             0            2           10      3.000      2.000
             1            0            0      0.000      0.000
             2            1           20      0.500      0.500
    """
    lines = [f"{'GENERATION':>10}  {'COLLECTIONS':>11}  {'UNREACHABLE':>11}  "
             f"{'TOTAL ms':>9}  {'MAX ms':>9}"]
    for gen, (count, objects, ns, max_ns) in enumerate(gens):
        if gen == 3 and not count:
            continue
        name = str(gen) if gen < 3 else "other"
        lines.append(f"{name:>10}  {count:>11}  {objects:>11}  {ns / 1e6:>9.3f}  "
                     f"{max_ns / 1e6:>9.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="/usr/bin/python3.11",
                        help="the Python built with USDT probes (default /usr/bin/python3.11)")
    parser.add_argument("--pid", type=pid_arg, help="trace this process only")
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
        hooks = [ebpfhooks.Usdt(args.binary, name, provider="python", pid=args.pid)
                 for name in ("gc__start", "gc__done")]
        # the readers resolve the probes: a missing binary, pid or probe is said here
        source = "".join(ebpfhooks.usdt_args(hook) for hook in hooks) + PROGRAM
    except ebpfhooks.EbpfHooksError as err:
        print(f"pygc: {err}", file=sys.stderr)
        return 1

    bpf = BPF(text=source)
    try:
        # each hook takes the function named for it: on_gc__start, on_gc__done
        group = attach_all(hooks, bpf)
        try:
            for link in group:
                print(f"attached {link.resolution}", flush=True)
            who = f"pid {args.pid}" if args.pid else f"every {args.binary} process"
            print(f"tracing the garbage collections of {who} for {args.duration:g} s",
                  flush=True)
            deadline = time.monotonic() + args.duration
            while time.monotonic() < deadline:
                if args.pid and not os.path.exists(f"/proc/{args.pid}"):
                    print(f"process {args.pid} exited", flush=True)
                    break
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            group.detach()
        gens = [(int(g.collections), int(g.objects), int(g.ns), int(g.max_ns))
                for g in bpf["gens"].values()]
    except ebpfhooks.EbpfHooksError as err:
        print(f"pygc: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    print("\n".join(table(gens)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
