"""The bcc internals ebpfhooks relies on, in one place, checked against the bcc in use.

bcc's Python API has no public way to do four things ebpfhooks needs when it opens a
uprobe itself (with the file offset it resolved, not bcc's): name the event the way
bcc's own cleanup expects (``BPF._get_uprobe_evname``), count it against bcc's global
probe limit (``BPF._check_probe_quota``), hand bcc the fd so ``bpf.cleanup()`` detaches it
too (``BPF._add_uprobe_fd``), and find libbcc's file (``lib._name``) to call
``bpf_attach_uprobe`` with its real prototype. It also reads bcc's per-object tables of
what is attached (``kprobe_fds``, ``uprobe_fds``, ``tracepoint_fds``,
``raw_tracepoint_fds``, ``kfunc_entry_fds``, ``kfunc_exit_fds``, ``lsm_fds``: attributes
bcc's documentation does not mention).

Every such name is used only here. :func:`check` looks them up when bcc is first
imported and refuses, with a typed error naming what is missing, a bcc that lacks one;
``TESTED`` lists the versions tests/test_bccshim.py checked them on, against the real
bcc. What ebpfhooks remembers about a caller's ``BPF`` object (the program type each
function was loaded as) is kept here too, in a weak table: nothing is written into the
caller's object.

>>> "_get_uprobe_evname" in REQUIRED_BPF
True
"""

from __future__ import annotations

import weakref

from ebpfhooks.errors import AttachError, BccNotFoundError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

__all__ = [
    "REQUIRED_BPF",
    "TESTED",
    "add_uprobe_fd",
    "attached",
    "check",
    "check_probe_quota",
    "libbcc_path",
    "loaded_types",
    "uprobe_event_name",
    "version",
]

#: bcc versions whose internals the tests checked (Debian 12 ships 0.26).
TESTED = ("0.26",)
#: What ebpfhooks uses of ``bcc.BPF`` beyond its documented API.
REQUIRED_BPF = ("_get_uprobe_evname", "_check_probe_quota", "_add_uprobe_fd",
                "detach_uprobe_event", "detach_kprobe_event_by_fn", "dump_func")
#: bcc's per-object tables of what is attached, by kind.
_TABLES = {"kprobe": "kprobe_fds", "uprobe": "uprobe_fds", "tracepoint": "tracepoint_fds",
           "raw_tracepoint": "raw_tracepoint_fds",
           "kfunc": "kfunc_entry_fds", "kretfunc": "kfunc_exit_fds", "lsm": "lsm_fds"}


def version(bcc: ModuleType) -> str:
    """bcc's version string (``"0.26.0"``), or ``"unknown"``."""
    return str(getattr(bcc, "__version__", "unknown"))


def check(bcc: ModuleType) -> None:
    """Raise :class:`BccNotFoundError` unless ``bcc`` has every internal ebpfhooks uses.

    Versions outside ``TESTED`` are accepted when they have them all (their meaning is
    checked by the live tests on the machines that run them).
    """
    bpf_class = getattr(bcc, "BPF", None)
    lib = getattr(getattr(bcc, "libbcc", None), "lib", None)
    missing = [f"BPF.{name}" for name in REQUIRED_BPF if not hasattr(bpf_class, name)]
    if lib is None or not isinstance(getattr(lib, "_name", None), str):
        missing.append("libbcc.lib._name")
    if missing:
        raise BccNotFoundError(
            f"bcc {version(bcc)} lacks what ebpfhooks uses of it ({', '.join(missing)}); "
            f"ebpfhooks is tested with bcc {', '.join(TESTED)}: install that version "
            "(Debian/Ubuntu: python3-bpfcc)"
        )


def uprobe_event_name(bpf: Any, ret: bool, path: bytes, file_offset: int, pid: int) -> bytes:
    """The event name bcc would give this uprobe (``p__bin_bash_0x4f3a0``), which its
    ``cleanup()`` and ``detach_uprobe_event`` expect."""
    name: bytes = bpf._get_uprobe_evname(b"r" if ret else b"p", path, file_offset, pid)
    return name


def check_probe_quota(bpf: Any, what: str, n: int = 1) -> None:
    """Raise :class:`AttachError` when ``n`` more probes pass bcc's global probe limit."""
    try:
        bpf._check_probe_quota(n)
    except Exception as err:  # bcc raises a bare Exception
        raise AttachError(
            f"attaching {what} would pass bcc's limit on open probes in one process "
            f"({err}); raise it with the BCC_PROBE_LIMIT environment variable "
            "(default 1000), or attach fewer hooks"
        ) from err


def add_uprobe_fd(bpf: Any, event: bytes, fd: int) -> None:
    """Hand bcc an opened uprobe: its ``cleanup()`` and ``detach_uprobe_event`` own it too."""
    bpf._add_uprobe_fd(event, fd)


def attached(bpf: Any, table: str) -> dict[bytes, Any]:
    """bcc's table of what is attached in ``bpf``: ``"kprobe"``, ``"uprobe"``,
    ``"tracepoint"``, ``"raw_tracepoint"`` (event name -> fd or {fn: fd}), ``"kfunc"``,
    ``"kretfunc"`` or ``"lsm"`` (function name -> fd)."""
    found: dict[bytes, Any] = getattr(bpf, _TABLES[table])
    return found


def libbcc_path(lib: Any) -> str:
    """The name libbcc was loaded by (``libbcc.so.0``; ctypes keeps it as ``_name``)."""
    return str(lib._name)


_TYPES: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def loaded_types(bpf: Any) -> dict[str, str]:
    """The program type (``"KPROBE"``...) each function of ``bpf`` was loaded as by ebpfhooks.

    bcc caches loaded functions by name only, whatever type they were loaded as: the
    adapter remembers the type here, so a second hook of another kind gets a clear error
    instead of the kernel's EINVAL.
    """
    types = _TYPES.get(bpf)
    if types is None:
        types = _TYPES[bpf] = {}
    return types
