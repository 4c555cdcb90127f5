"""Resolve uprobe targets: which file, and which offset in it the kernel must probe.

>>> t = resolve_symbol(resolve_binary("c"), "malloc")  # doctest: +SKIP
>>> str(t)  # doctest: +SKIP
'/usr/lib/x86_64-linux-gnu/libc.so.6:malloc (vaddr 0x9a0f0, file offset 0x9a0f0)'

Files are opened with pyelftools (:class:`~ebpfhooks.elf.elffile.ElfFile`), read
lazily and cached by (device, inode, mtime, size): a second resolution in the same
file reads nothing again.

IFUNC symbols (``strlen``, ``memcpy`` in glibc) resolve to the *resolver*
function, as bcc does: the resolver runs when the dynamic linker binds the
symbol, not on every call. To trace calls, probe the implementation the
resolver picks (``__strlen_avx2`` ...): those are in ``.symtab`` or the debug
file; :func:`function_symbols` lists them.
"""

from __future__ import annotations

import bisect
import os
import pathlib
from collections import OrderedDict
from collections.abc import Sequence

import attrs

from ebpfhooks._util import close_matches
from ebpfhooks.elf.debuginfo import DEFAULT_DEBUG_ROOT, find_debug_file, minidebuginfo
from ebpfhooks.elf.elffile import EM_NAMES, ElfFile, host_machine
from ebpfhooks.elf.errors import AddressNotExecutableError, OffsetOutOfRangeError
from ebpfhooks.elf.ldcache import (
    find_in_ld_so_cache,
    library_name_matches,
    read_ld_so_cache,
    read_ld_so_cache_bytes,
)
from ebpfhooks.elf.procmaps import mapped_files, parse_proc_maps
from ebpfhooks.elf.symbols import ElfSymbol, SymbolIndex, split_version, unique
from ebpfhooks.errors import (
    AmbiguousSymbolError,
    BinaryNotFoundError,
    EbpfHooksError,
    HookPermissionError,
    ImportedSymbolError,
    LibraryNotFoundError,
    NotAnElfError,
    ProcessNotFoundError,
    SymbolNotFoundError,
    WrongArchitectureError,
)

__all__ = [
    "UserTarget",
    "function_symbols",
    "resolve_address",
    "resolve_binary",
    "resolve_file_offset",
    "resolve_symbol",
    "resolve_symbols",
]

_LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")


@attrs.frozen
class UserTarget:
    """A resolved uprobe location: the file and the offset in it the kernel probes.

    >>> resolve_symbol(pathlib.Path("/bin/bash"), "readline").file_offset  # doctest: +SKIP
    894016
    """

    path: pathlib.Path  #: the real file probed
    symbol: str | None  #: symbol name as found (without version); None for raw addresses
    version: str | None  #: symbol version ('GLIBC_2.2.5') if any
    vaddr: int  #: ELF virtual address probed (symbol value + offset)
    file_offset: int  #: what the kernel gets: offset in the file
    offset: int  #: offset inside the symbol (0 for address targets)
    size: int  #: symbol size (0 if unknown)
    binding: str | None  #: 'GLOBAL' | 'WEAK' | 'LOCAL' | None
    type: str | None  #: 'FUNC' | 'IFUNC' | 'NOTYPE' | ... | None
    ifunc: bool  #: True when the symbol is an IFUNC: its resolver is probed
    note: str | None  #: human explanation (IFUNC, zero size, debug file used)
    hidden_version: bool = False  #: ``version`` is a non-default one (``name@VER``)

    def __str__(self) -> str:
        if self.symbol is None:
            where = f"0x{self.vaddr:x}"
        else:
            where = self.symbol
            if self.version and self.hidden_version:
                where += f"@{self.version}"
            if self.offset:
                where += f"+0x{self.offset:x}"
        return f"{self.path}:{where} (vaddr 0x{self.vaddr:x}, file offset 0x{self.file_offset:x})"


# ----------------------------------------------------------------------------- files


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


def _directory_error(target: str, real: pathlib.Path) -> BinaryNotFoundError:
    """One message for a directory given as the binary (not "not found" and then why)."""
    shown = repr(target) if str(real) == target else f"{target!r} ({real})"
    err = BinaryNotFoundError(target, where=str(real.parent))
    err.hint = "give the path of an executable or library inside it"
    err.args = (f"binary {shown} is a directory, not an executable or library; give the "
                f"path of a file inside it, such as {real}/NAME",)
    return err


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


# ----------------------------------------------------------------------------- ELF cache


