"""Opened ELF files, cached by (device, inode, mtime, size), with their symbol lookups.

``_load(path)`` opens a file once (:class:`~ebpfhooks.elf.elffile.ElfFile`), checks that
it is for this machine, and keeps it with its :class:`~ebpfhooks.elf.symbols.SymbolIndex`,
its separate debug file or MiniDebugInfo (found once per debug root), its function
symbols and, after a few lookups, a name index: a second resolution in the same file
reads nothing again. :mod:`ebpfhooks.elf.binary` checks found files through it and
:mod:`ebpfhooks.elf.resolve` resolves symbols and addresses in it.
"""

from __future__ import annotations

import pathlib
from collections import OrderedDict

from ebpfhooks.elf.debuginfo import find_debug_file, minidebuginfo
from ebpfhooks.elf.elffile import ElfFile
from ebpfhooks.elf.headers import EM_NAMES, host_machine
from ebpfhooks.elf.symbols import ElfSymbol, SymbolIndex, unique
from ebpfhooks.errors import BinaryNotFoundError, NotAnElfError, WrongArchitectureError

__all__: list[str] = []


def _directory_error(target: str, real: pathlib.Path) -> BinaryNotFoundError:
    """One message for a directory given as the binary (not "not found" and then why)."""
    shown = repr(target) if str(real) == target else f"{target!r} ({real})"
    err = BinaryNotFoundError(target, where=str(real.parent))
    err.hint = "give the path of an executable or library inside it"
    err.args = (f"binary {shown} is a directory, not an executable or library; give the "
                f"path of a file inside it, such as {real}/NAME",)
    return err


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
