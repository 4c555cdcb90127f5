#!/usr/bin/env python3
"""Show new processes (pid, comm, filename, argv) from tracepoint:syscalls:sys_enter_execve.

The "monitor process creation" case of docs/choosing.md: of the many *execve* hooks that
`bpftrace -l '*execve*'` lists (kprobes on __x64_sys_execve, bprm_execve,
do_execveat_common.isra.0 ...), take the stable tracepoint. Its arguments come
from the tracefs format file (bcc builds `struct tracepoint__syscalls__sys_enter_execve`
from it), so the program reads `args->filename` and `args->argv` without any
kernel header. argv is an array of user pointers: the program reads each pointer
with bpf_probe_read_user, then the string it points to, in a bounded loop.

COMM is the caller's name: at sys_enter_execve the new program is not loaded yet.
An exec that fails (no such file) is shown too: the tracepoint fires on entry.
Minimum kernel 4.7 (tracepoint programs); the bounded loop needs 5.3 (or unrolling).

    sudo .venv/bin/python examples/execsnoop.py --duration 10
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time

import ebpfhooks

HOOK = "tracepoint:syscalls:sys_enter_execve"
MAX_ARGS = 8
ARG_LEN = 64

SOURCE = r"""
/* MAX_ARGS and ARG_LEN come from cflags (-D), set from the Python constants. */
struct event_t {
    u32 pid;
    u32 argc;           /* arguments read (at most MAX_ARGS) */
    u32 truncated;      /* 1 when argv had more than MAX_ARGS entries */
    char comm[16];
    char filename[128];
    char argv[MAX_ARGS][ARG_LEN];
};
BPF_PERF_OUTPUT(events);
/* The event is larger than the 512-byte BPF stack: build it in a per-CPU slot. */
BPF_PERCPU_ARRAY(scratch, struct event_t, 1);

int on_execve(struct tracepoint__syscalls__sys_enter_execve *args) {
    u32 zero = 0;
    struct event_t *ev = scratch.lookup(&zero);
    if (!ev)
        return 0;
    ev->pid = bpf_get_current_pid_tgid() >> 32;
    ev->argc = 0;
    ev->truncated = 0;
    bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
    if (bpf_probe_read_user_str(&ev->filename, sizeof(ev->filename), args->filename) < 0)
        ev->filename[0] = 0;

    const char *const *argv = args->argv;
    for (int i = 0; i < MAX_ARGS; i++) {
        const char *arg = NULL;
        if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) < 0 || !arg)
            goto done;
        if (bpf_probe_read_user_str(&ev->argv[i], ARG_LEN, arg) < 0)
            ev->argv[i][0] = 0;
        ev->argc = i + 1;
    }
    {
        const char *more = NULL;
        bpf_probe_read_user(&more, sizeof(more), &argv[MAX_ARGS]);
        ev->truncated = more != NULL;
    }
done:
    events.perf_submit(args, ev, sizeof(*ev));
    return 0;
}
"""


class Event(ctypes.Structure):
    _fields_ = [
        ("pid", ctypes.c_uint32),
        ("argc", ctypes.c_uint32),
        ("truncated", ctypes.c_uint32),
        ("comm", ctypes.c_char * 16),
        ("filename", ctypes.c_char * 128),
        ("argv", (ctypes.c_char * ARG_LEN) * MAX_ARGS),
    ]


def _printable(raw: bytes) -> str:
    """Decode an argument, escaping newlines and other control characters."""
    text = raw.decode(errors="replace")
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def format_event(ev: Event) -> str:
    """One output line: PID, COMM, FILENAME, then the arguments (argv[0] included)."""
    args = [_printable(ev.argv[i].value) for i in range(min(ev.argc, MAX_ARGS))]
    text = " ".join(args) + (" ..." if ev.truncated else "")
    return (f"{ev.pid:>7} {ev.comm.decode(errors='replace'):<16} "
            f"{_printable(ev.filename):<24} {text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds to run (default 10)")
    args = parser.parse_args(argv)
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1

    hook = ebpfhooks.from_spec(HOOK)
    bpf = BPF(text=SOURCE, cflags=[f"-DMAX_ARGS={MAX_ARGS}", f"-DARG_LEN={ARG_LEN}"])
    seen = 0

    def on_event(_cpu: int, data: int, _size: int) -> None:
        nonlocal seen
        seen += 1
        print(format_event(ctypes.cast(data, ctypes.POINTER(Event)).contents), flush=True)

    bpf["events"].open_perf_buffer(on_event, page_cnt=64)   # before any event can come
    try:
        with hook.attach(bpf, fn_name="on_execve") as link:
            print(f"attached {link.hook} (stable: {link.hook.stable}): "
                  f"tracing exec for {args.duration:g} s", flush=True)
            print(f"{'PID':>7} {'COMM':<16} {'FILENAME':<24} ARGV", flush=True)
            deadline = time.monotonic() + args.duration
            try:
                while time.monotonic() < deadline:
                    bpf.perf_buffer_poll(timeout=100)
            except KeyboardInterrupt:
                pass
    except ebpfhooks.EbpfHooksError as err:
        print(f"execsnoop: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    print(f"{seen} execs seen", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
