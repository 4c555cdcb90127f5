"""ELF symbol tables read in bulk: ``.dynsym``, ``.symtab`` and their versions.

pyelftools (through :class:`~ebpfhooks.elf.elffile.ElfFile`) finds the tables, reads
their bytes and parses the version definitions and needs; the entries themselves are
unpacked here with :func:`struct.iter_unpack` over the section bytes it returns (tens of
thousands of symbols in milliseconds, where one pyelftools ``Symbol`` per entry takes
~1 s for libLLVM's 45k). A lookup by name first finds the name's offsets in the string
table, then the entries pointing at them, without decoding the other names.

>>> syms = SymbolIndex(ElfFile.open(pathlib.Path("/lib/x86_64-linux-gnu/libc.so.6")))
>>> [s.versioned_name for s in syms.lookup("malloc")]  # doctest: +SKIP
['malloc@@GLIBC_2.2.5']
"""

from __future__ import annotations

import pathlib  # noqa: F401  (used in docstring examples)
import struct
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import attrs

from ebpfhooks.elf.elffile import ElfFile, Section

__all__ = [
    "BINDINGS",
    "TYPES",
    "ElfSymbol",
    "SymbolIndex",
    "SymbolTable",
    "VersionInfo",
    "parse_symbols",
    "parse_versym",
    "split_version",
    "unique",
]

SHN_UNDEF = 0
VERSYM_HIDDEN = 0x8000

#: st_info type numbers to the names readelf prints.
TYPES: dict[int, str] = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE",
                         5: "COMMON", 6: "TLS", 10: "IFUNC"}
#: st_info binding numbers to the names readelf prints.
BINDINGS: dict[int, str] = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "UNIQUE"}


@attrs.frozen
class ElfSymbol:
    """One symbol of an ELF symbol table, version attached.

    >>> ElfSymbol("malloc", "GLIBC_2.2.5", True, 0x9a0f0, 0x1e0, "FUNC", "GLOBAL", 15,
    ...           ".dynsym").versioned_name
    'malloc@@GLIBC_2.2.5'
    """

    name: str  #: name without version
    version: str | None  #: symbol version, if any
    default: bool  #: the default version (``@@``) rather than a hidden one (``@``)
    value: int  #: st_value: the ELF virtual address for defined symbols
    size: int
    type: str  #: 'FUNC', 'IFUNC', 'NOTYPE', 'OBJECT', ... (or 'TYPE<n>')
    binding: str  #: 'GLOBAL', 'WEAK', 'LOCAL', 'UNIQUE' (or 'BIND<n>')
    shndx: int  #: section index; 0 means undefined (imported)
    table: str  #: '.dynsym', '.symtab', or 'debug:<file>' for a separate debug file
    library: str | None = None  #: for imported versioned symbols, the library (verneed)

    @property
    def defined(self) -> bool:
        """True when the symbol is defined in this file (not imported)."""
        return self.shndx != SHN_UNDEF

    @property
    def is_function(self) -> bool:
        """True for FUNC and IFUNC symbols."""
        return self.type in ("FUNC", "IFUNC")

    @property
    def versioned_name(self) -> str:
        """``name@@VERSION`` / ``name@VERSION`` / ``name`` as readelf shows it."""
        if not self.version:
            return self.name
        return f"{self.name}{'@@' if self.default else '@'}{self.version}"


def split_version(name: str) -> tuple[str, str | None, bool | None]:
    """Split ``'memcpy@@GLIBC_2.14'`` into ``('memcpy', 'GLIBC_2.14', True)``.

    The third element is True for ``@@`` (default version), False for ``@``
    and None when no version is given.

    >>> split_version("memcpy@GLIBC_2.2.5")
    ('memcpy', 'GLIBC_2.2.5', False)
    >>> split_version("malloc")
    ('malloc', None, None)

    Raises nothing.
    """
    base, sep, ver = name.partition("@")
    if not sep:
        return name, None, None
    if ver.startswith("@"):
        return base, ver[1:], True
    return base, ver, False