class _Loaded:
    def __init__(self, path: pathlib.Path, shown: str | None = None) -> None:
        self.path = path
        try:
            self.elf = ElfFile.open(path)
        except NotAnElfError as err:
            if shown is None or shown == str(path):
                raise
            raise NotAnElfError(str(err).replace(str(path), shown, 1)) from err.__cause__
        host = host_machine()
        if host and self.elf.machine != host:
            theirs = EM_NAMES.get(self.elf.machine, f"machine {self.elf.machine}")
            mine = EM_NAMES.get(host, str(host))
            raise WrongArchitectureError(
                f"{shown or path} is an ELF file for {theirs}, but this machine is {mine}; "
                f"uprobes need the {mine} build of the file")
        self.index = SymbolIndex(self.elf)
        self._debug: dict[pathlib.Path, tuple[SymbolIndex, str] | None] = {}
        self._functions: dict[pathlib.Path, list[ElfSymbol]] = {}
        self._plain: dict[pathlib.Path, list[str]] = {}
        self._lookups = 0
        self._by_name: dict[pathlib.Path, tuple[dict[str, list[ElfSymbol]], str | None]] = {}

    def candidates(self, base: str, root: pathlib.Path) -> tuple[list[ElfSymbol], str | None]:
        """The defined, non-zero definitions of ``base``, and the debug file they came from.

        The first lookups in a file search the tables' string sections by name; from
        the 17th on (a wildcard resolving hundreds of functions of one file), or at once
        when every symbol was decoded already (the file was listed, as ``expand`` does),
        a name index built once answers: the same symbols in the same order.
        """
        index = self._by_name.get(root)
        if index is not None:
            names, note = index
            found = names.get(base, [])
            # as below: the debug file is named when the name was not exported
            exported = bool(found) and not found[0].table.startswith("debug:")
            return found, None if exported else note
        self._lookups += 1
        if self._lookups > _INDEX_AFTER or root in self._functions:
            self._by_name[root] = self._name_index(root)
            return self.candidates(base, root)
        found = [s for s in self.index.lookup(base) if s.defined and s.value]
        if found or self.index.symtab is not None:
            return found, None
        dbg = self.debug(root)
        if dbg is None or dbg[0].symtab is None:
            return found, None
        return [s for s in dbg[0].symtab.find(base) if s.defined and s.value], dbg[1]

    def _name_index(self, root: pathlib.Path
                    ) -> tuple[dict[str, list[ElfSymbol]], str | None]:
        names: dict[str, list[ElfSymbol]] = {}
        for s in self.index.all():  # .dynsym first, then .symtab, as lookup() orders them
            if s.defined and s.value:
                names.setdefault(s.name, []).append(s)
        if self.index.symtab is not None:
            return names, None
        dbg = self.debug(root)
        if dbg is None or dbg[0].symtab is None:
            return names, None
        # stripped: a name not exported is looked up in the debug file's .symtab
        extra: dict[str, list[ElfSymbol]] = {}
        for s in dbg[0].symtab.all():
            if s.defined and s.value and s.name not in names:
                extra.setdefault(s.name, []).append(s)
        names.update(extra)
        return names, dbg[1]

    def plain_function_names(self, root: pathlib.Path) -> list[str]:
        """Names of the FUNC (not IFUNC) symbols, computed once per debug root."""
        if root not in self._plain:
            self._plain[root] = [s.name for s in self.functions(root) if s.type == "FUNC"]
        return self._plain[root]

    def debug(self, root: pathlib.Path) -> tuple[SymbolIndex, str] | None:
        """The symbols of the separate debug file (or MiniDebugInfo) and its description."""
        if root not in self._debug:
            found: tuple[SymbolIndex, str] | None = None
            dbg = find_debug_file(self.path, self.elf, root)
            if dbg is not None:
                found = (SymbolIndex(ElfFile.open(dbg), f"debug:{dbg}:"), f"debug file {dbg}")
            else:
                mini = minidebuginfo(self.elf)
                if mini is not None:
                    found = (SymbolIndex(mini, "debug:.gnu_debugdata:"),
                             "MiniDebugInfo (.gnu_debugdata)")
            self._debug[root] = found
        return self._debug[root]

    def functions(self, root: pathlib.Path) -> list[ElfSymbol]:
        if root not in self._functions:
            syms = self.index.all()
            if self.index.symtab is None:
                dbg = self.debug(root)
                if dbg is not None and dbg[0].symtab is not None:
                    syms = syms + dbg[0].symtab.all()
            funcs = [s for s in syms if s.defined and s.is_function and s.value]
            self._functions[root] = sorted(unique(funcs), key=lambda s: (s.value, s.name))
        return self._functions[root]


