#!/usr/bin/env python3
"""Show every exec (pid, old pid, new comm) from the typed tracepoint tp_btf:sched_process_exec.

A tp_btf program is loaded at the tracepoint's BTF type (btf_trace_sched_process_exec),
so the verifier knows the C type of each argument of
``sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)``:
the program names them with bcc's BPF_PROG macro and reads ``old_pid`` directly (no
tracefs format, no bpf_probe_read). ``ebpfhooks info tp_btf:sched_process_exec`` lists
the arguments; ``ebpfhooks suggest sched_process_exec --typed`` recommends this hook.
The event fires after a successful exec, so COMM is the new program's name. OLD PID
differs from PID when a thread other than the leader called exec. Minimum kernel 5.5
with BTF (CONFIG_DEBUG_INFO_BTF).

    sudo .venv/bin/python examples/exec_tpbtf.py --duration 10
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time

import ebpfhooks

HOOK = "tp_btf:sched_process_exec"

SOURCE = r"""
struct event_t {
    u32 pid;
    u32 old_pid;
    char comm[16];
};
BPF_PERF_OUTPUT(events);

BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) {
    struct event_t ev = {};
    ev.pid = bpf_get_current_pid_tgid() >> 32;
    ev.old_pid = old_pid;            /* the typed argument ctx[1] */
    bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
    events.perf_submit(ctx, &ev, sizeof(ev));
    return 0;
}
"""


class Event(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("old_pid", ctypes.c_uint32),
                ("comm", ctypes.c_char * 16)]


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
    bpf = BPF(text=SOURCE)
    seen = 0

    def on_event(_cpu: int, data: int, _size: int) -> None:
        nonlocal seen
        seen += 1
        ev = ctypes.cast(data, ctypes.POINTER(Event)).contents
        print(f"{ev.pid:>7} {ev.old_pid:>7} {ev.comm.decode(errors='replace')}", flush=True)

    bpf["events"].open_perf_buffer(on_event, page_cnt=64)   # before any event can come
    try:
        with hook.attach(bpf) as link:   # the module's one function: on_exec
            print(f"attached {link.hook} -> {link.program.fn_name} via {link.via}: tracing "
                  f"exec for {args.duration:g} s", flush=True)
            print(f"{'PID':>7} {'OLD PID':>7} COMM", flush=True)
            deadline = time.monotonic() + args.duration
            try:
                while time.monotonic() < deadline:
                    bpf.perf_buffer_poll(timeout=100)
            except KeyboardInterrupt:
                pass
    except ebpfhooks.EbpfHooksError as err:
        print(f"exec_tpbtf: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    print(f"{seen} execs seen", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
