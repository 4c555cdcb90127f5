"""The core of the bcc room: importing bcc, loading functions, typed errors, Attachment.

bcc is imported on the first attach (:func:`load`), never by ``import ebpfhooks``. Every
bcc failure (bcc raises bare ``Exception``) is turned here into a typed error, using the
errno bcc's ctypes layer saved, so callers never match message text.

>>> Attachment(lambda: None, via="bcc").via
'bcc'

Minimum kernel: what the attach needs (see each kind); bcc 0.26 (:mod:`ebpfhooks._bccshim`).
"""

from __future__ import annotations

import errno as _errno
import os
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ebpfhooks import _bccshim, caps
from ebpfhooks.errors import (
    AttachError,
    BccNotFoundError,
    HookPermissionError,
    ProgramError,
)

Detach = Callable[[], None]


class Attachment:
    """What one attach made: :meth:`detach` undoes it; ``fd`` is what holds it (a raw socket,
    a bpf_link; ``None`` when bcc holds it); ``via`` says how (``"bcc"``, ``"perf_event"``,
    ``"perf_link"``, ``"uprobe_multi"``, ``"bpf_link"``, ``"netlink"``, ``"socket"``);
    ``record`` is ``(ifindex, prog_id, name)`` for an attach that outlives this process
    (netlink XDP), which the link layer records for ``ebpfhooks cleanup``.

    One attachment may hold many hooks (a uprobe_multi link): every hook's
    :class:`ebpfhooks.Link` shares it, and the first ``detach()`` undoes it for all
    (``done`` is then True); later calls do nothing.

    >>> a = Attachment(lambda: None, via="bcc")
    >>> a.fd is None, a.done
    (True, False)
    >>> a.detach(); a.done
    True
    """

    __slots__ = ("_detach", "_lock", "done", "fd", "record", "via")

    def __init__(self, detach: Detach, *, via: str, fd: int | None = None,
                 record: tuple[int, int, str] | None = None) -> None:
        self._detach = detach
        self._lock = threading.Lock()
        self.via = via
        self.fd = fd
        self.record = record
        self.done = False

    def detach(self) -> None:
        """Undo the attach once; raises what the undo raises (then it is not ``done``)."""
        with self._lock:
            if not self.done:
                self._detach()
                self.done = True
                self.fd = None


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
