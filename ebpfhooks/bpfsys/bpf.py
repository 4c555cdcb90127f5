"""bpf(2): load programs, make links, find kernel BTF objects; every errno a typed error.

Through ctypes over libc's ``syscall(2)``, with the ``bpf_attr`` layouts of
:mod:`ebpfhooks.bpfsys._attr`; every failure becomes a typed error of
:mod:`ebpfhooks.errors` naming what was asked and what to do::

    from ebpfhooks import bpfsys
    prog = bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_TRACING, insns, name="exec",
                            expected_attach_type=bpfsys.BPF_TRACE_RAW_TP,
                            attach_btf_id=btf_id)
    link = bpfsys.raw_tracepoint_open(prog, None)
    ...
    os.close(link)  # detaches

What is here: :func:`prog_load` (``BPF_PROG_LOAD``, verifier log captured on failure),
:func:`link_create` (``BPF_LINK_CREATE``), :func:`raw_tracepoint_open`
(``BPF_RAW_TRACEPOINT_OPEN``: raw tracepoints, tp_btf, fentry/fexit/lsm),
:func:`btf_obj_fd` and :func:`link_create_fn`, the XDP adapter's ``bpf_link_create``.
``_sys_bpf`` is the one path to the syscall: tests replace it to fake the kernel.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
import re
from collections.abc import Callable

from ebpfhooks import caps
from ebpfhooks.bpfsys._attr import (
    ATTACH_TYPE_NAMES,
    BPF_BTF_GET_FD_BY_ID,
    BPF_BTF_GET_NEXT_ID,
    BPF_LINK_CREATE,
    BPF_LSM_MAC,
    BPF_MODIFY_RETURN,
    BPF_OBJ_GET_INFO_BY_FD,
    BPF_PERF_EVENT,
    BPF_PROG_LOAD,
    BPF_PROG_TYPE_KPROBE,
    BPF_PROG_TYPE_LSM,
    BPF_PROG_TYPE_PERF_EVENT,
    BPF_PROG_TYPE_RAW_TRACEPOINT,
    BPF_PROG_TYPE_TRACEPOINT,
    BPF_PROG_TYPE_TRACING,
    BPF_RAW_TRACEPOINT_OPEN,
    BPF_TRACE_FENTRY,
    BPF_TRACE_FEXIT,
    BPF_TRACE_KPROBE_MULTI,
    BPF_TRACE_RAW_TP,
    BPF_TRACE_UPROBE_MULTI,
    ENOTSUPP,
    PROG_TYPE_NAMES,
    TRAMPOLINE_ATTACH_TYPES,
    BtfInfo,
    LinkCreateAttr,
    ProgLoadAttr,
    RawTracepointOpenAttr,
    _IdAttr,
    _InfoAttr,
)
from ebpfhooks.errors import (
    AttachError,
    HookPermissionError,
    NotSupportedError,
    ProgramError,
    SpecError,
)

__all__ = [
    "CAPS_TRACING",
    "LOG_TAIL_LINES",
    "btf_obj_fd",
    "link_create",
    "link_create_fn",
    "log_tail",
    "prog_load",
    "raw_tracepoint_open",
]

#: bpf(2) syscall numbers by machine (``uname -m``).
_NR_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "riscv64": 280, "ppc64le": 361,
           "s390x": 351, "i686": 357}

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

CAPS_TRACING = caps.describe(caps.TRACING)
_TRACING_TYPES = frozenset({BPF_PROG_TYPE_KPROBE, BPF_PROG_TYPE_TRACEPOINT,
                            BPF_PROG_TYPE_PERF_EVENT, BPF_PROG_TYPE_RAW_TRACEPOINT,
                            BPF_PROG_TYPE_TRACING, BPF_PROG_TYPE_LSM})

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
                                                                BPF_PROG_TYPE_LSM) and not tail:
            # Privileged and refused without a verifier log: for fentry/fexit/LSM the
            # kernel answers EPERM when it cannot set up the trampoline's ftrace direct
            # call for the target. With a log, the verifier refused the program itself
            # (EACCES: "invalid bpf_context access", an argument the function has not).
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
