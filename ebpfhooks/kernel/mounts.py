"""Where tracefs and debugfs are mounted, and mounting them (``mount -t tracefs ...``).

Kept apart from :mod:`ebpfhooks.kernel.tracefs` (which re-exports everything here) so
that finding tracefs imports nothing heavy: ``ebpfhooks list`` starts in milliseconds
(it asks :func:`tracefs_dir`, a str: not even pathlib, whose import takes ~5 ms)::

    >>> from ebpfhooks.kernel.mounts import tracefs_root
    >>> tracefs_root()  # doctest: +SKIP
    PosixPath('/sys/kernel/tracing')

Minimum kernel: tracefs exists since 4.1; before that the same files are under
``<debugfs>/tracing``, which :func:`tracefs_root` also accepts.
"""

from __future__ import annotations

import os
from collections import namedtuple

from ebpfhooks.errors import HookPermissionError, TracefsNotMountedError

TYPE_CHECKING = False  # typing is not imported at run time (start-up time of `list`)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import NamedTuple

    #: Where the mount table of this process is read from (a test may set it).
    MOUNTS_FILE: Path

__all__ = [
    "MOUNTS_FILE",
    "Mount",
    "clear_cache",
    "debugfs_root",
    "mount_tracefs",
    "mounted_tracefs",
    "parse_mounts",
    "tracefs_dir",
    "tracefs_root",
]

_MOUNTS_FILE = "/proc/self/mounts"
_TRACEFS_DEFAULT = "/sys/kernel/tracing"
_DEBUGFS_DEFAULT = "/sys/kernel/debug"


def __getattr__(name: str) -> Path:
    # MOUNTS_FILE is a Path, made on first use: importing pathlib costs `list` ~5 ms
    if name == "MOUNTS_FILE":
        from pathlib import Path

        return Path(_MOUNTS_FILE)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_MOUNT_HELP = (
    "mount them as root with:\n"
    "    mount -t tracefs tracefs /sys/kernel/tracing\n"
    "    mount -t debugfs debugfs /sys/kernel/debug\n"
    "or run `ebpfhooks doctor --fix`"
)




# --------------------------------------------------------------------------- mounts


if TYPE_CHECKING:
    class Mount(NamedTuple):
        device: str
        mountpoint: str
        fstype: str
else:
    Mount = namedtuple("Mount", ["device", "mountpoint", "fstype"])
    Mount.__module__ = __name__
Mount.__doc__ = """One line of ``/proc/self/mounts``: ``device``, ``mountpoint`` and ``fstype``.

    >>> parse_mounts("tracefs /sys/kernel/tracing tracefs rw,relatime 0 0\\n")[0].fstype
    'tracefs'
    """


def _unescape_mount_field(field: str) -> str:
    """Undo the kernel's octal escapes (``\\040`` is a space) in a mounts field."""
    if "\\" not in field:
        return field  # nearly every field: no regex compiled, none run
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    """Parse the text of ``/proc/self/mounts`` (or ``/proc/mounts``) into :class:`Mount` rows.

    Fields are separated by spaces; spaces inside a field are written as ``\\040``.
    Lines with fewer than three fields are skipped.

    >>> [m.mountpoint for m in parse_mounts("debugfs /sys/kernel/debug debugfs rw 0 0\\n")]
    ['/sys/kernel/debug']
    """
    out: list[Mount] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        out.append(Mount(*(_unescape_mount_field(p) for p in parts[:3])))
    return out


def _mounts_file() -> str | Path:
    """:data:`MOUNTS_FILE` if it was set (tests point it at a fixture), else the real one."""
    return globals().get("MOUNTS_FILE", _MOUNTS_FILE)  # type: ignore[no-any-return]


def _read_mounts() -> list[Mount]:
    with open(_mounts_file(), encoding="utf-8", errors="surrogateescape") as f:
        return parse_mounts(f.read())


def _pick(mounts: list[Mount], fstype: str, default: str) -> str | None:
    """Choose the directory of ``fstype`` from a mount table (pure; no file checks)."""
    found = [os.path.normpath(m.mountpoint) for m in mounts if m.fstype == fstype]
    if default in found:
        return default
    return found[0] if found else None


def _as_path(path: str | None) -> Path | None:
    from pathlib import Path

    return None if path is None else Path(path)


_root_cache: list[str] = []  # zero or one element: the last tracefs root found


def _unreadable(root: str) -> HookPermissionError:
    """The error for a tracefs this process may not look into (not root)."""
    try:
        st = os.stat(root)
        owner = f"mode {st.st_mode & 0o7777:04o}, owner uid {st.st_uid}"
    except OSError:
        owner = "not readable"
    return HookPermissionError(
        f"cannot read {root}: tracefs is mounted there but readable by root only "
        f"({owner}; this process is uid {os.geteuid()}); rerun as root (e.g. with sudo), "
        "or give the process CAP_DAC_READ_SEARCH",
        capability="CAP_DAC_READ_SEARCH",
    )


def _has_events(root: str) -> bool:
    """Is ``root/available_events`` there? Raises the typed error when it may not be seen.

    ``stat`` fails with a bare ``PermissionError`` when a directory on the way is not
    searchable, as tracefs (mode 0700) is for anyone but root.
    """
    try:
        os.stat(os.path.join(root, "available_events"))
    except PermissionError:
        raise _unreadable(root) from None
    except OSError:
        return False
    return True


def mounted_tracefs() -> Path | None:
    """Where the mount table says tracefs is, without checking it can be read (or ``None``).

    For messages about a tracefs this process may not read (:func:`tracefs_root`
    raises then); ``<debugfs>/tracing`` is not considered.

    >>> mounted_tracefs()  # doctest: +SKIP
    PosixPath('/sys/kernel/tracing')
    """
    return _as_path(_pick(_read_mounts(), "tracefs", _TRACEFS_DEFAULT))


