"""Raw bpf(2) and perf_event_open(2) calls, through ctypes over libc's ``syscall(2)``.

No bcc and no libbpf here: each ``bpf_attr`` variant used is an explicit ctypes
structure whose layout is written next to it (checked against the kernel's
``include/uapi/linux/bpf.h``; tests/test_bpfsys.py compares it with the installed
uapi header where the header has the field), and every failure becomes a typed
error of :mod:`ebpfhooks.errors` naming what was asked and what to do::

    from ebpfhooks import bpfsys
    prog = bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, insns, name="count",
                            expected_attach_type=bpfsys.BPF_TRACE_UPROBE_MULTI)
    link = bpfsys.uprobe_multi(prog, "/usr/bin/bash", [0x3f0a0, 0x3f1c0])
    ...
    os.close(link)  # detaches every uprobe of the link at once

What is here:

* :func:`prog_load` (``BPF_PROG_LOAD``, verifier log captured on failure),
* :func:`link_create` (``BPF_LINK_CREATE``), :func:`raw_tracepoint_open`
  (``BPF_RAW_TRACEPOINT_OPEN``: raw tracepoints, tp_btf, fentry/fexit/lsm),
* :func:`uprobe_multi` (one ``BPF_LINK_CREATE`` of type ``BPF_TRACE_UPROBE_MULTI`` for
  many uprobes in one file, kernel 6.6),
* :func:`perf_uprobe` (one uprobe as a perf event of the ``uprobe`` PMU, with a USDT
  semaphore offset and, through a ``BPF_PERF_EVENT`` link, a BPF cookie) and
  :func:`uprobe_opener`, the same call in the shape ebpfhooks' bcc adapter uses,
* :func:`btf_obj_fd` (the fd of a kernel BTF object, vmlinux's or a module's, which
  ``attach_btf_obj_fd`` of a module function's fentry needs),
* :func:`link_create_fn`, the XDP adapter's ``bpf_link_create``.

Every fd returned belongs to the caller: closing a link fd detaches it, closing a
program fd unloads the program once nothing else holds it.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from ebpfhooks.errors import (
    AttachError,
    BinaryNotFoundError,
    HookPermissionError,
    NotSupportedError,
    ProcessNotFoundError,
    ProgramError,
    SpecError,
)

__all__ = [
    "BPF_F_UPROBE_MULTI_RETURN",
    "BPF_LINK_CREATE",
    "BPF_LSM_MAC",
    "BPF_MODIFY_RETURN",
    "BPF_PERF_EVENT",
    "BPF_PROG_LOAD",
    "BPF_PROG_TYPE_KPROBE",
    "BPF_PROG_TYPE_LSM",
    "BPF_PROG_TYPE_RAW_TRACEPOINT",
    "BPF_PROG_TYPE_TRACEPOINT",
    "BPF_PROG_TYPE_TRACING",
    "BPF_RAW_TRACEPOINT_OPEN",
    "BPF_TRACE_FENTRY",
    "BPF_TRACE_FEXIT",
    "BPF_TRACE_RAW_TP",
    "BPF_TRACE_UPROBE_MULTI",
    "BPF_XDP",
    "BtfInfo",
    "LinkCreateAttr",
    "PerfEventAttr",
    "PerfUprobe",
    "ProgLoadAttr",
    "RawTracepointOpenAttr",
    "btf_obj_fd",
    "link_create",
    "link_create_fn",
    "perf_uprobe",
    "prog_load",
    "raw_tracepoint_open",
    "uprobe_multi",
    "uprobe_opener",
]

# --------------------------------------------------------------------------- numbers

#: bpf(2) syscall numbers by machine (``uname -m``).
_NR_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "riscv64": 280, "ppc64le": 361,
           "s390x": 351, "i686": 357}
#: perf_event_open(2) numbers, on the machines whose ioctl numbers are asm-generic's.
_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "s390x": 331}

# enum bpf_cmd (include/uapi/linux/bpf.h): the commands used here
BPF_PROG_LOAD = 5
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_BTF_GET_FD_BY_ID = 19
BPF_BTF_GET_NEXT_ID = 23
BPF_LINK_CREATE = 28

# enum bpf_prog_type
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_XDP = 6
BPF_PROG_TYPE_PERF_EVENT = 7
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_PROG_TYPE_TRACING = 26
BPF_PROG_TYPE_LSM = 29

# enum bpf_attach_type
BPF_TRACE_RAW_TP = 23  # tp_btf
BPF_TRACE_FENTRY = 24
BPF_TRACE_FEXIT = 25
BPF_MODIFY_RETURN = 26
BPF_LSM_MAC = 27
BPF_XDP = 37  # XDP links need kernel 5.9
BPF_PERF_EVENT = 41  # a BPF program on a perf event as a bpf_link (bpf_cookie), 5.15
BPF_TRACE_KPROBE_MULTI = 42
BPF_TRACE_UPROBE_MULTI = 48  # 6.6

#: ``link_create.uprobe_multi.flags``: the uprobes are return probes.
BPF_F_UPROBE_MULTI_RETURN = 1

#: Kernel-internal "not supported" errno that reaches user space from bpf(2).
ENOTSUPP = 524

_PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
_PERF_EVENT_IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)
_PERF_FLAG_FD_CLOEXEC = 8

#: Names for messages.
PROG_TYPE_NAMES = {
    BPF_PROG_TYPE_SOCKET_FILTER: "SOCKET_FILTER", BPF_PROG_TYPE_KPROBE: "KPROBE",
    BPF_PROG_TYPE_TRACEPOINT: "TRACEPOINT", BPF_PROG_TYPE_XDP: "XDP",
    BPF_PROG_TYPE_PERF_EVENT: "PERF_EVENT", BPF_PROG_TYPE_RAW_TRACEPOINT: "RAW_TRACEPOINT",
    BPF_PROG_TYPE_TRACING: "TRACING", BPF_PROG_TYPE_LSM: "LSM",
}
ATTACH_TYPE_NAMES = {
    BPF_TRACE_RAW_TP: "BPF_TRACE_RAW_TP (tp_btf)", BPF_TRACE_FENTRY: "BPF_TRACE_FENTRY",
    BPF_TRACE_FEXIT: "BPF_TRACE_FEXIT", BPF_MODIFY_RETURN: "BPF_MODIFY_RETURN",
    BPF_LSM_MAC: "BPF_LSM_MAC", BPF_XDP: "BPF_XDP", BPF_PERF_EVENT: "BPF_PERF_EVENT",
    BPF_TRACE_KPROBE_MULTI: "BPF_TRACE_KPROBE_MULTI",
    BPF_TRACE_UPROBE_MULTI: "BPF_TRACE_UPROBE_MULTI",
}
#: Attach types whose programs run from a BPF trampoline (the kernel makes one per
#: target function; it needs CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS and a JIT).
TRAMPOLINE_ATTACH_TYPES = frozenset({BPF_TRACE_FENTRY, BPF_TRACE_FEXIT, BPF_MODIFY_RETURN,
                                     BPF_LSM_MAC})
#: (program type, expected attach type) -> (what it is, the first kernel with it).
_MIN_KERNEL = {
    (BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP): ("tp_btf programs", "5.5"),
    (BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY): ("fentry programs", "5.5"),
    (BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT): ("fexit programs", "5.5"),
    (BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN): ("fmod_ret programs", "5.7"),
    (BPF_PROG_TYPE_LSM, BPF_LSM_MAC): ("BPF LSM programs", "5.7"),
    (BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI): ("kprobe_multi programs", "5.18"),
    (BPF_PROG_TYPE_KPROBE, BPF_TRACE_UPROBE_MULTI): ("uprobe_multi programs", "6.6"),
}

CAPS_TRACING = "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)"
_TRACING_TYPES = frozenset({BPF_PROG_TYPE_KPROBE, BPF_PROG_TYPE_TRACEPOINT,
                            BPF_PROG_TYPE_PERF_EVENT, BPF_PROG_TYPE_RAW_TRACEPOINT,
                            BPF_PROG_TYPE_TRACING, BPF_PROG_TYPE_LSM})

# --------------------------------------------------------------------------- bpf_attr variants
# Offsets are those of the kernel's union bpf_attr (include/uapi/linux/bpf.h, x86_64 and
# every other Linux ABI: __aligned_u64 is 8-aligned, the union is aligned(8)). A size
# smaller than the kernel's bpf_attr is fine (the rest reads as zero); a larger one is
# accepted as long as the bytes the kernel does not know are zero (E2BIG otherwise).

_u8, _u16, _u32, _s32, _u64 = (ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32,
                               ctypes.c_int32, ctypes.c_uint64)


class ProgLoadAttr(ctypes.Structure):
    """``bpf_attr`` for ``BPF_PROG_LOAD``, up to ``fd_array`` (128 bytes).

    prog_type@0 insn_cnt@4 insns@8 license@16 log_level@24 log_size@28 log_buf@32
    kern_version@40 prog_flags@44 prog_name[16]@48 prog_ifindex@64
    expected_attach_type@68 (4.17) prog_btf_fd@72 func_info_rec_size@76 func_info@80
    func_info_cnt@88 line_info_rec_size@92 line_info@96 line_info_cnt@104
    attach_btf_id@108 (5.5) attach_btf_obj_fd@112 (union with attach_prog_fd; a module
    BTF's fd since 5.11) core_relo_cnt@116 fd_array@120. Later fields (core_relos@128,
    core_relo_rec_size@136, log_true_size@140 (6.4), prog_token_fd@144 (6.9)) are not set.
    """

    _fields_ = [
        ("prog_type", _u32), ("insn_cnt", _u32), ("insns", _u64), ("license", _u64),
        ("log_level", _u32), ("log_size", _u32), ("log_buf", _u64), ("kern_version", _u32),
        ("prog_flags", _u32), ("prog_name", ctypes.c_char * 16), ("prog_ifindex", _u32),
        ("expected_attach_type", _u32), ("prog_btf_fd", _u32), ("func_info_rec_size", _u32),
        ("func_info", _u64), ("func_info_cnt", _u32), ("line_info_rec_size", _u32),
        ("line_info", _u64), ("line_info_cnt", _u32), ("attach_btf_id", _u32),
        ("attach_btf_obj_fd", _u32), ("core_relo_cnt", _u32), ("fd_array", _u64),
    ]


class RawTracepointOpenAttr(ctypes.Structure):
    """``bpf_attr.raw_tracepoint`` for ``BPF_RAW_TRACEPOINT_OPEN`` (16 bytes).

    name@0 (a ``char *``; 0 for tracing programs, which carry their target in
    ``attach_btf_id``) prog_fd@8, 4 bytes of padding; cookie@16 (6.10) is not set.
    """

    _fields_ = [("name", _u64), ("prog_fd", _u32), ("_pad", _u32)]


class _UprobeMulti(ctypes.Structure):
    """``link_create.uprobe_multi`` (6.6): path@16 offsets@24 ref_ctr_offsets@32
    cookies@40 cnt@48 flags@52 pid@56 (offsets within bpf_attr; 48 bytes with the pad)."""

    _fields_ = [("path", _u64), ("offsets", _u64), ("ref_ctr_offsets", _u64),
                ("cookies", _u64), ("cnt", _u32), ("flags", _u32), ("pid", _u32),
                ("_pad", _u32)]


class _PerfEventLink(ctypes.Structure):
    """``link_create.perf_event`` (5.15): bpf_cookie@16."""

    _fields_ = [("bpf_cookie", _u64)]


class _TracingLink(ctypes.Structure):
    """``link_create.tracing`` (5.19 cookie): target_btf_id@16, pad, cookie@24."""

    _fields_ = [("target_btf_id", _u32), ("_pad", _u32), ("cookie", _u64)]


class _LinkCreateTail(ctypes.Union):
    _fields_ = [("target_btf_id", _u32), ("perf_event", _PerfEventLink),
                ("tracing", _TracingLink), ("uprobe_multi", _UprobeMulti)]


class LinkCreateAttr(ctypes.Structure):
    """``bpf_attr.link_create`` for ``BPF_LINK_CREATE`` (64 bytes).

    prog_fd@0 target_fd@4 (union with target_ifindex) attach_type@8 flags@12, then a
    union at 16: target_btf_id, perf_event.bpf_cookie, tracing.{target_btf_id, cookie},
    uprobe_multi.{path, offsets, ref_ctr_offsets, cookies, cnt, flags, pid} (the
    largest, 16..60). Kernels before 6.6 know link_create only up to
    ``kprobe_multi.cookies`` (ends at 48) and refuse non-zero bytes past it with EINVAL.
    """

    _fields_ = [("prog_fd", _u32), ("target_fd", _u32), ("attach_type", _u32),
                ("flags", _u32), ("u", _LinkCreateTail)]


class _IdAttr(ctypes.Structure):
    """``BPF_*_GET_NEXT_ID`` / ``BPF_*_GET_FD_BY_ID``: start_id (or btf_id)@0 next_id@4
    open_flags@8 (12 bytes)."""

    _fields_ = [("id", _u32), ("next_id", _u32), ("open_flags", _u32)]


class _InfoAttr(ctypes.Structure):
    """``bpf_attr.info`` for ``BPF_OBJ_GET_INFO_BY_FD``: bpf_fd@0 info_len@4 info@8."""

    _fields_ = [("bpf_fd", _u32), ("info_len", _u32), ("info", _u64)]


class BtfInfo(ctypes.Structure):
    """``struct bpf_btf_info`` (32 bytes): btf@0 btf_size@8 id@12 name@16 (5.11)
    name_len@24 kernel_btf@28 (5.11)."""

    _fields_ = [("btf", _u64), ("btf_size", _u32), ("id", _u32), ("name", _u64),
                ("name_len", _u32), ("kernel_btf", _u32)]


class PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr`` up to ``PERF_ATTR_SIZE_VER5`` (112 bytes).

    type@0 size@4 config@8 sample_period@16 sample_type@24 read_format@32 the bit
    field word@40 (``flags`` here: disabled is bit 0) wakeup_events@48 bp_type@52
    config1@56 (a uprobe's path pointer) config2@64 (its file offset)
    branch_sample_type@72 sample_regs_user@80 sample_stack_user@88 clockid@92
    sample_regs_intr@96 aux_watermark@104 sample_max_stack@108.
    """

    _fields_ = [("type", _u32), ("size", _u32), ("config", _u64), ("sample_period", _u64),
                ("sample_type", _u64), ("read_format", _u64), ("flags", _u64),
                ("wakeup_events", _u32), ("bp_type", _u32), ("config1", _u64),
                ("config2", _u64), ("branch_sample_type", _u64), ("sample_regs_user", _u64),
                ("sample_stack_user", _u32), ("clockid", _s32), ("sample_regs_intr", _u64),
                ("aux_watermark", _u32), ("sample_max_stack", _u16), ("_reserved_2", _u16)]


