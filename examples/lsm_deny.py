#!/usr/bin/env python3
"""Deny every file open of one command for a while, with a BPF LSM program on file_open.

A BPF LSM program runs at the kernel's security check (security_file_open, through
bpf_lsm_file_open) and may refuse the operation: it returns 0 to allow, a negative
errno to deny. This one compares the caller's command name (comm) with ``--comm`` and
returns -EPERM for it, counting each denial per process; every other process is
untouched. The program has a name of its own (ebpfhooks loads it at the hook's BTF id;
bcc alone would need LSM_PROBE's lsm__file_open). When the tool exits, the link is
detached and the command can open files again.

BPF LSM programs need the BPF LSM active (``bpf`` in /sys/kernel/security/lsm: built
with CONFIG_BPF_LSM and listed in the lsm= boot order) and BPF trampolines; where the
kernel lacks either, the tool says which and exits 1. Minimum kernel 5.7.

    sudo .venv/bin/python examples/lsm_deny.py --comm cat --duration 10
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import sys
import time

import ebpfhooks

SOURCE = r"""
struct name_t {
    char c[16];
};
BPF_ARRAY(target, struct name_t, 1);   /* the comm to deny, set from Python */
BPF_HASH(denied, u32, u64, 4096);

static inline int is_target(void) {
    char comm[16] = {};
    int zero = 0;
    struct name_t *t = target.lookup(&zero);
    if (!t)
        return 0;
    bpf_get_current_comm(&comm, sizeof(comm));
#pragma unroll
    for (int i = 0; i < 16; i++) {
        if (comm[i] != t->c[i])
            return 0;
        if (comm[i] == 0)
            return 1;
    }
    return 1;
}

/* lsm:file_open(struct file *file) */
BPF_PROG(deny_open, struct file *file) {
    if (!is_target())
        return 0;
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    denied.increment(pid);
    return -EPERM_;     /* EPERM, from cflags */
}
"""


def comm_name(text: str) -> bytes:
    """``text`` as a comm (at most 15 bytes, no NUL), or raise ValueError."""
    raw = text.encode()
    if not raw or len(raw) > 15 or b"\0" in raw:
        raise ValueError(f"--comm {text!r}: a command name is 1 to 15 bytes (what ps -o comm "
                         "shows)")
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comm", required=True, help="the command name whose opens to deny")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds to deny (default 10)")
    args = parser.parse_args(argv)
    try:
        name = comm_name(args.comm)
    except ValueError as err:
        print(f"lsm_deny: {err}", file=sys.stderr)
        return 2
    hook = ebpfhooks.Lsm("file_open")
    try:
        hook.check_supported()   # before a compile: say at once what the kernel lacks
    except ebpfhooks.NotSupportedError as err:
        print(f"lsm_deny: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1

    bpf = BPF(text=SOURCE, cflags=[f"-DEPERM_={errno.EPERM}"])
    value = bpf["target"].Leaf()
    ctypes.memmove(ctypes.addressof(value), name, len(name))
    bpf["target"][ctypes.c_int(0)] = value
    try:
        with hook.attach(bpf, fn_name="deny_open") as link:
            print(f"attached {link.hook} -> {link.program.fn_name}: denying file opens by "
                  f"{args.comm!r} for {args.duration:g} s", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.duration)
        denied = {int(k.value): int(v.value) for k, v in bpf["denied"].items()}
    except ebpfhooks.EbpfHooksError as err:
        print(f"lsm_deny: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    print(f"{'PID':>7} {'DENIED':>7}")
    for pid, n in sorted(denied.items()):
        print(f"{pid:>7} {n:>7}")
    print(f"detached: {sum(denied.values())} opens denied to {args.comm!r} in "
          f"{len(denied)} processes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
