#!/usr/bin/env python3
"""Show which processes use the CPUs, by sampling every CPU with profile:hz:49.

bpftrace's `profile:hz:49 { @[pid, comm] = count(); }` as a tool: a timer (the software
PMU's cpu-clock, one perf event per CPU) interrupts each CPU 49 times a second and the
program counts who was running there. A process's share of the samples is its share of
CPU time, without tracing a single syscall; samples of pid 0 are the idle CPUs. 49 Hz
(not 50) keeps the timer out of step with periodic work that would bias the samples.

The perf events are the link's own: one per online CPU, all closed when the tool stops
(Ctrl-C, --duration, SIGTERM). Minimum kernel 4.9 (BPF programs on perf events).

    sudo .venv/bin/python examples/profile_top.py --duration 5 --top 10
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import ebpfhooks

SOURCE = r"""
#include <uapi/linux/bpf_perf_event.h>

struct key_t {
    u32 pid;
    char comm[16];
};
BPF_HASH(samples, struct key_t, u64, 16384);

int on_sample(struct bpf_perf_event_data *ctx) {
    struct key_t key = {.pid = bpf_get_current_pid_tgid() >> 32};
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    samples.increment(key);
    return 0;
}
"""


def positive(text: str) -> int:
    """argparse type: a positive int."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return value


def top_rows(counts: dict[tuple[int, str], int], hz: int, seconds: float,
             top: int) -> list[str]:
    """The table: the ``top`` (pid, comm) by samples, with their share of one CPU."""
    rows = [f"{'PID':>7} {'COMM':<16} {'SAMPLES':>8} {'CPU%':>6}"]
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    for (pid, comm), n in ranked:
        name = "[idle]" if pid == 0 else comm
        share = 100.0 * n / (hz * seconds) if seconds > 0 else 0.0
        rows.append(f"{pid:>7} {name:<16} {n:>8} {share:>6.1f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds to sample (default 10)")
    parser.add_argument("--hz", type=positive, default=49,
                        help="samples a second on each CPU (default 49)")
    parser.add_argument("--top", type=positive, default=15,
                        help="processes to show (default 15)")
    args = parser.parse_args(argv)
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1

    hook = ebpfhooks.Profile("hz", args.hz)
    bpf = BPF(text=SOURCE)
    try:
        with hook.attach(bpf, fn_name="on_sample") as link:
            cpus = link.resolution.cpus or ()
            print(f"attached {link.hook} on {len(cpus)} CPUs: sampling for "
                  f"{args.duration:g} s", flush=True)
            start = time.monotonic()
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.duration)
            seconds = time.monotonic() - start
        counts = {(int(k.pid), k.comm.decode(errors="replace")): int(v.value)
                  for k, v in bpf["samples"].items()}
    except ebpfhooks.EbpfHooksError as err:
        print(f"profile_top: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    for row in top_rows(counts, args.hz, seconds, args.top):
        print(row)
    print(f"{sum(counts.values())} samples on {len(cpus)} CPUs in {seconds:.1f} s "
          f"({args.hz} Hz)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