#: Lookups in one file after which it gets a name index (see ``_Loaded.candidates``).
_INDEX_AFTER = 16

_CACHE: OrderedDict[tuple[int, int, int, int], _Loaded] = OrderedDict()
_CACHE_SIZE = 32


def _load(path: pathlib.Path, shown: str | None = None) -> _Loaded:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise BinaryNotFoundError(str(path), where=str(path.parent),
                                  hint="resolve the target with resolve_binary() first") from None
    key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    if path.is_dir():
        raise _directory_error(str(path), path)
    loaded = _Loaded(path, shown)
    _CACHE[key] = loaded
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return loaded


# ----------------------------------------------------------------------------- symbols

_BIND_RANK = {"GLOBAL": 0, "UNIQUE": 0, "WEAK": 1, "LOCAL": 2}
_TYPE_RANK = {"FUNC": 0, "IFUNC": 0, "NOTYPE": 1}


def _describe(s: ElfSymbol) -> str:
    return (f"{s.versioned_name} at vaddr 0x{s.value:x} ({s.binding} {s.type}, "
            f"size {s.size}, {s.table})")


def _pick(name: str, path: pathlib.Path, cands: list[ElfSymbol],
          versioned: bool) -> tuple[ElfSymbol, list[str]]:
    """Choose one address among candidate definitions; return it and notes."""
    first = cands[0].value
    if all(s.value == first for s in cands):  # the usual case: one address, no notes
        return (cands[0] if len(cands) == 1 else min(cands, key=_rank)), []
    notes: list[str] = []
    groups: dict[int, list[ElfSymbol]] = {}
    for s in cands:
        groups.setdefault(s.value, []).append(s)
    if len(groups) > 1 and not versioned:
        default = {s.value for s in cands if s.version and s.default}
        if len(default) == 1:
            (addr,) = default
            others = sorted({s.versioned_name for s in cands if s.value != addr})
            notes.append(f"default version chosen; other versions: {', '.join(others)}")
            groups = {addr: groups[addr]}
    if len(groups) > 1:
        best = min(_BIND_RANK.get(s.binding, 3) for s in cands)
        kept = {a: g for a, g in groups.items()
                if min(_BIND_RANK.get(s.binding, 3) for s in g) == best}
        if len(kept) < len(groups):
            dropped = [s for a, g in groups.items() if a not in kept for s in g]
            notes.append("stronger definition chosen over " + "; ".join(map(_describe, dropped)))
        groups = kept
    if len(groups) > 1:
        listed = "\n  ".join(_describe(min(g, key=_rank)) for g in groups.values())
        raise AmbiguousSymbolError(
            f"symbol {name!r} has {len(groups)} different definitions in {path}:\n  {listed}\n"
            "probe one of them by its address (0xADDR, as nm prints it)"
            + ("" if all(s.binding == "LOCAL" for s in cands) else
               " or with a version (name@VERSION)"))
    (group,) = groups.values()
    return min(group, key=_rank), notes


def _rank(s: ElfSymbol) -> tuple[int, int, int, int]:
    return (_TYPE_RANK.get(s.type, 2), _BIND_RANK.get(s.binding, 3),
            0 if s.version else 1, -s.size)


def resolve_symbol(path: pathlib.Path, name: str, offset: int = 0, *,
                   debug_root: pathlib.Path = DEFAULT_DEBUG_ROOT) -> UserTarget:
    """Resolve ``name[+offset]`` in the ELF file ``path`` to the file offset to probe.

    ``name`` may carry a version: ``malloc@@GLIBC_2.2.5`` (the default
    version) or ``memcpy@GLIBC_2.2.5`` (that version, default or not). Without
    a version the default version wins over older ones, a GLOBAL definition
    over WEAK and LOCAL ones, and aliases at one address are one target.
    ``.symtab`` is used when present, else the separate debug file found under
    ``debug_root`` (build-id, ``.gnu_debuglink``) or MiniDebugInfo.

    >>> resolve_symbol(pathlib.Path("/usr/bin/bash"), "readline")  # doctest: +SKIP
    UserTarget(path=PosixPath('/usr/bin/bash'), symbol='readline', ...)

    Raises :class:`~ebpfhooks.errors.SymbolNotFoundError` (with close
    matches), :class:`~ebpfhooks.errors.ImportedSymbolError` (only imported
    here: names the library), :class:`~ebpfhooks.errors.AmbiguousSymbolError`
    (two different definitions), :class:`OffsetOutOfRangeError` (offset past
    the symbol's size), :class:`AddressNotExecutableError` (not code),
    :class:`~ebpfhooks.errors.BinaryNotFoundError`,
    :class:`~ebpfhooks.errors.NotAnElfError`,
    :class:`~ebpfhooks.errors.WrongArchitectureError`.
    """
    path = pathlib.Path(path)
    return _resolve_symbol_in(_load(path), path, name, offset, debug_root)


