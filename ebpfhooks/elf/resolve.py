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

Finding the file (:func:`resolve_binary`, importable from here as before) is in
:mod:`ebpfhooks.elf.binary`, and the cache of opened files in :mod:`ebpfhooks.elf.loaded`.
"""

from __future__ import annotations

import bisect
import pathlib
from collections.abc import Sequence

import attrs

from ebpfhooks._util import close_matches
from ebpfhooks.elf.binary import resolve_binary
from ebpfhooks.elf.debuginfo import DEFAULT_DEBUG_ROOT
from ebpfhooks.elf.errors import AddressNotExecutableError, OffsetOutOfRangeError
from ebpfhooks.elf.loaded import _load, _Loaded
from ebpfhooks.elf.symbols import ElfSymbol, split_version
from ebpfhooks.errors import (
    AmbiguousSymbolError,
    EbpfHooksError,
    ImportedSymbolError,
    SymbolNotFoundError,
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
