#!/usr/bin/env python3
"""Print each command line typed into any bash, from uretprobe:/bin/bash:readline.

Shows a return probe on a user-space function: bash calls readline() to read an
interactive line; when it returns, the return register (PT_REGS_RC) holds the
pointer to the line, which the program copies with bpf_probe_read_user_str.
ebpfhooks resolves /bin/bash (a symlink on merged-/usr systems) and the symbol
`readline` in its ELF symbol table, and attaches at that exact file offset: every
bash process on the machine is covered, already running or started later.
Minimum kernel 4.3.

    sudo .venv/bin/python examples/bashreadline.py --duration 30

(A bash linked against a shared libreadline has no readline of its own: probe
`uretprobe:libreadline:readline` instead with --binary.)
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
    char line[80];
};
BPF_PERF_OUTPUT(events);

int on_readline_return(struct pt_regs *ctx) {
    const char *line = (const char *)PT_REGS_RC(ctx);
    if (!line)
        return 0;   /* end of input (Ctrl-D) */
    struct event_t ev = {};
    ev.pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
    if (bpf_probe_read_user_str(&ev.line, sizeof(ev.line), line) < 0)
        return 0;
    events.perf_submit(ctx, &ev, sizeof(ev));
    return 0;
}
"""


class Event(ctypes.Structure):
    _fields_ = [
        ("pid", ctypes.c_uint32),
        ("comm", ctypes.c_char * 16),
        ("line", ctypes.c_char * 80),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds to run (default 30)")
    parser.add_argument("--binary", default="/bin/bash",
                        help="the file defining readline: a path or a library name "
                             "such as libreadline (default /bin/bash)")
    args = parser.parse_args(argv)
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1

    try:
        # Uretprobe validates the binary name (no spec text is assembled from user input).
        hook = ebpfhooks.Uretprobe(args.binary, "readline")
        hook.resolve()   # fails early, before the compile, if the file or symbol is missing
    except ebpfhooks.EbpfHooksError as err:
        print(f"bashreadline: {err}", file=sys.stderr)
        return 1

    bpf = BPF(text=SOURCE)
    seen = 0

    def on_event(_cpu: int, data: int, _size: int) -> None:
        nonlocal seen
        seen += 1
        ev = ctypes.cast(data, ctypes.POINTER(Event)).contents
        print(f"{time.strftime('%H:%M:%S')} {ev.pid:>7} {ev.comm.decode(errors='replace'):<8} "
              f"{ev.line.decode(errors='replace')}", flush=True)

    bpf["events"].open_perf_buffer(on_event)   # before any event can come
    try:
        with hook.attach(bpf, fn_name="on_readline_return") as link:
            print(f"attached {link.resolution}", flush=True)
            print(f"{'TIME':<8} {'PID':>7} {'COMM':<8} COMMAND", flush=True)
            deadline = time.monotonic() + args.duration
            try:
                while time.monotonic() < deadline:
                    bpf.perf_buffer_poll(timeout=100)
            except KeyboardInterrupt:
                pass
    except ebpfhooks.EbpfHooksError as err:
        print(f"bashreadline: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    print(f"{seen} lines read", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
