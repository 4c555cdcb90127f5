#!/usr/bin/env python3
"""Hello world: report file opens from kprobe:do_sys_openat2.

Shows: attaching a kprobe through ebpfhooks, and what a script does on a kernel
without kprobes: it says why in one line and falls back, as docs/choosing.md advises, to
the stable tracepoint tracepoint:syscalls:sys_enter_openat.

    sudo .venv/bin/python examples/hello_world.py --duration 5
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time

import ebpfhooks

SOURCE = r"""
#include <uapi/linux/ptrace.h>

struct event_t {
    u32 pid;
    char comm[16];
    char filename[128];
};
BPF_PERF_OUTPUT(events);

static inline int report(void *ctx, const char __user *filename) {
    struct event_t ev = {};
    ev.pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
    bpf_probe_read_user_str(&ev.filename, sizeof(ev.filename), filename);
    events.perf_submit(ctx, &ev, sizeof(ev));
    return 0;
}

/* kprobe:do_sys_openat2(int dfd, const char __user *filename, struct open_how *how) */
int hello_world(struct pt_regs *ctx) {
    return report(ctx, (const char __user *)PT_REGS_PARM2(ctx));
}

/* tracepoint:syscalls:sys_enter_openat: bcc builds the args struct from its tracefs
 * format file. (Not TRACEPOINT_PROBE: bcc attaches those itself at compile time.) */
int on_openat(struct tracepoint__syscalls__sys_enter_openat *args) {
    return report(args, args->filename);
}
"""

PRIMARY = "kprobe:do_sys_openat2"
FALLBACK = "tracepoint:syscalls:sys_enter_openat"


class Event(ctypes.Structure):
    _fields_ = [
        ("pid", ctypes.c_uint32),
        ("comm", ctypes.c_char * 16),
        ("filename", ctypes.c_char * 128),
    ]


def attach(bpf: object) -> ebpfhooks.Link:
    """Attach at the kprobe, or fall back to the stable tracepoint with a one-line reason."""
    try:
        return ebpfhooks.from_spec(PRIMARY).attach(bpf, fn_name="hello_world")
    except ebpfhooks.NotSupportedError as err:
        reason = str(err).splitlines()[0]
        print(f"{reason}; falling back to the stable tracepoint {FALLBACK}", flush=True)
        return ebpfhooks.from_spec(FALLBACK).attach(bpf, fn_name="on_openat")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds to run (default 10)")
    args = parser.parse_args(argv)
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1
    bpf = BPF(text=SOURCE)
    seen = 0

    def on_event(_cpu: int, data: int, _size: int) -> None:
        nonlocal seen
        ev = ctypes.cast(data, ctypes.POINTER(Event)).contents
        seen += 1
        print(f"{ev.pid:>7} {ev.comm.decode(errors='replace'):<16} "
              f"{ev.filename.decode(errors='replace')}", flush=True)

    bpf["events"].open_perf_buffer(on_event)   # before any event can come
    with attach(bpf) as link:
        print(f"attached {link.hook}: reporting opens for {args.duration:g} s", flush=True)
        print(f"{'PID':>7} {'COMM':<16} FILE", flush=True)
        deadline = time.monotonic() + args.duration
        try:
            while time.monotonic() < deadline:
                bpf.perf_buffer_poll(timeout=100)
        except KeyboardInterrupt:
            pass
    bpf.cleanup()
    print(f"{seen} opens seen", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