# --------------------------------------------------------------------------- syscalls

_LIBC: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL:
    if not _LIBC:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.ioctl.restype = ctypes.c_int
        _LIBC.append(libc)
    return _LIBC[0]


def _sys_bpf(cmd: int, attr: ctypes.Structure) -> int:
    """``bpf(cmd, &attr, sizeof(attr))``: the result, or ``-errno`` (the one syscall path).

    Tests replace this function to fake the kernel.
    """
    nr = _NR_BPF.get(platform.machine())
    if nr is None:
        return -_errno.ENOSYS
    ctypes.set_errno(0)
    ret = int(_libc().syscall(ctypes.c_long(nr), ctypes.c_int(cmd), ctypes.byref(attr),
                              ctypes.c_uint(ctypes.sizeof(attr))))
    return ret if ret >= 0 else -(ctypes.get_errno() or _errno.EINVAL)


def _addr(buf: ctypes.Array[ctypes.c_char] | ctypes.Array[ctypes.c_uint64] | None) -> int:
    return 0 if buf is None else ctypes.addressof(buf)


def _strerror(code: int) -> str:
    if code == ENOTSUPP:
        return "ENOTSUPP (524, not supported)"
    return f"{_errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def _missing_caps(prog_type: int) -> str | None:
    """The capability this process lacks to load ``prog_type`` programs, or None."""
    from ebpfhooks.kernel.features import capabilities

    try:
        have = capabilities()
    except (OSError, ValueError):
        return None
    if "CAP_SYS_ADMIN" in have:
        return None
    if "CAP_BPF" not in have:
        return "CAP_BPF"
    if prog_type in _TRACING_TYPES and "CAP_PERFMON" not in have:
        return "CAP_PERFMON"
    return None