def resolve_symbols(path: pathlib.Path, requests: Sequence[tuple[str, int]], *,
                    debug_root: pathlib.Path = DEFAULT_DEBUG_ROOT
                    ) -> list[UserTarget | EbpfHooksError]:
    """:func:`resolve_symbol` for many ``(name, offset)`` pairs of one file, in bulk.

    The file is checked and loaded once; each result is the target or the error
    :func:`resolve_symbol` would raise for that pair. Errors of the file itself (not
    found, not ELF) are raised.

    >>> resolve_symbols(pathlib.Path("/usr/bin/bash"), [("readline", 0), ("nope", 0)])
    ... # doctest: +SKIP
    [UserTarget(path=PosixPath('/usr/bin/bash'), symbol='readline', ...), SymbolNotFoundError(...)]
    """
    path = pathlib.Path(path)
    loaded = _load(path)
    out: list[UserTarget | EbpfHooksError] = []
    for name, offset in requests:
        try:
            out.append(_resolve_symbol_in(loaded, path, name, offset, debug_root))
        except EbpfHooksError as err:
            out.append(err)
    return out


def _resolve_symbol_in(loaded: _Loaded, path: pathlib.Path, name: str, offset: int,
                       debug_root: pathlib.Path) -> UserTarget:
    base, version, default = split_version(name)
    if not base:
        raise SymbolNotFoundError(name, where=str(path),
                                  hint="give a symbol name, such as 'main' or 'malloc'")
    cands, debug_note = loaded.candidates(base, debug_root)
    allc = cands
    if version is not None:
        cands = [s for s in cands if s.version == version and (s.default or not default)]
    if not cands:
        _not_found(loaded, path, name, base, allc, debug_root)
    sym, notes = _pick(name, path, cands, version is not None)
    if debug_note and sym.table.startswith("debug:"):
        notes.insert(0, f"symbol read from {debug_note}")
    if offset < 0:
        raise OffsetOutOfRangeError(
            f"offset {offset} for {path}:{name} is negative; give 0 or a positive offset "
            f"inside the function (size {sym.size})")
    if sym.size:
        if offset >= sym.size:
            raise OffsetOutOfRangeError(
                f"offset 0x{offset:x} is past the end of {path}:{name} (size 0x{sym.size:x}); "
                f"give an offset below 0x{sym.size:x}")
    elif offset:
        notes.append("symbol size is 0 (unknown): the offset was not checked")
    else:
        notes.append("symbol size is 0 (unknown)")
    if sym.type == "IFUNC":
        notes.append(_ifunc_note(loaded, base, debug_root))
    vaddr = sym.value + offset
    file_offset = loaded.elf.vaddr_to_offset(vaddr)
    if file_offset is None:
        raise AddressNotExecutableError(
            f"{path}:{name} is at vaddr 0x{vaddr:x} ({sym.type}), outside every executable "
            f"segment of the file ({_ranges(loaded)}); uprobes need a function")
    return UserTarget(
        path=path, symbol=sym.name, version=sym.version, vaddr=vaddr, file_offset=file_offset,
        offset=offset, size=sym.size, binding=sym.binding, type=sym.type,
        ifunc=sym.type == "IFUNC", note="; ".join(notes) or None,
        hidden_version=bool(sym.version) and not sym.default)


def _ifunc_note(loaded: _Loaded, base: str, root: pathlib.Path) -> str:
    impls = [name for name in loaded.plain_function_names(root)
             if name.startswith(("__" + base + "_", base + "_"))]
    hint = (f" (for example {', '.join(sorted(set(impls))[:4])})" if impls
            else " (function_symbols() lists the candidates; stripped files need debug symbols)")
    return (f"{base} is an IFUNC: the probe is on its resolver, which runs when the symbol is "
            "bound, not on each call; to trace calls, probe the implementation it selects"
            + hint)


def _ranges(loaded: _Loaded) -> str:
    return ", ".join(f"0x{a:x}-0x{b:x}" for a, b in loaded.elf.executable_ranges()) or "none"