def tracefs_root() -> Path:
    """Return the directory where tracefs is mounted, preferring ``/sys/kernel/tracing``.

    Looks for a ``tracefs`` entry in ``/proc/self/mounts``; failing that, uses
    ``<debugfs>/tracing`` if it holds ``available_events``. The answer is cached and
    re-checked (one ``stat``) on every call, so an unmount is noticed.

    >>> tracefs_root()  # doctest: +SKIP
    PosixPath('/sys/kernel/tracing')

    Minimum kernel: 4.1 for tracefs; older kernels through debugfs.

    Raises:
        TracefsNotMountedError: neither tracefs nor debugfs (with ``tracing``) is
            mounted; the message gives the ``mount`` commands that fix it.
        HookPermissionError: tracefs is mounted but this process may not look into it
            (mode 0700: root only); the message names the directory and the fix.
    """
    from pathlib import Path

    return Path(tracefs_dir())


def tracefs_dir() -> str:
    """:func:`tracefs_root` as a str: what the listings use (they need no pathlib).

    >>> tracefs_dir()  # doctest: +SKIP
    '/sys/kernel/tracing'

    Minimum kernel and errors: those of :func:`tracefs_root`.
    """
    if _root_cache and _has_events(_root_cache[0]):
        return _root_cache[0]
    _root_cache.clear()
    mounts = _read_mounts()
    root = _pick(mounts, "tracefs", _TRACEFS_DEFAULT)
    if root is not None:
        _has_events(root)  # only to raise the typed error when it is not readable
    else:
        debugfs = _pick(mounts, "debugfs", _DEBUGFS_DEFAULT)
        if debugfs is not None and _has_events(os.path.join(debugfs, "tracing")):
            root = os.path.join(debugfs, "tracing")
    if root is None:
        raise TracefsNotMountedError(
            f"tracefs is not mounted: {_mounts_file()} has no 'tracefs' entry and no "
            "debugfs mount with tracing/available_events; tracepoints, uprobes and kprobes "
            "need it; " + _MOUNT_HELP,
            missing="tracefs",
        )
    _root_cache.append(root)
    return root


def debugfs_root() -> Path | None:
    """Return where debugfs is mounted (preferring ``/sys/kernel/debug``), or ``None``.

    >>> debugfs_root()  # doctest: +SKIP
    PosixPath('/sys/kernel/debug')
    """
    return _as_path(_pick(_read_mounts(), "debugfs", _DEBUGFS_DEFAULT))


_MOUNT_TARGETS: tuple[tuple[str, str], ...] = (
    ("tracefs", _TRACEFS_DEFAULT),
    ("debugfs", _DEBUGFS_DEFAULT),
)

_PERMISSION_WORDS = ("permission denied", "must be superuser", "only root", "not permitted")


def mount_tracefs() -> list[str]:
    """Mount tracefs at ``/sys/kernel/tracing`` and debugfs at ``/sys/kernel/debug`` if needed.

    Runs ``mount -t FSTYPE FSTYPE DIR`` (fixed argv, no shell) for each file system not
    already mounted at its usual place, and returns one line per action taken (an empty
    list when both were already there).

    >>> mount_tracefs()  # doctest: +SKIP
    ['mounted tracefs at /sys/kernel/tracing', 'mounted debugfs at /sys/kernel/debug']

    Minimum kernel: 4.1 for tracefs (debugfs is older).

    Raises:
        HookPermissionError: not allowed to mount (needs root / CAP_SYS_ADMIN).
        TracefsNotMountedError: ``mount`` is missing or failed for another reason
            (for example the kernel lacks tracefs).
    """
    import subprocess  # here, not at the top: finding tracefs must import nothing heavy

    done: list[str] = []
    mounted = {(m.fstype, os.path.normpath(m.mountpoint)) for m in _read_mounts()}
    for fstype, target in _MOUNT_TARGETS:
        if (fstype, target) in mounted:
            continue
        argv = ["mount", "-t", fstype, fstype, target]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        except FileNotFoundError as err:
            raise TracefsNotMountedError(
                f"cannot mount {fstype} at {target}: the mount(8) command is not installed; "
                "install util-linux (or mount from another tool) and retry",
                missing=fstype,
            ) from err
        if proc.returncode != 0:
            raise _mount_failure(argv, proc.returncode, proc.stderr)
        done.append(f"mounted {fstype} at {target}")
    if done:
        clear_cache()
        from ebpfhooks.kernel import tracefs

        tracefs.clear_cache()  # lists read while debugfs was missing (kprobe blacklist)
    return done


def _mount_failure(argv: list[str], returncode: int, stderr: str) -> Exception:
    """Turn a failed ``mount`` run into the typed error it means (pure)."""
    command = " ".join(argv)
    detail = stderr.strip() or f"exit status {returncode}"
    if any(word in detail.lower() for word in _PERMISSION_WORDS):
        return HookPermissionError(
            f"`{command}` was refused ({detail}): mounting needs root (CAP_SYS_ADMIN); "
            "rerun as root, e.g. with sudo",
            capability="CAP_SYS_ADMIN",
        )
    return TracefsNotMountedError(
        f"`{command}` failed ({detail}); check that the kernel has CONFIG_TRACING / "
        "CONFIG_DEBUG_FS and that the mount point exists",
        missing=argv[2],
    )


def clear_cache() -> None:
    """Forget where tracefs was found (the next :func:`tracefs_root` looks again).

    >>> clear_cache()
    """
    _root_cache.clear()
