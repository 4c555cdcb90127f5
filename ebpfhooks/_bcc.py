"""The one module that imports bcc: load functions, attach, detach, translate errors.

bcc is imported on the first attach, never by ``import ebpfhooks``. Every bcc
failure (bcc raises bare ``Exception``) is turned here into a typed error,
using the errno bcc's ctypes layer saved, so callers never match message text.

Each ``attach_*`` returns an :class:`Attachment` saying what it did (how to undo it,
the fd that holds it, what must be recorded to outlive a crash); the
:class:`ebpfhooks.Link` owns it and records ownership.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ebpfhooks import _bccshim, bpfsys, caps
from ebpfhooks.errors import (
    AttachError,
    BccNotFoundError,
    HookPermissionError,
    ProgramError,
)

Detach = Callable[[], None]


class Attachment:
    """What one attach made: ``detach`` undoes it; ``fd`` is what holds it (a raw socket, a
    bpf_link; ``None`` when bcc holds it); ``via`` says how (``"bcc"``, ``"perf_event"``,
    ``"bpf_link"``, ``"netlink"``, ``"socket"``); ``record`` is ``(ifindex, prog_id,
    name)`` for an attach that outlives this process (netlink XDP), which the link layer
    records for ``ebpfhooks cleanup``.

    >>> Attachment(lambda: None, via="bcc").fd is None
    True
    """

    __slots__ = ("detach", "fd", "record", "via")

    def __init__(self, detach: Detach, *, via: str, fd: int | None = None,
                 record: tuple[int, int, str] | None = None) -> None:
        self.detach = detach
        self.via = via
        self.fd = fd
        self.record = record

_INSTALL_HINT = (
    "bcc's Python module is not importable: install it from the distribution "
    "(Debian/Ubuntu: apt-get install python3-bpfcc; Fedora: dnf install python3-bcc) "
    "and use a Python that sees it (a venv made with --system-site-packages); "
    "it is not on PyPI (the PyPI package named 'bcc' is unrelated)"
)

_bcc: ModuleType | None = None

#: What each kind of attach needs, in words (the table is :mod:`ebpfhooks.caps`).
CAPS_TRACING = caps.describe(caps.TRACING)
CAPS_NET = caps.describe(caps.NET)
CAPS_RAW_SOCKET = caps.describe(caps.RAW_SOCKET)


def load() -> ModuleType:
    """Import bcc once, or raise :class:`BccNotFoundError` saying how to install it (or
    what a bcc too different from the tested one lacks: :mod:`ebpfhooks._bccshim`)."""
    global _bcc
    if _bcc is None:
        try:
            import bcc
        except ImportError as err:
            raise BccNotFoundError(_INSTALL_HINT) from err
        _bccshim.check(bcc)
        _bcc = bcc
    return _bcc


def version() -> str | None:
    """bcc's version string, or None when bcc is not importable.

    Raises :class:`BccNotFoundError` when bcc imports but lacks what ebpfhooks uses.
    """
    try:
        return _bccshim.version(load())
    except BccNotFoundError as err:
        if isinstance(err.__cause__, ImportError):
            return None
        raise  # importable, but lacking what ebpfhooks uses: say so


def _lib() -> Any:
    return load().libbcc.lib


def _errno_now() -> int:
    import ctypes

    return ctypes.get_errno()


def _is_bcc_bpf(bpf: Any) -> bool:
    return hasattr(bpf, "module") and hasattr(bpf, "funcs")


def function_names(bpf: Any) -> list[str]:
    """The functions a compiled bcc module defines (for error messages)."""
    if not _is_bcc_bpf(bpf) or not bpf.module:
        return []
    lib = _lib()
    names = []
    for i in range(lib.bpf_num_functions(bpf.module)):
        raw = lib.bpf_function_name(bpf.module, i)
        if raw:
            names.append(raw.decode(errors="replace"))
    return names


def _load_func(bpf: Any, fn_name: str, prog_type: str, what: str) -> Any:
    """Load ``fn_name`` as ``prog_type``, with typed errors."""
    bcc = load()
    name = fn_name.encode()
    # bcc caches loaded functions by name only, whatever type they were loaded
    # as; remember the type so a second hook of another kind gets a clear error
    # instead of the kernel's EINVAL.
    types = _bccshim.loaded_types(bpf)
    if name in bpf.funcs:
        had = types.get(fn_name)
        if had is not None and had != prog_type:
            raise ProgramError(
                f"function {fn_name!r} is already loaded as a {had} program; {what} needs "
                f"{prog_type}: define a separate function for this hook"
            )
        return bpf.funcs[name]
    if _is_bcc_bpf(bpf) and not bpf.module:
        raise ProgramError(
            f"the BPF module of {fn_name!r} is closed (bpf.cleanup() or bpf.close() ran): "
            "its functions are gone; compile the source again (BPF(text=SOURCE)) and attach "
            "before cleaning it up"
        )
    if _is_bcc_bpf(bpf) and not _lib().bpf_function_start(bpf.module, name):
        have = function_names(bpf)
        raise ProgramError(
            f"the BPF module defines no function {fn_name!r}"
            + (f"; it defines: {', '.join(have)}" if have else "")
        )
    ctypes_errno_reset()
    try:
        fn = bpf.load_func(name, getattr(bcc.BPF, prog_type))
    except Exception as err:
        code = _errno_now()
        if code in (_errno.EPERM, _errno.EACCES) and "privilege" in str(err):
            raise HookPermissionError(
                f"loading {fn_name!r} needs privileges: {CAPS_TRACING}; run as root",
                capability="CAP_BPF",
            ) from err
        raise ProgramError(
            f"the kernel refused to load {fn_name!r} as a {prog_type} program for {what} "
            f"({os.strerror(code) if code else err}); {_load_hint(code)}"
        ) from err
    types[fn_name] = prog_type
    return fn


def ctypes_errno_reset() -> None:
    """Clear ctypes' saved errno, so an errno read after a bcc call is that call's."""
    import ctypes

    ctypes.set_errno(0)


def _load_hint(code: int) -> str:
    """What a failed program load means, by errno (bcc prints a verifier log only for some)."""
    if code == _errno.E2BIG:
        return ("the program is too large for the kernel: more instructions than it "
                "accepts (4096 without CAP_BPF, 1 million verified with it), and no "
                "verifier log is printed for this; make it smaller (bound loops, "
                "split it with tail calls)")
    if code in (_errno.EINVAL, _errno.EACCES):
        return ("the verifier rejected it: bcc prints the verifier log above; check that "
                "its argument type and memory accesses fit the hook")
    if code == _errno.ENOMEM:
        return ("the kernel could not allocate memory for it (with kernels before 5.11, "
                "raise the locked-memory limit: ulimit -l unlimited)")
    return "check that its arguments fit the hook"


def compiled_insns(bpf: Any, fn_name: str) -> tuple[bytes, str]:
    """``(instructions, license)`` of a function bcc compiled, for :func:`bpfsys.prog_load`.

    The instructions are bcc's ``dump_func`` (map fds already in place); the license is
    the module's (``"GPL"`` unless the C source sets another). Loading them yourself
    lets a function of any name become a program bcc cannot load (tp_btf, fentry with
    ``attach_btf_id``, a KPROBE program for uprobe_multi links).

    >>> insns, lic = compiled_insns(BPF(text=src), "on_exec")  # doctest: +SKIP

    Raises:
        ProgramError: the module defines no function ``fn_name`` (its functions are named).
    """
    if not _is_bcc_bpf(bpf) or not bpf.module:
        raise ProgramError(f"cannot read the instructions of {fn_name!r}: {bpf!r} is not a "
                           "compiled bcc BPF object")
    lib = _lib()
    if not lib.bpf_function_start(bpf.module, fn_name.encode()):
        have = function_names(bpf)
        raise ProgramError(
            f"the BPF module defines no function {fn_name!r}"
            + (f"; it defines: {', '.join(have)}" if have else ""))
    insns = bytes(bpf.dump_func(fn_name.encode()))
    raw = lib.bpf_module_license(bpf.module)
    license = raw.decode(errors="replace") if isinstance(raw, bytes) and raw else "GPL"
    return insns, license


#: Function-name prefixes bcc attaches by itself when it compiles the module.
_AUTOLOAD_PREFIXES = ("kprobe__", "kretprobe__", "tracepoint__", "raw_tracepoint__",
                      "kfunc__", "kretfunc__", "lsm__")


def _autoloaded(fn_name: str, what: str) -> AttachError | None:
    if fn_name.startswith(_AUTOLOAD_PREFIXES):
        return AttachError(
            f"{what}: {fn_name!r} is named for another event, where bcc attached it itself "
            "when it compiled the module (it auto-attaches functions named kprobe__*, "
            "tracepoint__*, ... and TRACEPOINT_PROBE); ebpfhooks adopts such an attachment "
            "only on the event the name gives; rename the function to attach it here"
        )
    return None


def _attach_error(what: str, err: BaseException, caps: str, hint: str = "") -> Exception:
    code = _errno_now()
    if code in (_errno.EPERM, _errno.EACCES):
        return HookPermissionError(
            f"attaching {what} was refused ({os.strerror(code)}): needs {caps}; run as root",
            capability=caps.split()[0],
        )
    reason = os.strerror(code) if code else str(err)
    msg = f"the kernel refused to attach {what}: {reason}"
    if code == _errno.EEXIST or code == _errno.EBUSY:
        msg += "; something is already attached there"
    if code in (_errno.EMFILE, _errno.ENFILE):
        # a wildcard of ~1000 hooks meets the usual soft limit of 1024 open files
        msg += ("; every attached probe holds a file descriptor and the limit is reached: "
                "raise it (`ulimit -n 65536`, or resource.setrlimit(RLIMIT_NOFILE) up to "
                "the hard limit) or attach fewer hooks")
        hint = ""
    if hint:
        msg += f"; {hint}"
    return AttachError(msg, errno=code or None)


def attach_kprobe(
    bpf: Any, fn_name: str, symbol: str, offset: int, *, ret: bool, maxactive: int, what: str
) -> Attachment:
    """Attach a kprobe (``ret=False``) or kretprobe; return its detach."""
    fn_b = fn_name.encode()
    _load_func(bpf, fn_name, "KPROBE", what)
    ev = (b"r_" if ret else b"p_") + symbol.encode().replace(b"+", b"_").replace(b".", b"_")
    adopted = (fn_b in _bccshim.attached(bpf, "kprobe").get(ev, {})
               and fn_name.startswith("kretprobe__" if ret else "kprobe__")
               and not offset and not maxactive)
    if not adopted:  # else bcc attached it here itself, at compile: the link adopts that
        try:
            if ret:
                bpf.attach_kretprobe(event=symbol.encode(), fn_name=fn_b, maxactive=maxactive)
            else:
                bpf.attach_kprobe(event=symbol.encode(), event_off=offset, fn_name=fn_b)
        except Exception as err:
            raise _attach_error(
                what, err, CAPS_TRACING,
                "the function may be inlined, marked notrace, or on the kprobe blacklist",
            ) from err

    def detach() -> None:
        if fn_b not in _bccshim.attached(bpf, "kprobe").get(ev, {}):
            return  # bcc's own cleanup already ran
        try:
            bpf.detach_kprobe_event_by_fn(ev, fn_b)
        except Exception as err:
            raise AttachError(f"detaching {what} failed: {err}") from err

    return Attachment(detach, via="bcc autoload" if adopted else "bcc")


def _attach_event(
    bpf: Any, fn_name: str, prog_type: str, key: bytes, table: str, noun: str, what: str,
    attach: Callable[[], None], detach_call: Callable[[], None], autoload_name: str,
) -> Attachment:
    """The shared path of tracepoints and raw tracepoints: bcc keys both by event name.

    A function bcc attached to this very event when it compiled the module (named
    ``autoload_name``: ``tracepoint__CAT__EVENT``, ``raw_tracepoint__EVENT``) is adopted:
    the link owns and detaches bcc's attachment.
    """
    _load_func(bpf, fn_name, prog_type, what)
    adopted = False
    if key in _bccshim.attached(bpf, table):
        adopted = fn_name == autoload_name
        auto = None if adopted else _autoloaded(fn_name, what)
        if auto is not None:
            raise auto
        if not adopted:
            raise AttachError(
                f"{what} is already attached in this BPF object; "
                f"bcc keeps one program per {noun} per BPF object: use another BPF object"
            )
    if not adopted:
        try:
            attach()
        except Exception as err:
            raise _attach_error(what, err, CAPS_TRACING) from err

    def detach() -> None:
        if key not in _bccshim.attached(bpf, table):
            return  # bcc's own cleanup already ran
        try:
            detach_call()
        except Exception as err:
            raise AttachError(f"detaching {what} failed: {err}") from err

    return Attachment(detach, via="bcc autoload" if adopted else "bcc")


def attach_tracepoint(bpf: Any, fn_name: str, category: str, event: str, *,
                      what: str) -> Attachment:
    """Attach a tracepoint program; return its detach."""
    tp = f"{category}:{event}".encode()
    return _attach_event(
        bpf, fn_name, "TRACEPOINT", tp, "tracepoint", "tracepoint", what,
        lambda: bpf.attach_tracepoint(tp=tp, fn_name=fn_name.encode()),
        lambda: bpf.detach_tracepoint(tp),
        f"tracepoint__{category}__{event}",
    )


def attach_raw_tracepoint(bpf: Any, fn_name: str, event: str, *, what: str) -> Attachment:
    """Attach a raw tracepoint program; return its detach."""
    tp = event.encode()
    return _attach_event(
        bpf, fn_name, "RAW_TRACEPOINT", tp, "raw_tracepoint", "raw tracepoint", what,
        lambda: bpf.attach_raw_tracepoint(tp=tp, fn_name=fn_name.encode()),
        lambda: bpf.detach_raw_tracepoint(tp),
        f"raw_tracepoint__{event}",
    )


_UPROBE_CALLS: dict[str, Any] = {}


def _is_libbcc(lib: Any) -> bool:
    import ctypes

    return isinstance(lib, ctypes.CDLL)


_UPROBE_OPENER: list[Callable[..., int] | None] = []


def _uprobe_opener() -> Callable[..., int] | None:
    """``open(prog_fd, ret, path, file_offset, pid) -> perf fd or -1``, or None.

    :func:`ebpfhooks.bpfsys.uprobe_opener` (the raw perf_event_open(2) of the uprobe PMU),
    looked up once; -1 on any failure, after which libbcc's own call decides what the
    error is.
    """
    if not _UPROBE_OPENER:
        _UPROBE_OPENER.append(bpfsys.uprobe_opener())
    return _UPROBE_OPENER[0]


def _attach_uprobe_call(lib: Any) -> Any:
    """libbcc's ``bpf_attach_uprobe`` called with its real prototype: 7 arguments.

    bcc's Python (0.26 and earlier) declares 6 and leaves out the last,
    ``uint32_t ref_ctr_offset``, so the C function reads it from whatever is on the
    stack (6 on this machine). The kernel then takes the uprobe for one with a USDT
    semaphore at that file offset, and refuses any other tool's uprobe at the same
    place (bpftrace, libbpf: "ref_ctr_offset mismatch", EINVAL) while it is attached.
    ebpfhooks passes 0 through its own handle on the library, leaving bcc's
    declaration as bcc uses it. A stand-in library (tests) is called as it is.
    """
    import ctypes

    if not _is_libbcc(lib):
        return lib.bpf_attach_uprobe
    path = _bccshim.libbcc_path(lib)
    call = _UPROBE_CALLS.get(path)
    if call is None:
        call = ctypes.CDLL(path, use_errno=True).bpf_attach_uprobe
        call.restype = ctypes.c_int
        call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                         ctypes.c_uint64, ctypes.c_int, ctypes.c_uint32]
        _UPROBE_CALLS[path] = call
    return call


def attach_uprobe(
    bpf: Any,
    fn_name: str,
    path: str,
    file_offset: int,
    *,
    pid: int | None,
    ret: bool,
    what: str,
) -> Attachment:
    """Attach a uprobe/uretprobe at exactly ``path`` + ``file_offset``.

    bcc's ``attach_uprobe`` would resolve the symbol again with its own
    resolver; we pass the kernel the file offset ebpfhooks resolved, through
    libbcc's ``bpf_attach_uprobe``, and register the fd with the BPF object so
    bcc's cleanup knows it too.
    """
    fn = _load_func(bpf, fn_name, "KPROBE", what)
    lib = _lib()
    c_pid = -1 if pid is None else pid
    path_b = os.fsencode(path)
    ev = _bccshim.uprobe_event_name(bpf, ret, path_b, file_offset, c_pid)
    ev += b"_" + fn_name.encode()
    uprobes = _bccshim.attached(bpf, "uprobe")
    if ev in uprobes:
        raise AttachError(f"{what} is already attached to {fn_name!r} in this BPF object")
    _bccshim.check_probe_quota(bpf, what)
    fast = _uprobe_opener() if _is_libbcc(lib) else None
    fd = fast(fn.fd, ret, path_b, file_offset, c_pid) if fast is not None else -1
    if fd < 0:  # libbcc decides (and words) any failure: the PMU again, then tracefs
        fd = _attach_uprobe_call(lib)(fn.fd, 1 if ret else 0, ev, path_b, file_offset, c_pid, 0)
    if fd < 0:
        raise _attach_error(what, OSError(_errno_now(), "bpf_attach_uprobe"), CAPS_TRACING)
    _bccshim.add_uprobe_fd(bpf, ev, fd)

    def detach() -> None:
        if ev not in uprobes:
            return
        try:
            bpf.detach_uprobe_event(ev)
        except Exception as err:
            raise AttachError(f"detaching {what} failed: {err}") from err

    return Attachment(detach, via="perf_event")


# ---------------------------------------------------------------- tracing programs (BTF)
# fentry/fexit, tp_btf, LSM: bcc-compiled instructions loaded with attach_btf_id (issue 17)


def attach_btf_program(
    bpf: Any,
    fn_name: str,
    *,
    prog_type: int,
    attach_type: int,
    type_id: int,
    btf_object: str,
    what: str,
    autoload: tuple[str, str] | None = None,
) -> Attachment:
    """Load what bcc compiled for ``fn_name`` as a program at a BTF target; attach it.

    fentry/fexit and tp_btf are ``BPF_PROG_TYPE_TRACING`` programs, LSM programs
    ``BPF_PROG_TYPE_LSM``; ``attach_type`` is their expected attach type and ``type_id``
    the target's id in the kernel BTF object ``btf_object`` (``"vmlinux"`` or a module,
    whose BTF fd is passed as ``attach_btf_obj_fd``). The instructions are bcc's
    (:func:`compiled_insns`), loaded with ``BPF_PROG_LOAD`` by :mod:`ebpfhooks.bpfsys`,
    so the function may have any name (bcc itself loads such programs only when named
    ``kfunc__FUNC``, ``kretfunc__FUNC`` or ``lsm__HOOK``, the name giving the target),
    and attached with ``BPF_RAW_TRACEPOINT_OPEN``. The attachment owns both fds (``fd``
    is the link's): closing them detaches and unloads.

    ``autoload`` is ``(bcc's table, the function name bcc would have attached here)``:
    a function of that name bcc attached itself when it compiled the module
    (``KFUNC_PROBE(vfs_read)``) is adopted; another function named for bcc's
    autoloading is refused (:func:`_autoloaded`).

    Raises :class:`HookPermissionError`, :class:`ebpfhooks.NotSupportedError` (no BPF
    trampolines), :class:`ProgramError` (the verifier's log tail: e.g. an argument the
    function does not have) and :class:`AttachError`.
    """
    fn_b = fn_name.encode()
    if autoload is not None:
        table, bcc_name = autoload
        if fn_name == bcc_name and fn_b in _bccshim.attached(bpf, table):

            def detach_adopted() -> None:
                fd = _bccshim.attached(bpf, table).pop(fn_b, None)
                if fd is not None:  # else bcc's own cleanup already ran
                    os.close(fd)

            return Attachment(detach_adopted, via="bcc autoload")
    auto = _autoloaded(fn_name, what)
    if auto is not None:
        raise auto
    insns, license = compiled_insns(bpf, fn_name)
    obj_fd = bpfsys.btf_obj_fd(btf_object) if btf_object != "vmlinux" else 0
    try:
        prog = bpfsys.prog_load(prog_type, insns, license=license, name=fn_name,
                                expected_attach_type=attach_type, attach_btf_id=type_id,
                                attach_btf_obj_fd=obj_fd, what=f"loading {fn_name!r} for {what}")
    finally:
        if obj_fd:
            os.close(obj_fd)
    try:
        link = bpfsys.raw_tracepoint_open(prog, None, what=f"attaching {what}")
    except BaseException:
        os.close(prog)
        raise
    fds = [link, prog]

    def detach() -> None:
        while fds:  # the link first (detaches), then the program (unloads)
            os.close(fds.pop(0))

    return Attachment(detach, via="bpf_link", fd=link)


# ---------------------------------------------------------------- USDT
# USDT probes: uprobes at .note.stapsdt locations with their semaphores (issue 17)


# ---------------------------------------------------------------- XDP

XDP_FLAGS_UPDATE_IF_NOEXIST = 1
BPF_LINK_CREATE = bpfsys.BPF_LINK_CREATE  # enum bpf_cmd
BPF_XDP = bpfsys.BPF_XDP  # enum bpf_attach_type; XDP links need kernel 5.9

#: How an XDP program is attached: ``"link"`` (a bpf_link, detached by the kernel when its
#: fd closes, even on SIGKILL), ``"netlink"`` (bcc's way: stays until removed) or ``"auto"``
#: (bpf_link where the kernel has XDP links, 5.9+, else netlink). Overridden by the
#: ``EBPFHOOKS_XDP_ATTACH`` environment variable.
XDP_ATTACH_MODES = ("auto", "link", "netlink")


def xdp_attach_mode() -> str:
    """The XDP attach mechanism in force (``EBPFHOOKS_XDP_ATTACH``, default ``auto``)."""
    mode = os.environ.get("EBPFHOOKS_XDP_ATTACH", "auto").strip().lower() or "auto"
    if mode not in XDP_ATTACH_MODES:
        raise AttachError(
            f"EBPFHOOKS_XDP_ATTACH={mode!r} is not one of {', '.join(XDP_ATTACH_MODES)}; "
            "unset it to let ebpfhooks choose (bpf_link on kernels >= 5.9)"
        )
    return mode


#: ``bpf_link_create(prog_fd, target_fd, attach_type, flags)`` -> fd or -errno
#: (ebpfhooks.bpfsys: libbpf's when libbpf.so.1 loads, else the raw syscall).
_link_create_fn = bpfsys.link_create_fn


def _xdp_mode_hint(interface: str, mode_flags: int) -> str:
    """What the refused XDP mode needs, and the spec to use instead."""
    if mode_flags & 8:  # XDP_FLAGS_HW_MODE
        return (f"hw (offload) mode runs the program on the NIC: it needs a driver that "
                f"offloads XDP (e.g. Netronome nfp) and a program compiled for that device "
                f"(bcc: BPF(text=..., device={interface!r})); use xdp:{interface}:drv "
                f"(native) or xdp:{interface}:skb (generic) instead")
    if mode_flags & 4:  # XDP_FLAGS_DRV_MODE
        return (f"native (drv) mode needs XDP support in the driver of {interface!r}; use "
                f"xdp:{interface}:skb (generic), or xdp:{interface} (auto: native where the "
                "driver has it, else generic)")
    return f"try xdp:{interface}:skb (generic mode works on every interface)"


def _xdp_busy(what: str, interface: str, code: int) -> AttachError:
    return AttachError(
        f"the kernel refused to attach {what}: interface {interface!r} already has an "
        "XDP program; ebpfhooks never replaces one it does not own "
        f"(see it with: ip link show dev {interface}; if it was left by a dead process, "
        f"remove it with: ebpfhooks cleanup --xdp {interface}, or ip link set dev "
        f"{interface} xdp off)",
        errno=code,
    )


def attach_xdp(bpf: Any, fn_name: str, interface: str, mode_flags: int, *, what: str,
               ifindex: int | None = None, via: str | None = None) -> Attachment:
    """Attach an XDP program, never replacing another.

    ``via`` is ``"link"``, ``"netlink"`` or ``"auto"`` (default: :func:`xdp_attach_mode`):
    a bpf_link (kernel 5.9+) is detached by the kernel when this process exits, even by
    SIGKILL; bcc's netlink attach outlives the process unless removed.
    """
    fn = _load_func(bpf, fn_name, "XDP", what)
    via = via or xdp_attach_mode()
    if via == "auto":
        from ebpfhooks.kernel.features import FeatureStatus, bpf_link

        via = "link" if bpf_link().status is not FeatureStatus.NO else "netlink"
    if via == "link":
        if ifindex is None:
            from ebpfhooks.kernel.netdev import ifindex as _ifindex

            ifindex = _ifindex(interface)
        fd = _link_create_fn()(fn.fd, ifindex, BPF_XDP, mode_flags)
        if fd >= 0:
            return Attachment(lambda: os.close(fd), via="bpf_link", fd=fd)
        code = -fd
        if code in (_errno.EBUSY, _errno.EEXIST):
            raise _xdp_busy(what, interface, code)
        if code in (_errno.EPERM, _errno.EACCES):
            raise HookPermissionError(
                f"attaching {what} was refused ({os.strerror(code)}): needs {CAPS_NET}; "
                "run as root", capability="CAP_BPF")
        if code == _errno.ENODEV:
            from ebpfhooks.errors import InterfaceNotFoundError

            raise InterfaceNotFoundError(interface, where="this network namespace (ip link show)")
        if code not in (_errno.EINVAL, _errno.ENOSYS):
            raise AttachError(
                f"the kernel refused to attach {what} through a bpf_link: "
                f"{os.strerror(code)}; {_xdp_mode_hint(interface, mode_flags)}",
                errno=code,
            )
        # EINVAL/ENOSYS: this kernel has no XDP links after all; netlink below
    return _attach_xdp_netlink(fn, interface, mode_flags, what)


def _attach_xdp_netlink(fn: Any, interface: str, mode_flags: int, what: str) -> Attachment:
    bcc = load()
    dev = interface.encode()
    try:
        bcc.BPF.attach_xdp(dev, fn, mode_flags | XDP_FLAGS_UPDATE_IF_NOEXIST)
    except Exception as err:
        code = _errno_now()
        if code in (_errno.EBUSY, _errno.EEXIST):
            raise _xdp_busy(what, interface, code) from err
        raise _attach_error(what, err, CAPS_NET,
                            _xdp_mode_hint(interface, mode_flags)) from err

    def detach() -> None:
        try:
            bcc.BPF.remove_xdp(dev, mode_flags)
        except Exception as err:
            code = _errno_now()
            if code not in (_errno.ENODEV, _errno.ENOENT):  # else the interface is gone
                raise AttachError(f"detaching {what} failed: {err}",
                                  errno=code or None) from err

    return Attachment(detach, via="netlink", record=_netlink_record(fn, interface))


def _netlink_record(fn: Any, interface: str) -> tuple[int, int, str] | None:
    """(ifindex, prog_id, name) of a netlink XDP attach, for its ownership record."""
    import re
    import socket

    try:
        with open(f"/proc/self/fdinfo/{int(fn.fd)}") as f:
            m = re.search(r"^prog_id:\s*(\d+)", f.read(), re.M)
        index = socket.if_nametoindex(interface)
    except (OSError, TypeError, ValueError):
        return None
    if m is None:
        return None
    name = getattr(fn, "name", b"")
    return index, int(m.group(1)), name.decode("utf-8", "replace") if isinstance(
        name, bytes) else ""


def attach_raw_socket(bpf: Any, fn_name: str, interface: str, *, what: str) -> Attachment:
    """Open a raw socket on ``interface`` with the program attached (``fd`` is the socket)."""
    bcc = load()
    fn = _load_func(bpf, fn_name, "SOCKET_FILTER", what)
    try:
        bcc.BPF.attach_raw_socket(fn, interface.encode())
    except Exception as err:
        sock = getattr(fn, "sock", None)
        if isinstance(sock, int) and sock >= 0:
            os.close(sock)
        raise _attach_error(what, err, CAPS_RAW_SOCKET) from err
    fd: int = fn.sock
    closed = False

    def detach() -> None:
        nonlocal closed
        if not closed:
            closed = True
            os.close(fd)

    return Attachment(detach, via="socket", fd=fd)


# ---------------------------------------------------------------- perf events
# profile, interval, software and hardware events (issue 17)