def _not_found(loaded: _Loaded, path: pathlib.Path, name: str, base: str,
               other_versions: list[ElfSymbol], root: pathlib.Path) -> None:
    if other_versions:
        raise SymbolNotFoundError(
            name, where=str(path),
            candidates=sorted({s.versioned_name for s in other_versions}),
            hint="that version is not defined here; use one of the versions listed")
    imported = loaded.index.imported(base)
    if imported:
        libs = sorted({s.library for s in imported if s.library})
        needed = loaded.index.needed()
        if libs:
            src = f"it is defined in {', '.join(libs)}"
        elif needed:
            src = f"it is defined in one of its libraries: {', '.join(needed)}"
        else:
            src = "it is defined in another file"
        first = libs[0] if libs else (needed[0] if needed else "LIBRARY")
        raise ImportedSymbolError(
            f"{name!r} is only imported by {path} (undefined there, value 0): {src}; "
            f"probe it in the library instead, e.g. uprobe:{first}:{base}")
    pool = dict.fromkeys(s.name for s in loaded.functions(root))  # one entry per name
    stripped = loaded.index.symtab is None and loaded.debug(root) is None
    hint = ("the file is stripped (no .symtab) and no debug file was found under "
            f"{root}: install its debug symbols" if stripped else None)
    raise SymbolNotFoundError(name, where=str(path), candidates=close_matches(base, pool),
                              hint=hint)


def resolve_address(path: pathlib.Path, vaddr: int, *,
                    debug_root: pathlib.Path = DEFAULT_DEBUG_ROOT) -> UserTarget:
    """Resolve an ELF virtual address (as ``nm`` prints it) in ``path`` to a file offset.

    >>> resolve_address(pathlib.Path("/usr/bin/python3.11"), 0x4ff000).file_offset  # doctest: +SKIP

    Raises :class:`AddressNotExecutableError` when ``vaddr`` is outside every
    executable segment; the file errors of :func:`resolve_symbol`.
    """
    path = pathlib.Path(path)
    loaded = _load(path)
    file_offset = loaded.elf.vaddr_to_offset(vaddr)
    if file_offset is None:
        raise AddressNotExecutableError(
            f"address 0x{vaddr:x} is outside every executable segment of {path} "
            f"({_ranges(loaded)}); give an ELF virtual address as `nm` prints it")
    return _address_target(loaded, path, vaddr, file_offset, debug_root)


def resolve_file_offset(path: pathlib.Path, file_offset: int, *,
                        debug_root: pathlib.Path = DEFAULT_DEBUG_ROOT) -> UserTarget:
    """Resolve a raw file offset (libbpf style) in ``path``, checking it is code.

    >>> resolve_file_offset(pathlib.Path("/usr/bin/bash"), 0x30000).vaddr  # doctest: +SKIP

    Raises :class:`AddressNotExecutableError` when the offset is outside every
    executable segment; the file errors of :func:`resolve_symbol`.
    """
    path = pathlib.Path(path)
    loaded = _load(path)
    vaddr = loaded.elf.offset_to_vaddr(file_offset)
    if vaddr is None:
        ranges = ", ".join(f"0x{s.offset:x}-0x{s.offset + s.filesz:x}"
                           for s in loaded.elf.segments if s.executable) or "none"
        raise AddressNotExecutableError(
            f"file offset 0x{file_offset:x} is outside every executable segment of {path} "
            f"(file ranges {ranges}); give an offset inside the code")
    return _address_target(loaded, path, vaddr, file_offset, debug_root)


def _address_target(loaded: _Loaded, path: pathlib.Path, vaddr: int, file_offset: int,
                    root: pathlib.Path) -> UserTarget:
    funcs = loaded.functions(root)
    note = None
    i = bisect.bisect_right([s.value for s in funcs], vaddr) - 1
    if i >= 0:
        s = funcs[i]
        if vaddr < s.value + max(s.size, 1):
            note = f"inside {s.name}+0x{vaddr - s.value:x}"
    return UserTarget(path=path, symbol=None, version=None, vaddr=vaddr, file_offset=file_offset,
                      offset=0, size=0, binding=None, type=None, ifunc=False, note=note)


def function_symbols(path: pathlib.Path, *,
                     debug_root: pathlib.Path = DEFAULT_DEBUG_ROOT) -> list[ElfSymbol]:
    """Every defined FUNC and IFUNC symbol of ``path`` (with debug symbols when stripped).

    Sorted by address then name; one entry per (name, version, address).

    >>> [s.name for s in function_symbols(pathlib.Path("/usr/bin/bash"))][:2]  # doctest: +SKIP

    Raises the file errors of :func:`resolve_symbol`.
    """
    return list(_load(pathlib.Path(path)).functions(debug_root))