def parse_symbols(entries: bytes, elfclass: int, endian: str = "<") -> list[tuple[int, ...]]:
    """Unpack a whole symbol table into ``(st_name, st_info, st_shndx, st_value, st_size)``.

    >>> parse_symbols(bytes(24), 64)
    [(0, 0, 0, 0, 0)]

    Raises nothing: a trailing partial entry is ignored.
    """
    if elfclass == 64:
        size = 24
        whole = len(entries) - len(entries) % size
        return [(n, info, shndx, value, sz) for n, info, _o, shndx, value, sz
                in struct.iter_unpack(endian + "IBBHQQ", entries[:whole])]
    size = 16
    whole = len(entries) - len(entries) % size
    return [(n, info, shndx, value, sz) for n, value, sz, info, _o, shndx
            in struct.iter_unpack(endian + "IIIBBH", entries[:whole])]


def parse_versym(data: bytes, endian: str = "<") -> list[int]:
    """Unpack ``.gnu.version`` (bytes pyelftools read): one 16-bit index per dynamic symbol.

    >>> parse_versym(b"\\x00\\x00\\x02\\x80")
    [0, 32770]
    """
    whole = len(data) - len(data) % 2
    return [v for (v,) in struct.iter_unpack(endian + "H", data[:whole])]


class VersionInfo(NamedTuple):
    """Symbol versioning of one file: per-symbol indexes and what they name."""

    versym: bytes  #: raw ``.gnu.version``: one 16-bit index per dynamic symbol
    endian: str
    defined: Mapping[int, str]  #: from pyelftools' GNUVerDefSection (read lazily)
    needed: Mapping[int, tuple[str, str]]  #: from pyelftools' GNUVerNeedSection (lazily)


