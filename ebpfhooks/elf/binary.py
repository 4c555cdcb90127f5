"""Find the ELF file a uprobe target names: a path, an executable or a library name.

:func:`resolve_binary` looks, in order, at a path, then (with a pid) the files that
process maps (``/proc/PID/maps``, inside its root when it has another one), else
``$PATH``, ``/etc/ld.so.cache`` and the standard library directories; the file found is
checked (and opened, :mod:`ebpfhooks.elf.loaded`) as an ELF file of this machine.

>>> resolve_binary("c")  # doctest: +SKIP
PosixPath('/usr/lib/x86_64-linux-gnu/libc.so.6')
"""

from __future__ import annotations

import os
import pathlib

from ebpfhooks._util import close_matches
from ebpfhooks.elf.ldcache import (
    find_in_ld_so_cache,
    library_name_matches,
    read_ld_so_cache,
    read_ld_so_cache_bytes,
)
from ebpfhooks.elf.loaded import _directory_error, _load
from ebpfhooks.elf.procmaps import mapped_files, parse_proc_maps
from ebpfhooks.errors import (
    BinaryNotFoundError,
    HookPermissionError,
    LibraryNotFoundError,
    NotAnElfError,
    ProcessNotFoundError,
)

__all__ = ["resolve_binary"]

_LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")


def _check_file(path: str, target: str) -> pathlib.Path:
    """Return the real path of an existing ELF file of this machine, or raise.

    The file is opened (and cached) with pyelftools here, so the symbol lookups that
    follow read nothing again.
    """
    real = pathlib.Path(os.path.realpath(path))
    shown = target if str(real) == target else f"{target!r} ({real})"
    if real.is_dir():
        raise _directory_error(target, real)
    try:
        real.stat()
    except FileNotFoundError:
        parent = real.parent
        names = os.listdir(parent) if parent.is_dir() else []
        raise BinaryNotFoundError(
            target, where=str(parent) if parent.is_dir() else "the file system",
            candidates=[str(parent / n) for n in close_matches(real.name, names)],
            hint=f"no such file: {real}; check the path (or give a bare name to search "
                 "$PATH and /etc/ld.so.cache)") from None
    _load(real, shown)
    return real


def _other_root(pid: int) -> bool:
    try:
        a, b = os.stat(f"/proc/{pid}/root"), os.stat("/")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino)