def _permission(what: str, code: int, missing: str, needs: str) -> HookPermissionError:
    return HookPermissionError(
        f"{what} was refused ({_strerror(code)}): this process lacks {missing}; it needs "
        f"{needs}; run as root", capability=missing)


# --------------------------------------------------------------------------- BPF_PROG_LOAD

_NAME_OK = re.compile(r"[A-Za-z0-9_.]*")
_LOG_SIZES = (1 << 20, 16 << 20)
#: Lines of the verifier log kept in a ProgramError.
LOG_TAIL_LINES = 12


def _kern_version() -> int:
    from ebpfhooks.kernel.features import kernel_version

    major, minor, patch = kernel_version()
    return (major << 16) | (minor << 8) | min(patch, 255)


def _describe_type(prog_type: int, expected_attach_type: int) -> str:
    text = f"a {PROG_TYPE_NAMES.get(prog_type, f'type-{prog_type}')} program"
    if expected_attach_type:
        text += (" with expected attach type "
                 + ATTACH_TYPE_NAMES.get(expected_attach_type, str(expected_attach_type)))
    return text


def log_tail(log: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of a verifier log, joined by newlines.

    >>> log_tail("0: R1=ctx()\\n\\nR0 !read_ok\\nprocessed 2 insns\\n", 2)
    'R0 !read_ok\\nprocessed 2 insns'
    """
    kept = [line for line in log.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def prog_load(
    prog_type: int,
    insns: bytes,
    *,
    license: str = "GPL",
    name: str = "",
    expected_attach_type: int = 0,
    attach_btf_id: int = 0,
    attach_btf_obj_fd: int = 0,
    log_level: int = 0,
    what: str | None = None,
) -> int:
    """Load a BPF program with ``BPF_PROG_LOAD``; return its fd (the caller closes it).

    ``insns`` are the raw 8-byte instructions (for example what bcc compiled:
    ``ebpfhooks._bcc.compiled_insns``), map fds already in place. ``name`` (what
    ``bpftool prog list`` shows) is cut to 15 characters; only letters, digits, ``_`` and
    ``.`` are allowed. ``attach_btf_id`` is the BTF type id of the target of a tracing or
    LSM program (:mod:`ebpfhooks.kernel.btf`); ``attach_btf_obj_fd`` the fd of the module
    BTF it is in (:func:`btf_obj_fd`; 0 for vmlinux). When the load fails, it is tried
    once more with a verifier log (level ``max(log_level, 1)``) so the error can say why.

    >>> fd = prog_load(BPF_PROG_TYPE_KPROBE, bytes.fromhex("b700000000000000"  # r0 = 0
    ...                                                    "9500000000000000"), # exit
    ...                name="nop")  # doctest: +SKIP

    Minimum kernel: 3.18 (BPF_PROG_LOAD); names 4.15, expected_attach_type 4.17,
    attach_btf_id 5.5 (tp_btf, fentry/fexit), 5.7 (LSM), attach_btf_obj_fd 5.11.

    Raises:
        HookPermissionError: the process lacks CAP_BPF (or CAP_PERFMON for tracing).
        NotSupportedError: the kernel does not know the program type or attach type, or
            (trampoline types: fentry, fexit, fmod_ret, LSM) cannot build BPF trampolines.
        ProgramError: the verifier rejected the program (the log's tail is in the
            message), the program is too large, or the arguments are malformed.
    """
    what = what or (f"loading {name!r}" if name else "loading the program")
    if not isinstance(insns, (bytes, bytearray)) or not insns or len(insns) % 8:
        raise ProgramError(
            f"{what}: the instructions must be a non-empty bytes object whose length is a "
            f"multiple of 8 (struct bpf_insn), got {type(insns).__name__} of "
            f"{len(insns) if isinstance(insns, (bytes, bytearray)) else '?'} bytes")
    if not _NAME_OK.fullmatch(name):
        raise ProgramError(
            f"{what}: BPF program name {name!r} may contain only letters, digits, '_' and "
            "'.' (the kernel refuses others)")
    buf = ctypes.create_string_buffer(bytes(insns), len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = ProgLoadAttr(
        prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ctypes.addressof(buf),
        license=ctypes.addressof(lic), prog_name=name[:15].encode(),
        expected_attach_type=expected_attach_type, attach_btf_id=attach_btf_id,
        attach_btf_obj_fd=attach_btf_obj_fd,
        kern_version=_kern_version() if prog_type == BPF_PROG_TYPE_KPROBE else 0)
    log = ""
    if log_level:
        fd, log = _load_with_log(attr, log_level)
    else:
        fd = _sys_bpf(BPF_PROG_LOAD, attr)
        if fd < 0 and -fd not in (_errno.ENOSYS, _errno.EFAULT):
            first = fd
            fd, log = _load_with_log(attr, 1)
            if fd >= 0:  # loaded the second time (a passing state): keep it
                return fd
            fd = first if -fd == _errno.ENOSPC else fd
    if fd >= 0:
        return fd
    raise _load_error(-fd, log, attr, what)


def _load_with_log(attr: ProgLoadAttr, level: int) -> tuple[int, str]:
    """Load with a verifier log; a bigger buffer once if the first one was too small."""
    fd, text = -_errno.EINVAL, ""
    for size in _LOG_SIZES:
        log = ctypes.create_string_buffer(size)
        attr.log_level, attr.log_size, attr.log_buf = level, size, ctypes.addressof(log)
        fd = _sys_bpf(BPF_PROG_LOAD, attr)
        text = log.value.decode(errors="replace")
        if fd != -_errno.ENOSPC:
            break
    attr.log_level, attr.log_size, attr.log_buf = 0, 0, 0
    return fd, text


def _load_error(code: int, log: str, attr: ProgLoadAttr, what: str) -> Exception:
    """The typed error for a failed ``BPF_PROG_LOAD`` (``code`` is the errno)."""
    prog_type, attach = int(attr.prog_type), int(attr.expected_attach_type)
    kind = _describe_type(prog_type, attach)
    tail = log_tail(log)
    shown = f"\nverifier log (last lines):\n{tail}" if tail else ""
    if code in (_errno.EPERM, _errno.EACCES):
        missing = _missing_caps(prog_type)
        if missing is not None:
            return _permission(f"{what} ({kind})", code, missing, CAPS_TRACING
                               if prog_type in _TRACING_TYPES else "CAP_BPF (or CAP_SYS_ADMIN)")
        if attach in TRAMPOLINE_ATTACH_TYPES and prog_type in (BPF_PROG_TYPE_TRACING,
                                                                BPF_PROG_TYPE_LSM):
            # Privileged and refused: for fentry/fexit/LSM the kernel answers EPERM when
            # it cannot set up the trampoline's ftrace direct call for the target.
            return _no_trampolines(what, kind, code, tail)
        if tail:
            return ProgramError(f"{what}: the verifier rejected {kind} "
                                f"({_strerror(code)}){shown}")
        return HookPermissionError(
            f"{what} ({kind}) was refused ({_strerror(code)}) although this process has "
            "CAP_BPF/CAP_SYS_ADMIN: a security module or kernel lockdown may forbid it "
            "(see: ebpfhooks doctor)", capability="CAP_SYS_ADMIN")
    if code in (ENOTSUPP, _errno.EOPNOTSUPP):
        if attach in TRAMPOLINE_ATTACH_TYPES:
            return _no_trampolines(what, kind, code, tail)
        feature, since = _MIN_KERNEL.get((prog_type, attach), (kind, "a newer kernel"))
        return NotSupportedError(
            f"{what}: this kernel does not support {feature} ({_strerror(code)}; they "
            f"need kernel {since} with BPF support for them built in){shown}",
            missing=feature)
    if code == _errno.E2BIG:
        if tail:
            return ProgramError(f"{what}: {kind} is too large or too complex for the verifier "
                                f"(E2BIG); split it or simplify its loops{shown}")
        return ProgramError(
            f"{what}: the kernel refused {kind} with E2BIG: either its "
            f"{int(attr.insn_cnt)} instructions are more than the kernel allows, or the "
            "kernel is older than a field set in bpf_attr (attach_btf_obj_fd needs 5.11)")
    if code == _errno.EINVAL and not tail:
        known = _MIN_KERNEL.get((prog_type, attach))
        if known is not None:
            return NotSupportedError(
                f"{what}: the kernel refused {kind} with EINVAL and no verifier log: it "
                f"does not know {known[0]} (kernel {known[1]} or later)", missing=known[0])
        return ProgramError(
            f"{what}: the kernel refused {kind} with EINVAL and no verifier log (an unknown "
            "program or attach type for this kernel, a bad name or license, or a "
            "malformed instruction)")
    if code == _errno.ENOSPC:
        return ProgramError(f"{what}: the verifier log did not fit in "
                            f"{_LOG_SIZES[-1] >> 20} MiB{shown}")
    if tail:
        return ProgramError(f"{what}: the verifier rejected {kind} ({_strerror(code)})"
                            f"{shown}")
    return ProgramError(f"{what}: the kernel refused {kind}: {_strerror(code)}")


def _no_trampolines(what: str, kind: str, code: int, tail: str) -> NotSupportedError:
    shown = f"\nverifier log (last lines):\n{tail}" if tail else ""
    return NotSupportedError(
        f"{what}: the kernel refused {kind} ({_strerror(code)}) although this process is "
        "privileged: this kernel cannot attach BPF trampolines, which fentry, fexit, "
        "fmod_ret and LSM programs run from (they need a BPF JIT and "
        "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS with ftrace usable; kernels without them "
        f"refuse such programs with EPERM or ENOTSUPP even to root){shown}",
        missing="BPF trampolines (fentry/fexit/fmod_ret/LSM programs)")


# --------------------------------------------------------------------------- links


def _link_error(what: str, code: int, hint: str = "") -> Exception:
    if code in (_errno.EPERM, _errno.EACCES):
        missing = _missing_caps(BPF_PROG_TYPE_KPROBE) or "CAP_SYS_ADMIN"
        return _permission(what, code, missing, CAPS_TRACING)
    msg = f"the kernel refused {what}: {_strerror(code)}"
    if code in (_errno.EMFILE, _errno.ENFILE):
        msg += ("; the open-file limit is reached: raise it (`ulimit -n 65536`, or "
                "resource.setrlimit(RLIMIT_NOFILE))")
    elif code in (_errno.EEXIST, _errno.EBUSY):
        msg += "; something is already attached there"
    elif hint:
        msg += f"; {hint}"
    return AttachError(msg, errno=code)


def link_create(
    prog_fd: int,
    target_fd: int,
    attach_type: int,
    *,
    flags: int = 0,
    target_btf_id: int = 0,
    cookie: int | None = None,
    what: str | None = None,
) -> int:
    """``BPF_LINK_CREATE``: attach ``prog_fd`` to ``target_fd``; return the link's fd.

    Closing the fd detaches (the kernel also closes it when the process dies).
    ``target_btf_id`` is for tracing links; ``cookie`` sets ``perf_event.bpf_cookie``
    (``attach_type`` :data:`BPF_PERF_EVENT`, 5.15) or ``tracing.cookie``
    (fentry/fexit, 6.0).

    >>> link = link_create(prog, ifindex, BPF_XDP, flags=2)  # doctest: +SKIP

    Minimum kernel: 5.7 (bpf_link); each attach type has its own (XDP 5.9, perf event
    5.15, uprobe_multi 6.6: use :func:`uprobe_multi`).

    Raises:
        HookPermissionError: not privileged.
        NotSupportedError: EINVAL/EOPNOTSUPP where the kernel lacks this attach type.
        AttachError: any other refusal, with the errno.
    """
    what = what or "BPF_LINK_CREATE with attach type " + ATTACH_TYPE_NAMES.get(
        attach_type, str(attach_type))
    attr = LinkCreateAttr(prog_fd=prog_fd, target_fd=target_fd & 0xFFFFFFFF,
                          attach_type=attach_type, flags=flags)
    if cookie is not None and attach_type == BPF_PERF_EVENT:
        attr.u.perf_event.bpf_cookie = cookie
    elif cookie is not None:
        attr.u.tracing.target_btf_id = target_btf_id
        attr.u.tracing.cookie = cookie
    elif target_btf_id:
        attr.u.target_btf_id = target_btf_id
    fd = _sys_bpf(BPF_LINK_CREATE, attr)
    if fd >= 0:
        return fd
    code = -fd
    if code in (ENOTSUPP, _errno.EOPNOTSUPP):
        return _raise(NotSupportedError(f"{what}: this kernel does not support it "
                                        f"({_strerror(code)})", missing=what))
    return _raise(_link_error(what, code, "check that the program was loaded with the "
                                          "matching expected attach type"))


def _raise(err: Exception) -> int:
    raise err


def raw_tracepoint_open(prog_fd: int, name: str | None, *, what: str | None = None) -> int:
    """``BPF_RAW_TRACEPOINT_OPEN``: attach a raw tracepoint or tracing program; return the fd.

    ``name`` is the raw tracepoint for a RAW_TRACEPOINT program and ``None`` for a
    TRACING (tp_btf, fentry, fexit) or LSM program, whose target is the
    ``attach_btf_id`` it was loaded with. Closing the fd detaches.

    >>> link = raw_tracepoint_open(prog, None)  # a tp_btf program  # doctest: +SKIP

    Minimum kernel: 4.17 (raw tracepoints), 5.5 (tracing programs), 5.7 (LSM).

    Raises:
        HookPermissionError, NotSupportedError (trampolines missing), AttachError
        (ENOENT: no raw tracepoint of that name), SpecError (a name with a NUL byte).
    """
    label = name if name is not None else "the program's BTF target"
    what = what or f"attaching a BPF program to {label}"
    if name is not None and (not name or "\0" in name):
        raise SpecError(f"raw tracepoint name {name!r} must be non-empty without NUL bytes")
    tp = ctypes.create_string_buffer(name.encode()) if name is not None else None
    attr = RawTracepointOpenAttr(name=_addr(tp), prog_fd=prog_fd)
    fd = _sys_bpf(BPF_RAW_TRACEPOINT_OPEN, attr)
    if fd >= 0:
        return fd
    code = -fd
    if code in (ENOTSUPP, _errno.EOPNOTSUPP) or (code == _errno.EPERM and name is None
                                                 and _missing_caps(BPF_PROG_TYPE_TRACING)
                                                 is None):
        raise _no_trampolines(what, "the program", code, "")
    if code == _errno.ENOENT and name is not None:
        raise AttachError(f"{what}: the kernel has no raw tracepoint {name!r} (ENOENT); "
                          "list them with: ebpfhooks list 'rawtracepoint:*'", errno=code)
    raise _link_error(what, code)


# --------------------------------------------------------------------------- uprobe_multi

_U64_MAX = (1 << 64) - 1
#: The kernel's MAX_UPROBE_MULTI_CNT: most uprobes one link may hold.
MAX_UPROBE_MULTI_CNT = 1 << 20


def _u64_array(values: Sequence[int], field: str, cnt: int) -> ctypes.Array[ctypes.c_uint64]:
    if len(values) != cnt:
        raise SpecError(f"uprobe_multi: {len(values)} {field} for {cnt} offsets "
                        "(expected exactly one per offset)")
    arr = (ctypes.c_uint64 * cnt)()
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64_MAX:
            raise SpecError(f"uprobe_multi: {field}[{i}] = {value!r} is not an int in "
                            "[0, 2**64)")
        arr[i] = value
    return arr


def _regular_file(path: str | os.PathLike[str], what: str) -> bytes:
    raw = os.fsencode(path)
    if not raw or b"\0" in raw:
        raise SpecError(f"{what}: path {raw!r} must be non-empty without NUL bytes")
    p = Path(os.fsdecode(raw))
    if not p.exists():
        raise BinaryNotFoundError(str(p), where="the file system",
                                  hint="give the path of the ELF file to probe")
    if not p.is_file():
        raise BinaryNotFoundError(str(p), where="the file system",
                                  hint=f"{p} is not a regular file: uprobes need an ELF file")
    return raw


def uprobe_multi(
    prog_fd: int,
    path: str | os.PathLike[str],
    offsets: Sequence[int],
    ref_ctr_offsets: Sequence[int] | None = None,
    cookies: Sequence[int] | None = None,
    *,
    retprobe: bool = False,
    pid: int | None = None,
    what: str | None = None,
) -> int:
    """Attach ``prog_fd`` at every file offset of ``path`` with one uprobe_multi link.

    One ``BPF_LINK_CREATE`` (attach type :data:`BPF_TRACE_UPROBE_MULTI`) makes all the
    uprobes; closing the returned fd removes all of them at once (and the kernel does it
    when the process dies, however it dies). The program must be a KPROBE program loaded
    with ``expected_attach_type=BPF_TRACE_UPROBE_MULTI``. ``offsets`` are file offsets
    (not virtual addresses); ``ref_ctr_offsets`` the file offsets of USDT semaphores the
    kernel counts up while the uprobe exists (0: none), one per offset; ``cookies`` the
    value ``bpf_get_attach_cookie(ctx)`` returns at each offset; ``retprobe`` makes them
    uretprobes; ``pid`` limits them to one process.

    >>> link = uprobe_multi(prog, "/usr/bin/bash", [0x8d6e0, 0x8d7a0],
    ...                     cookies=[1, 2])  # doctest: +SKIP
    >>> os.close(link)  # doctest: +SKIP

    Minimum kernel: 6.6 (:func:`ebpfhooks.kernel.features.uprobe_multi` probes for it).

    Raises:
        SpecError: empty or malformed offsets, cookies or ref_ctr_offsets.
        BinaryNotFoundError: ``path`` is missing or not a regular file.
        ProcessNotFoundError: no process ``pid``.
        NotSupportedError: the kernel has no uprobe_multi links (before 6.6) or no uprobes.
        HookPermissionError, AttachError: the kernel refused, with the errno.
    """
    what = what or f"{'uretprobes' if retprobe else 'uprobes'} on {os.fspath(path)!s}"
    cnt = len(offsets)
    if cnt == 0:
        raise SpecError(f"uprobe_multi for {what}: no offsets given (expected at least one)")
    if cnt > MAX_UPROBE_MULTI_CNT:
        raise SpecError(f"uprobe_multi for {what}: {cnt} offsets, more than one link may "
                        f"hold ({MAX_UPROBE_MULTI_CNT}); split them over several links")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)
                            or not 0 < pid < 1 << 31):
        raise SpecError(f"uprobe_multi: pid must be a positive int, got {pid!r}")
    raw = _regular_file(path, f"uprobe_multi for {what}")
    c_path = ctypes.create_string_buffer(raw)
    offs = _u64_array(offsets, "offsets", cnt)
    refs = _u64_array(ref_ctr_offsets, "ref_ctr_offsets", cnt) if ref_ctr_offsets else None
    cooks = _u64_array(cookies, "cookies", cnt) if cookies is not None else None
    attr = LinkCreateAttr(prog_fd=prog_fd, target_fd=0, attach_type=BPF_TRACE_UPROBE_MULTI,
                          flags=0)
    um = attr.u.uprobe_multi
    um.path, um.offsets, um.ref_ctr_offsets = (ctypes.addressof(c_path), _addr(offs),
                                               _addr(refs))
    um.cookies, um.cnt = _addr(cooks), cnt
    um.flags = BPF_F_UPROBE_MULTI_RETURN if retprobe else 0
    um.pid = pid or 0
    fd = _sys_bpf(BPF_LINK_CREATE, attr)
    if fd >= 0:
        return fd
    raise _uprobe_multi_error(-fd, what, raw, pid)


def _uprobe_multi_error(code: int, what: str, path: bytes, pid: int | None) -> Exception:
    where = f"uprobe_multi link for {what}"
    if code == _errno.EINVAL or code in (ENOTSUPP, _errno.EOPNOTSUPP):
        from ebpfhooks.kernel.features import FeatureStatus
        from ebpfhooks.kernel.features import uprobe_multi as probe

        feature = probe()
        if feature.status is FeatureStatus.NO or code != _errno.EINVAL:
            return NotSupportedError(
                f"{where}: this kernel has no uprobe_multi links ({_strerror(code)}; "
                f"{feature.reason}); they need kernel 6.6 built with CONFIG_UPROBES: attach "
                "the uprobes one by one (perf events) instead",
                missing="uprobe_multi links (kernel 6.6)")
        return AttachError(
            f"the kernel refused the {where}: {_strerror(code)}; the program must be a "
            "KPROBE program loaded with expected attach type BPF_TRACE_UPROBE_MULTI (48), "
            "every offset must be inside the file, and a uprobe already at one of the "
            "offsets must have the same ref_ctr_offset", errno=code)
    if code == _errno.ENOENT:
        return BinaryNotFoundError(os.fsdecode(path), where="the file system (the kernel "
                                   "could not open it)")
    if code == _errno.EBADF:
        return AttachError(f"the kernel refused the {where}: {_strerror(code)}; the "
                           "program fd is not a loaded BPF program, or the path is not a "
                           "regular file", errno=code)
    if code == _errno.ESRCH and pid is not None:
        return ProcessNotFoundError(str(pid), where="this pid namespace")
    if code == _errno.E2BIG:
        return AttachError(f"the kernel refused the {where}: too many offsets for one link "
                           f"(E2BIG; at most {MAX_UPROBE_MULTI_CNT})", errno=code)
    return _link_error(where, code)


# --------------------------------------------------------------------------- perf-event uprobes


class _UprobePmu:
    """The ``uprobe`` PMU as sysfs describes it, read once."""

    def __init__(self, pmu_type: int, ret_bit: int, ref_ctr_shift: int | None) -> None:
        self.type = pmu_type
        self.ret_bit = ret_bit
        self.ref_ctr_shift = ref_ctr_shift  # None: the kernel has no ref_ctr_offset (< 4.20)


_PMU: list[_UprobePmu | None] = []


def _config_field(text: str) -> tuple[str, int, int] | None:
    """``config:32-63`` -> ("config", 32, 63); ``config:0`` -> ("config", 0, 0)."""
    m = re.fullmatch(r"\s*(config\d?):(\d+)(?:-(\d+))?\s*", text)
    if m is None:
        return None
    lo = int(m.group(2))
    return m.group(1), lo, int(m.group(3) or lo)


def _uprobe_pmu() -> _UprobePmu | None:
    """The uprobe PMU (type, retprobe bit, ref_ctr_offset shift), or None without one."""
    if _PMU:
        return _PMU[0]
    from ebpfhooks.kernel.features import PMU_DIR

    pmu_dir = PMU_DIR / "uprobe"
    found: _UprobePmu | None = None
    try:
        pmu_type = int((pmu_dir / "type").read_text(encoding="ascii").strip())
        ret = _config_field((pmu_dir / "format" / "retprobe").read_text(encoding="ascii"))
    except (OSError, ValueError):
        ret = None
        pmu_type = -1
    if ret is not None and ret[0] == "config" and 0 <= ret[1] < 64:
        shift = None
        try:
            ref = _config_field((pmu_dir / "format" / "ref_ctr_offset").read_text(
                encoding="ascii"))
            if ref is not None and ref[0] == "config" and ref[2] == 63:
                shift = ref[1]
        except OSError:
            pass
        found = _UprobePmu(pmu_type, ret[1], shift)
    _PMU.append(found)
    return found


def _perf_event_open(attr: PerfEventAttr, pid: int, cpu: int) -> int:
    """perf_event_open(2): the fd or ``-errno``. Tests replace this function."""
    nr = _NR_PERF_EVENT_OPEN.get(platform.machine())
    if nr is None:
        return -_errno.ENOSYS
    ctypes.set_errno(0)
    fd = int(_libc().syscall(ctypes.c_long(nr), ctypes.byref(attr), ctypes.c_int(pid),
                             ctypes.c_int(cpu), ctypes.c_int(-1),
                             ctypes.c_ulong(_PERF_FLAG_FD_CLOEXEC)))
    return fd if fd >= 0 else -(ctypes.get_errno() or _errno.EINVAL)


def _ioctl(fd: int, request: int, arg: int) -> int:
    ctypes.set_errno(0)
    ret = int(_libc().ioctl(ctypes.c_int(fd), ctypes.c_ulong(request), ctypes.c_int(arg)))
    return 0 if ret == 0 else -(ctypes.get_errno() or _errno.EINVAL)


def _uprobe_attr(pmu: _UprobePmu, ret: bool, path: ctypes.Array[ctypes.c_char],
                 file_offset: int, ref_ctr_offset: int) -> PerfEventAttr:
    config = (1 << pmu.ret_bit) if ret else 0
    if ref_ctr_offset:
        assert pmu.ref_ctr_shift is not None
        config |= ref_ctr_offset << pmu.ref_ctr_shift
    return PerfEventAttr(type=pmu.type, size=ctypes.sizeof(PerfEventAttr), config=config,
                         sample_period=1, wakeup_events=1, config1=ctypes.addressof(path),
                         config2=file_offset)


_OPENER: list[Callable[..., int] | None] = []


def uprobe_opener() -> Callable[..., int] | None:
    """``open(prog_fd, ret, path, file_offset, pid, ref_ctr_offset=0) -> perf fd or -1``.

    The perf_event_open(2) + ``PERF_EVENT_IOC_SET_BPF`` + ``PERF_EVENT_IOC_ENABLE`` that
    libbcc's ``bpf_attach_uprobe`` makes through the uprobe PMU (kernel 4.17), with the
    PMU's type and bits read once per process: libbcc reads the sysfs files again for
    every probe (~28 us of ~80 per probe). Made once per process (cached). None where the
    PMU or the syscall number is unknown; -1 on any failure (the caller then lets
    libbcc's own call word the error).
    ``pid`` -1 is every process. A non-zero ``ref_ctr_offset`` (a USDT semaphore's file
    offset, kernel 4.20) gives -1 on kernels without it.

    >>> fd = uprobe_opener()(prog_fd, False, b"/usr/bin/bash", 0x8d6e0, -1)  # doctest: +SKIP

    Minimum kernel: 4.17.
    """
    if _OPENER:
        return _OPENER[0]
    pmu = _uprobe_pmu()
    if pmu is None or platform.machine() not in _NR_PERF_EVENT_OPEN:
        _OPENER.append(None)
        return None

    def open_uprobe(prog_fd: int, ret: bool, path: bytes, file_offset: int, pid: int,
                    ref_ctr_offset: int = 0) -> int:
        if ref_ctr_offset and pmu.ref_ctr_shift is None:
            return -1
        name = ctypes.create_string_buffer(path)
        attr = _uprobe_attr(pmu, ret, name, file_offset, ref_ctr_offset)
        # as libbcc: every process on CPU 0's event (the program runs on any CPU), or
        # one process on any CPU
        fd = _perf_event_open(attr, pid, 0 if pid == -1 else -1)
        if fd < 0:
            return -1
        if (_ioctl(fd, _PERF_EVENT_IOC_SET_BPF, prog_fd) != 0
                or _ioctl(fd, _PERF_EVENT_IOC_ENABLE, 0) != 0):
            os.close(fd)
            return -1
        return fd

    _OPENER.append(open_uprobe)
    return open_uprobe


class PerfUprobe:
    """One uprobe made as a perf event, owning its fds; :meth:`close` detaches it.

    ``perf_fd`` is the perf event; ``link_fd`` the ``BPF_PERF_EVENT`` link that carries
    a cookie (None when no cookie was asked for: the program is then set on the event
    with ``PERF_EVENT_IOC_SET_BPF``). Closing twice is harmless; it is a context manager.
    """

    def __init__(self, perf_fd: int, link_fd: int | None) -> None:
        self.perf_fd: int | None = perf_fd
        self.link_fd = link_fd

    def close(self) -> None:
        """Detach: close the link (if any), then the perf event."""
        link, perf = self.link_fd, self.perf_fd
        self.link_fd = self.perf_fd = None
        if link is not None:
            os.close(link)
        if perf is not None:
            os.close(perf)

    def __enter__(self) -> PerfUprobe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def perf_uprobe(
    prog_fd: int,
    path: str | os.PathLike[str],
    offset: int,
    *,
    retprobe: bool = False,
    pid: int | None = None,
    ref_ctr_offset: int = 0,
    cookie: int | None = None,
    what: str | None = None,
) -> PerfUprobe:
    """Attach ``prog_fd`` (a KPROBE program) as one uprobe at ``path`` + file ``offset``.

    The per-probe path: one perf event of the ``uprobe`` PMU per probe. With a
    ``cookie`` the program is attached through a ``BPF_PERF_EVENT`` link carrying it
    (``bpf_get_attach_cookie(ctx)`` returns it, as on a uprobe_multi link); without,
    through ``PERF_EVENT_IOC_SET_BPF``. ``ref_ctr_offset`` is a USDT semaphore's file
    offset (the kernel counts it up while the uprobe exists).

    >>> with perf_uprobe(prog, "/usr/bin/bash", 0x8d6e0, cookie=7):  # doctest: +SKIP
    ...     pass

    Minimum kernel: 4.17 (uprobe PMU), 4.20 (``ref_ctr_offset``), 5.15 (``cookie``).

    Raises:
        NotSupportedError: no uprobe PMU, no ref_ctr_offset support, no BPF_PERF_EVENT
            links (for a cookie).
        BinaryNotFoundError, ProcessNotFoundError, SpecError, HookPermissionError,
        AttachError: as :func:`uprobe_multi`.
    """
    what = what or f"{'uretprobe' if retprobe else 'uprobe'} at {os.fspath(path)!s}+{offset:#x}"
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= _U64_MAX:
        raise SpecError(f"{what}: offset {offset!r} is not an int in [0, 2**64)")
    for field, value in (("ref_ctr_offset", ref_ctr_offset), ("cookie", cookie)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= _U64_MAX):
            raise SpecError(f"{what}: {field} {value!r} is not an int in [0, 2**64)")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)
                            or not 0 < pid < 1 << 31):
        raise SpecError(f"{what}: pid must be a positive int, got {pid!r}")
    raw = _regular_file(path, what)
    pmu = _uprobe_pmu()
    if pmu is None or platform.machine() not in _NR_PERF_EVENT_OPEN:
        raise NotSupportedError(f"{what}: no uprobe PMU in /sys/bus/event_source/devices (or "
                                "an unknown machine); uprobes need CONFIG_UPROBE_EVENTS and "
                                "kernel 4.17", missing="uprobe PMU")
    if ref_ctr_offset and pmu.ref_ctr_shift is None:
        raise NotSupportedError(f"{what}: this kernel's uprobe PMU has no ref_ctr_offset "
                                "(USDT semaphores need kernel 4.20)",
                                missing="uprobe ref_ctr_offset (kernel 4.20)")
    c_path = ctypes.create_string_buffer(raw)
    attr = _uprobe_attr(pmu, retprobe, c_path, offset, ref_ctr_offset)
    c_pid = -1 if pid is None else pid
    perf = _perf_event_open(attr, c_pid, 0 if c_pid == -1 else -1)
    if perf < 0:
        code = -perf
        if code == _errno.ESRCH and pid is not None:
            raise ProcessNotFoundError(str(pid), where="this pid namespace")
        if code == _errno.ENOENT:
            raise BinaryNotFoundError(os.fsdecode(raw), where="the file system (the kernel "
                                      "could not open it)")
        raise _link_error(what, code, "the offset must be inside the file's executable code"
                          + ("; another uprobe there has a different ref_ctr_offset"
                             if ref_ctr_offset else ""))
    try:
        if cookie is not None:
            link = link_create(prog_fd, perf, BPF_PERF_EVENT, cookie=cookie,
                               what=f"{what} with a BPF cookie")
            code = -_ioctl(perf, _PERF_EVENT_IOC_ENABLE, 0)
            if code:
                os.close(link)
                raise _link_error(what, code)
            return PerfUprobe(perf, link)
        code = -_ioctl(perf, _PERF_EVENT_IOC_SET_BPF, prog_fd)
        if not code:
            code = -_ioctl(perf, _PERF_EVENT_IOC_ENABLE, 0)
        if code:
            raise _link_error(what, code)
        return PerfUprobe(perf, None)
    except AttachError as err:
        os.close(perf)
        if cookie is not None and err.errno == _errno.EINVAL:
            from ebpfhooks.kernel.features import FeatureStatus, perf_link

            if perf_link().status is FeatureStatus.NO:
                raise NotSupportedError(
                    f"{what}: a BPF cookie on a perf-event uprobe needs BPF_PERF_EVENT links "
                    f"(kernel 5.15); {perf_link().reason}: attach without a cookie",
                    missing="BPF_PERF_EVENT links (kernel 5.15)") from err
        raise
    except BaseException:
        os.close(perf)
        raise


# --------------------------------------------------------------------------- BTF objects


def btf_obj_fd(name: str) -> int:
    """The fd of the kernel BTF object ``name`` (``"vmlinux"`` or a module's name).

    A fentry/fexit/LSM program on a module's function is loaded with the module's BTF
    type id (:func:`ebpfhooks.kernel.btf.find_type_id`) and this fd as
    ``attach_btf_obj_fd``. Walks the kernel's BTF objects (``BPF_BTF_GET_NEXT_ID``,
    ``BPF_BTF_GET_FD_BY_ID``, ``BPF_OBJ_GET_INFO_BY_FD``) for a kernel BTF of that name;
    the caller closes the fd (after the program is loaded).

    >>> fd = btf_obj_fd("vmlinux")  # doctest: +SKIP

    Minimum kernel: 5.11 (module BTF; kernel BTF objects with names).

    Raises:
        HookPermissionError: not privileged (CAP_SYS_ADMIN is needed to walk BTF ids).
        NotSupportedError: the kernel cannot be asked (before 5.11).
        ProgramError: no kernel BTF of that name is loaded (module not loaded, or built
            without CONFIG_DEBUG_INFO_BTF_MODULES).
    """
    seen: list[str] = []
    next_id = 0
    while True:
        attr = _IdAttr(id=next_id)
        ret = _sys_bpf(BPF_BTF_GET_NEXT_ID, attr)
        if ret < 0:
            code = -ret
            if code == _errno.ENOENT:
                break
            if code in (_errno.EPERM, _errno.EACCES):
                raise _permission(f"looking up the kernel BTF of {name!r}", code,
                                  "CAP_SYS_ADMIN", "CAP_SYS_ADMIN")
            raise NotSupportedError(f"looking up the kernel BTF of {name!r}: "
                                    f"BPF_BTF_GET_NEXT_ID failed ({_strerror(code)}); "
                                    "kernel 5.11 is needed", missing="BTF object ids (5.11)")
        next_id = int(attr.next_id)
        attr = _IdAttr(id=next_id)
        fd = _sys_bpf(BPF_BTF_GET_FD_BY_ID, attr)
        if fd < 0:
            continue  # freed meanwhile
        keep = False
        try:
            name_buf = ctypes.create_string_buffer(64)
            info = BtfInfo(name=ctypes.addressof(name_buf), name_len=64)
            iattr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info),
                              info=ctypes.addressof(info))
            if _sys_bpf(BPF_OBJ_GET_INFO_BY_FD, iattr) < 0 or not info.kernel_btf:
                continue
            obj = name_buf.value.decode(errors="replace")
            if obj == name:
                keep = True
                return fd
            seen.append(obj)
        finally:
            if not keep:
                os.close(fd)
    listed = ", ".join(sorted(seen)[:8]) + (", ..." if len(seen) > 8 else "")
    raise ProgramError(f"no kernel BTF object named {name!r} is loaded (kernel BTF objects: "
                       f"{listed or 'none'}); load the module first, and check that the "
                       "kernel has CONFIG_DEBUG_INFO_BTF_MODULES=y")


# --------------------------------------------------------------------------- bpf_link_create


def link_create_fn() -> Callable[[int, int, int, int], int]:
    """``bpf_link_create(prog_fd, target_fd, attach_type, flags)`` returning fd or -errno.

    libbpf's ``bpf_link_create`` when ``libbpf.so.1`` loads, else the raw syscall with
    :class:`LinkCreateAttr`. Used by the XDP adapter, which words its own errors.

    >>> fd = link_create_fn()(prog_fd, ifindex, BPF_XDP, 2)  # doctest: +SKIP
    """
    try:
        libbpf = ctypes.CDLL("libbpf.so.1", use_errno=True)
        fn = libbpf.bpf_link_create
    except (OSError, AttributeError):
        fn = None
    if fn is not None:
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]

        class _Opts(ctypes.Structure):  # the stable head of struct bpf_link_create_opts
            _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32),
                        ("_pad", ctypes.c_uint32)]

        def via_libbpf(prog_fd: int, target: int, attach_type: int, flags: int) -> int:
            opts = _Opts(ctypes.sizeof(_Opts), flags, 0)
            ctypes.set_errno(0)
            fd: int = fn(prog_fd, target, attach_type, ctypes.byref(opts))
            return fd if fd >= 0 else -(ctypes.get_errno() or -fd)

        return via_libbpf

    def via_syscall(prog_fd: int, target: int, attach_type: int, flags: int) -> int:
        attr = LinkCreateAttr(prog_fd=prog_fd, target_fd=target, attach_type=attach_type,
                              flags=flags)
        return _sys_bpf(BPF_LINK_CREATE, attr)

    return via_syscall