class SymbolTable:
    """One symbol table section (``.dynsym`` or ``.symtab``) held as raw bytes.

    Names are decoded lazily; :meth:`find` looks a name up without decoding the
    other names.

    >>> SymbolTable(elf, elf.section(".dynsym")).find("malloc")  # doctest: +SKIP
    """

    def __init__(self, elf: ElfFile, sec: Section, versions: VersionInfo | None = None,
                 label: str | None = None) -> None:
        self.elf = elf
        self.section = sec
        self.label = label or sec.name
        self.elfclass = elf.elfclass
        self.endian = elf.endian
        self.entsize = 24 if self.elfclass == 64 else 16
        self.raw = elf.data(sec)
        strsec = elf.linked(sec)
        self.strtab = elf.data(strsec) if strsec is not None else b""
        self.versions = versions
        self._names: list[int] | None = None
        self._all: list[ElfSymbol] | None = None
        self._finds = 0
        self._by_name: dict[str, list[int]] | None = None
        self._versym_list: list[int] | None = None

    def __len__(self) -> int:
        return len(self.raw) // self.entsize

    def _name_column(self) -> list[int]:
        if self._names is None:
            fmt = self.endian + ("I20x" if self.elfclass == 64 else "I12x")
            whole = len(self.raw) - len(self.raw) % self.entsize
            self._names = [n for (n,) in struct.iter_unpack(fmt, self.raw[:whole])]
        return self._names

    def symbol(self, index: int) -> ElfSymbol:
        """Decode the symbol at ``index``."""
        pos = index * self.entsize
        if self.elfclass == 64:
            n, info, _o, shndx, value, size = struct.unpack_from(
                self.endian + "IBBHQQ", self.raw, pos)
        else:
            n, value, size, info, _o, shndx = struct.unpack_from(
                self.endian + "IIIBBH", self.raw, pos)
        return self._decode([index], [(n, info, shndx, value, size)])[0]

    def _versym(self) -> list[int]:
        if self._versym_list is None:
            vers = self.versions
            self._versym_list = parse_versym(vers.versym, vers.endian) if vers else []
        return self._versym_list

    def _decode(self, indexes: Iterable[int], rows: Iterable[tuple[int, ...]]
                ) -> list[ElfSymbol]:
        """ElfSymbols of ``(st_name, st_info, st_shndx, st_value, st_size)`` rows at ``indexes``.

        One loop for a whole table (``all``) or one entry (``symbol``): the version
        comes from ``.gnu.version`` unless the name carries one (``name@VER``).
        """
        strtab, label, vers = self.strtab, self.label, self.versions
        size = len(strtab)
        versym = self._versym()
        nvers = len(versym)
        out: list[ElfSymbol] = []
        for index, (n, info, shndx, value, sz) in zip(indexes, rows, strict=True):
            full = ""
            if n < size:
                end = strtab.find(b"\0", n)
                full = strtab[n:end if end >= 0 else size].decode("utf-8", "replace")
            name, version, default = split_version(full) if "@" in full else (full, None, None)
            library = None
            if version is None and vers is not None and index < nvers:
                vs = versym[index]
                ndx = vs & 0x7FFF
                if ndx > 1:
                    if ndx in vers.defined:
                        version = vers.defined[ndx]
                    elif ndx in vers.needed:
                        version, library = vers.needed[ndx]
                    default = not vs & VERSYM_HIDDEN
            typ, bind = info & 0xF, info >> 4
            out.append(ElfSymbol(
                name, version, bool(default) if version else False, value, sz,
                TYPES.get(typ) or f"TYPE{typ}", BINDINGS.get(bind) or f"BIND{bind}",
                shndx, label, library))
        return out

    #: After this many look-ups in one table, index every name once (bulk resolution:
    #: a wildcard over hundreds of functions) instead of searching the string table.
    INDEX_AFTER = 16

    def _index(self) -> dict[str, list[int]]:
        if self._by_name is None:
            strtab = self.strtab
            index: dict[str, list[int]] = {}
            size = len(strtab)
            for i, n in enumerate(self._name_column()):
                if 0 < n < size:
                    end = strtab.find(b"\0", n)
                    raw = strtab[n:end if end >= 0 else size]
                    base = raw.split(b"@", 1)[0].decode("utf-8", "replace")
                    index.setdefault(base, []).append(i)
            self._by_name = index
        return self._by_name

    def find(self, name: str) -> list[ElfSymbol]:
        """Every symbol whose name (without version) is ``name``, in table order.

        The name's offsets are found in the string table first (tail-merged
        strings included), then the entries pointing at them; after
        :attr:`INDEX_AFTER` look-ups every name is indexed once instead.

        >>> [s.value for s in table.find("main")]  # doctest: +SKIP
        [4464]
        """
        key = name.encode()
        if not key or b"\0" in key:
            return []
        self._finds += 1
        if self._by_name is not None or self._finds > self.INDEX_AFTER:
            return [sym for sym in map(self.symbol, self._index().get(name, ()))
                    if sym.name == name]
        strtab = self.strtab
        offsets: set[int] = set()
        pos = strtab.find(key)
        while pos >= 0:
            end = pos + len(key)
            if end >= len(strtab) or strtab[end] in (0, 0x40):  # NUL or '@'
                offsets.add(pos)
            pos = strtab.find(key, pos + 1)
        if not offsets:
            return []
        if len(offsets) > 8:
            hits = sorted(i for i, n in enumerate(self._name_column()) if n in offsets)
        else:
            # st_name is the first field of an entry: search the packed offset at entry
            # boundaries in C (bytes.find) instead of looping over every symbol in Python
            raw, step, found = self.raw, self.entsize, set()
            for off in offsets:
                pat = struct.pack(self.endian + "I", off)
                pos = raw.find(pat)
                while pos >= 0:
                    if pos % step == 0:
                        found.add(pos // step)
                    pos = raw.find(pat, pos + 1)
            hits = sorted(found)
        out = []
        for i in hits:
            sym = self.symbol(i)
            if sym.name == name:
                out.append(sym)
        return out

    def all(self) -> list[ElfSymbol]:
        """Every named symbol of the table, decoded once and kept."""
        if self._all is None:
            rows = parse_symbols(self.raw, self.elfclass, self.endian)
            named = [i for i, row in enumerate(rows) if row[0]]
            self._all = self._decode(named, [rows[i] for i in named])
        return self._all


class SymbolIndex:
    """Every symbol of one ELF file: ``.dynsym`` and ``.symtab``.

    >>> idx = SymbolIndex(ElfFile.open(pathlib.Path("/bin/bash")))  # doctest: +SKIP
    >>> idx.lookup("readline")[0].type  # doctest: +SKIP
    'FUNC'

    Raises ``OSError`` when the file cannot be read and
    :class:`~ebpfhooks.errors.NotAnElfError` when a table it needs is damaged.
    """

    def __init__(self, elf: ElfFile, label_prefix: str = "") -> None:
        self.elf = elf
        self.label_prefix = label_prefix
        self._dynsym: SymbolTable | bool | None = False
        self._symtab: SymbolTable | bool | None = False
        self._versions: VersionInfo | bool | None = False

    @property
    def versions(self) -> VersionInfo | None:
        """The file's symbol versioning tables, or None if it has none."""
        if self._versions is False:
            self._versions = self._load_versions()
        assert not isinstance(self._versions, bool)
        return self._versions

    def _load_versions(self) -> VersionInfo | None:
        elf = self.elf
        vs = elf.sections_of_type("SHT_GNU_versym")
        if not vs:
            return None
        return VersionInfo(elf.data(vs[0]), elf.endian, elf.version_definitions(),
                           elf.version_needs())

    def _table(self, sh_type: str, versions: bool) -> SymbolTable | None:
        secs = self.elf.sections_of_type(sh_type)
        if not secs:
            return None
        return SymbolTable(self.elf, secs[0], self.versions if versions else None,
                           self.label_prefix + secs[0].name)

    @property
    def dynsym(self) -> SymbolTable | None:
        """The ``.dynsym`` table, or None."""
        if self._dynsym is False:
            self._dynsym = self._table("SHT_DYNSYM", True)
        assert not isinstance(self._dynsym, bool)
        return self._dynsym

    @property
    def symtab(self) -> SymbolTable | None:
        """The ``.symtab`` table, or None (stripped file)."""
        if self._symtab is False:
            self._symtab = self._table("SHT_SYMTAB", False)
        assert not isinstance(self._symtab, bool)
        return self._symtab

    def tables(self) -> list[SymbolTable]:
        """The tables present, ``.dynsym`` first."""
        return [t for t in (self.dynsym, self.symtab) if t is not None]

    def lookup(self, name: str) -> list[ElfSymbol]:
        """Every symbol called ``name`` (no version in ``name``) in ``.dynsym`` and ``.symtab``.

        ``.dynsym`` first, each table in table order; defined and imported entries.
        """
        out: list[ElfSymbol] = []
        for table in self.tables():
            out.extend(table.find(name))
        return out

    def imported(self, name: str) -> list[ElfSymbol]:
        """The undefined (imported) ``.dynsym`` entries called ``name``."""
        dyn = self.dynsym
        return [s for s in dyn.find(name) if not s.defined] if dyn is not None else []

    def all(self) -> list[ElfSymbol]:
        """Every named symbol of every table."""
        out: list[ElfSymbol] = []
        for t in self.tables():
            out.extend(t.all())
        return out

    def needed(self) -> list[str]:
        """The file's ``DT_NEEDED`` libraries (pyelftools' dynamic section)."""
        return self.elf.needed()


def unique(symbols: Iterable[ElfSymbol]) -> list[ElfSymbol]:
    """Drop exact duplicates (same name, version, value, type), keeping the first seen.

    >>> s = ElfSymbol("f", None, False, 16, 1, "FUNC", "GLOBAL", 1, ".symtab")
    >>> len(unique([s, s]))
    1
    """
    seen: set[tuple[str, str | None, int, str]] = set()
    out = []
    for s in symbols:
        key = (s.name, s.version, s.value, s.type)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out