def _resolve_in_root(root: pathlib.Path, path: str) -> str:
    """Follow symlinks in ``path`` as a process whose root is ``root`` sees them."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        cur = root.joinpath(*done, part)
        if cur.is_symlink() and hops < 40:
            hops += 1
            link = os.readlink(cur)
            if link.startswith("/"):
                done = []
            parts = [p for p in link.split("/") if p] + parts
            continue
        done.append(part)
    return str(root.joinpath(*done))


def _which_all(name: str) -> list[str]:
    out = []
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        cand = os.path.join(d or ".", name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            out.append(cand)
    return out


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _looks_like_library(name: str) -> bool:
    return name.startswith("lib") or ".so" in name


def resolve_binary(target: str, pid: int | None = None) -> pathlib.Path:
    """Find the ELF file a uprobe target names: a path, an executable name or a library name.

    Order: a target containing ``/`` is a path (relative to the current
    directory; with a pid whose root differs, absolute paths are taken inside
    ``/proc/PID/root``). With a pid, a bare name is looked for only among the files
    that process has mapped (``/proc/PID/maps``; a name found on ``$PATH`` or in
    ld.so.cache counts when it is one of those files): a probe on a file the process
    does not map would never fire for it. Without a pid, a bare name is looked for,
    in order, on ``$PATH``, in ``/etc/ld.so.cache`` (``c``, ``libc`` and
    ``libc.so.6`` all name libc; this machine's architecture first) and in the
    standard library directories (for systems without a cache, such as musl).
    Symlinks are resolved.

    >>> resolve_binary("c")  # doctest: +SKIP
    PosixPath('/usr/lib/x86_64-linux-gnu/libc.so.6')
    >>> resolve_binary("bash")  # doctest: +SKIP
    PosixPath('/usr/bin/bash')

    Raises :class:`~ebpfhooks.errors.ProcessNotFoundError` (no such pid),
    :class:`~ebpfhooks.errors.BinaryNotFoundError` (no such file, a directory,
    a name found nowhere), :class:`~ebpfhooks.errors.LibraryNotFoundError` (a
    library name nothing provides, or with a pid, a name the process does not map:
    the message names the pid and the closest names it maps),
    :class:`~ebpfhooks.errors.NotAnElfError`,
    :class:`~ebpfhooks.errors.WrongArchitectureError`;
    :class:`~ebpfhooks.errors.HookPermissionError` (a ``PermissionError``) naming
    the capability when the file or ``/proc/PID/maps`` cannot be read.
    """
    memo_key = None
    if pid is None and "/" in target and "\0" not in target:
        # a path: remember what it resolved to while the file it names is the same
        # (a wildcard resolves hundreds of hooks in one file)
        memo_key = os.path.abspath(target)
        try:
            st = os.stat(memo_key)
        except OSError:
            memo_key = None
        else:
            ident = (st.st_dev, st.st_ino, st.st_mtime_ns)
            hit = _PATH_MEMO.get(memo_key)
            if hit is not None and hit[1] == ident:
                return hit[0]
    try:
        found = _resolve_binary(target, pid)
    except HookPermissionError:
        raise
    except PermissionError as err:
        if pid is not None and str(err.filename or "").startswith(f"/proc/{pid}/"):
            raise HookPermissionError(
                f"reading {err.filename} (to find {target!r} in process {pid}) was refused: "
                "looking into another user's process needs CAP_SYS_PTRACE; run as root or "
                "as the process's user", capability="CAP_SYS_PTRACE") from err
        raise HookPermissionError(
            f"reading {err.filename or target!r} was refused ({err.strerror}): a uprobe "
            "target must be readable; run as root or grant CAP_DAC_READ_SEARCH",
            capability="CAP_DAC_READ_SEARCH") from err
    if memo_key is not None:
        if len(_PATH_MEMO) >= 256:
            _PATH_MEMO.clear()
        _PATH_MEMO[memo_key] = (found, ident)
    return found


#: abspath -> (resolved file, (st_dev, st_ino, st_mtime_ns) of what the path named)
_PATH_MEMO: dict[str, tuple[pathlib.Path, tuple[int, int, int]]] = {}


def _resolve_binary(target: str, pid: int | None) -> pathlib.Path:
    if not target or "\0" in target:
        raise BinaryNotFoundError(target, where="the file system",
                                  hint="give a path, an executable name or a library name")
    root = pathlib.Path("/")
    if pid is not None:
        if pid <= 0 or not os.path.isdir(f"/proc/{pid}"):
            raise ProcessNotFoundError(str(pid), where="/proc",
                                       hint="is the process running? check with `ps -p PID`")
        if _other_root(pid):
            root = pathlib.Path(f"/proc/{pid}/root")
    if "/" in target:
        if str(root) != "/" and target.startswith("/"):
            return _check_file(_resolve_in_root(root, target), target)
        return _check_file(os.path.abspath(target), target)
    if pid is not None:
        try:
            with open(f"/proc/{pid}/maps") as f:
                maps = parse_proc_maps(f.read())
        except FileNotFoundError:
            raise ProcessNotFoundError(str(pid), where="/proc",
                                       hint="the process exited while its maps were read"
                                       ) from None
        files = mapped_files(maps)
        for path in files:
            base = path.rsplit("/", 1)[-1]
            if base == target or library_name_matches(base, target):
                full = _resolve_in_root(root, path) if str(root) != "/" else path
                return _check_file(full, target)
        return _mapped_by_other_name(target, pid, files, root)
    on_path = _which_all(target)
    if on_path:
        try:
            return _check_file(on_path[0], target)
        except NotAnElfError as err:
            elves = [p for p in on_path[1:] if _is_elf(p)]
            if not elves:
                raise
            raise NotAnElfError(
                f"{err}; the next {target} on $PATH is an ELF file: {elves[0]}") from None
    cache = read_ld_so_cache_bytes()
    hits = find_in_ld_so_cache(cache, target) if cache else []
    if hits:
        return _check_file(hits[0].path, target)
    for d in _LIB_DIRS:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            if library_name_matches(n, target) and os.path.isfile(os.path.join(d, n)):
                return _check_file(os.path.join(d, n), target)
    pool = list(dict.fromkeys(e.name for e in read_ld_so_cache()))
    where = "$PATH and /etc/ld.so.cache"
    if _looks_like_library(target):
        raise LibraryNotFoundError(
            target, where=where, candidates=close_matches(target, pool),
            hint="give the library's full path, or install the package that provides it")
    path_names: list[str] = []
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        try:
            path_names.extend(os.listdir(d or "."))
        except OSError:
            continue
    raise BinaryNotFoundError(
        target, where=where,
        candidates=close_matches(target, dict.fromkeys(sorted(set(path_names)) + pool)),
        hint="give the full path of the executable or library")


def _mapped_by_other_name(target: str, pid: int, files: list[str],
                          root: pathlib.Path) -> pathlib.Path:
    """With ``[pid=N]``, a bare name must name a file process N maps, or nothing.

    A name that no mapped file is called may still be a file the process maps under
    another name (``python3`` -> ``/usr/bin/python3.11``): $PATH and ld.so.cache are
    asked, and their answer counts only when it is one of the mapped files. Anything
    else would probe a file the process never runs, silently.
    """
    if str(root) == "/":
        mapped = {os.path.realpath(p) for p in files}
        cache = read_ld_so_cache_bytes()
        others = _which_all(target) + [e.path for e in (
            find_in_ld_so_cache(cache, target) if cache else [])]
        for cand in others:
            if os.path.realpath(cand) in mapped:
                return _check_file(cand, target)
    names = list(dict.fromkeys(p.rsplit("/", 1)[-1] for p in files))
    raise LibraryNotFoundError(
        target, where=f"/proc/{pid}/maps (the files process {pid} has mapped)",
        candidates=close_matches(target, names),
        hint=f"process {pid} does not map {target!r}, so a probe there would never fire "
             f"for it; name a file it maps, or leave out [pid={pid}] to probe "
             f"{target!r} in every process")
