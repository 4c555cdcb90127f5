"""ELF headers, sections and segments: pure parsers over bytes plus a lazy file reader.

Only what uprobe resolution needs is parsed: the file header, the section and
program header tables, and raw section contents. Symbol tables live in
:mod:`ebpfhooks.elf.symbols`.

>>> hdr = parse_elf_header(open("/bin/true", "rb").read(64))  # doctest: +SKIP
>>> hdr.machine, hdr.type
(62, 3)
"""

from __future__ import annotations

import os
import pathlib
import platform
import struct
from collections.abc import Callable
from typing import NamedTuple

from ebpfhooks.errors import NotAnElfError

__all__ = [
    "EM_NAMES",
    "ET_DYN",
    "ET_EXEC",
    "ElfFile",
    "ElfHeader",
    "Section",
    "Segment",
    "host_machine",
    "parse_elf_header",
    "parse_program_headers",
    "parse_section_headers",
]

ET_EXEC = 2
ET_DYN = 3
PT_LOAD = 1
PT_NOTE = 4
PF_X = 1
SHT_NOBITS = 8
SHN_XINDEX = 0xFFFF

#: e_machine values of the machines Linux runs uprobes on (names as readelf prints them).
EM_NAMES: dict[int, str] = {
    3: "i386",
    8: "MIPS",
    20: "PowerPC",
    21: "PowerPC64",
    22: "s390",
    40: "ARM",
    62: "x86-64",
    183: "AArch64",
    243: "RISC-V",
    258: "LoongArch",
}

_UNAME_TO_EM: dict[str, int] = {
    "x86_64": 62,
    "amd64": 62,
    "aarch64": 183,
    "arm64": 183,
    "i386": 3,
    "i686": 3,
    "ppc64le": 21,
    "ppc64": 21,
    "s390x": 22,
    "riscv64": 243,
    "loongarch64": 258,
}


def host_machine() -> int:
    """Return the ELF ``e_machine`` number of the machine we run on (0 if unknown).

    >>> host_machine()  # doctest: +SKIP
    62
    """
    machine = platform.machine().lower()
    if machine.startswith("armv"):
        return 40
    return _UNAME_TO_EM.get(machine, 0)


class ElfHeader(NamedTuple):
    """The fields of an ELF file header that resolution needs."""

    elfclass: int  # 32 or 64
    little_endian: bool
    type: int  # ET_EXEC, ET_DYN, ...
    machine: int
    phoff: int
    shoff: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int

    @property
    def endian(self) -> str:
        """The struct byte-order character for this file ('<' or '>')."""
        return "<" if self.little_endian else ">"


class Section(NamedTuple):
    """One section header, with its name resolved."""

    number: int  #: section index
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


class Segment(NamedTuple):
    """One program header (segment)."""

    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int

    @property
    def executable(self) -> bool:
        """True for a ``PT_LOAD`` segment mapped executable (``PF_X``)."""
        return self.type == PT_LOAD and bool(self.flags & PF_X)


def parse_elf_header(data: bytes, what: str = "<bytes>") -> ElfHeader:
    """Parse the ELF file header at the start of ``data``.

    >>> parse_elf_header(b"not an elf", "x.txt")
    Traceback (most recent call last):
    ...
    ebpfhooks.errors.NotAnElfError: x.txt is not an ELF file ...

    Raises :class:`~ebpfhooks.errors.NotAnElfError` when the magic, class or
    byte order is wrong or the header is cut short; ``what`` names the input in
    the message.
    """
    if len(data) < 16 or data[:4] != b"\x7fELF":
        head = data[:4]
        hint = " (it is a script)" if head[:2] == b"#!" else ""
        raise NotAnElfError(
            f"{what} is not an ELF file{hint}: it starts with {head!r}, expected b'\\x7fELF'; "
            "give the path of a compiled executable or shared library"
        )
    elfclass = {1: 32, 2: 64}.get(data[4])
    order = {1: "<", 2: ">"}.get(data[5])
    if elfclass is None or order is None:
        raise NotAnElfError(
            f"{what} has an invalid ELF identification (class {data[4]}, data {data[5]}); "
            "the file is damaged or not an ELF file"
        )
    fmt = order + "HHIQQQIHHHHHH" if elfclass == 64 else order + "HHIIIIIHHHHHH"
    need = 16 + struct.calcsize(fmt)
    if len(data) < need:
        raise NotAnElfError(f"{what} is truncated: the ELF header needs {need} bytes")
    (etype, machine, _ver, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
     shentsize, shnum, shstrndx) = struct.unpack_from(fmt, data, 16)
    return ElfHeader(elfclass, order == "<", etype, machine, phoff, shoff, phentsize, phnum,
                     shentsize, shnum, shstrndx)


def parse_section_headers(hdr: ElfHeader, table: bytes) -> list[tuple[int, ...]]:
    """Unpack the raw section header table into tuples (names not resolved).

    Each tuple is ``(name, type, flags, addr, offset, size, link, info, entsize)``.

    >>> parse_section_headers(hdr, raw)  # doctest: +SKIP

    Raises :class:`~ebpfhooks.errors.NotAnElfError` when the table is short.
    """
    if hdr.elfclass == 64:
        fmt, size = hdr.endian + "IIQQQQIIQQ", 64
    else:
        fmt, size = hdr.endian + "IIIIIIIIII", 40
    out: list[tuple[int, ...]] = []
    step = hdr.shentsize or size
    if step < size or len(table) < step * (len(table) // step):
        raise NotAnElfError("section header table has a bad entry size")
    for pos in range(0, len(table) - size + 1, step):
        name, typ, flags, addr, off, sz, link, info, _align, entsize = struct.unpack_from(
            fmt, table, pos)
        out.append((name, typ, flags, addr, off, sz, link, info, entsize))
    return out


def parse_program_headers(hdr: ElfHeader, table: bytes) -> list[Segment]:
    """Unpack the program header table into :class:`Segment` values.

    >>> parse_program_headers(hdr, raw)  # doctest: +SKIP

    Raises nothing: a short table yields fewer segments.
    """
    out: list[Segment] = []
    if hdr.elfclass == 64:
        fmt, size = hdr.endian + "IIQQQQQQ", 56
        step = hdr.phentsize or size
        for pos in range(0, len(table) - size + 1, step):
            ptype, flags, off, vaddr, _paddr, filesz, memsz, _align = struct.unpack_from(
                fmt, table, pos)
            out.append(Segment(ptype, flags, off, vaddr, filesz, memsz))
    else:
        fmt, size = hdr.endian + "IIIIIIII", 32
        step = hdr.phentsize or size
        for pos in range(0, len(table) - size + 1, step):
            ptype, off, vaddr, _paddr, filesz, memsz, flags, _align = struct.unpack_from(
                fmt, table, pos)
            out.append(Segment(ptype, flags, off, vaddr, filesz, memsz))
    return out


def _cstr(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    if end < 0:
        end = len(data)
    return data[offset:end].decode("utf-8", "replace")


Reader = Callable[[int, int], bytes]


#: Files up to this size are read whole on first use: one open and read instead of one
#: per header, table and string section (a dozen for a symbol lookup).
WHOLE_FILE_MAX = 256 * 1024


def _file_reader(path: pathlib.Path, file_size: int) -> Reader:
    if file_size <= WHOLE_FILE_MAX:
        whole: list[bytes] = []

        def read_whole(offset: int, size: int) -> bytes:
            if not whole:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    whole.append(os.pread(fd, file_size, 0))
                finally:
                    os.close(fd)
            return whole[0][offset:offset + size] if size > 0 else b""

        return read_whole

    def read(offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    return read


class ElfFile:
    """A lazily read ELF file (or in-memory ELF image): header, sections, segments.

    >>> elf = ElfFile.open(pathlib.Path("/bin/true"))  # doctest: +SKIP
    >>> elf.section(".dynsym").size > 0
    True

    Raises :class:`~ebpfhooks.errors.NotAnElfError` on open if the header is not ELF;
    ``OSError`` from reading the file.
    """

    def __init__(self, name: str, read: Reader, file_size: int) -> None:
        self.name = name
        self.file_size = file_size

        def bounded(offset: int, size: int) -> bytes:
            # header fields are untrusted: never read (or allocate) past the end of the file
            if offset < 0 or size <= 0 or offset >= file_size:
                return b""
            return read(offset, min(size, file_size - offset))

        self._read: Reader = bounded
        self.header = parse_elf_header(read(0, 64), name)
        self._sections: list[Section] | None = None
        self._segments: list[Segment] | None = None
        self._by_name: dict[str, Section] = {}
        self._data: dict[int, bytes] = {}

    @classmethod
    def open(cls, path: pathlib.Path) -> ElfFile:
        """Open ``path`` for lazy reading (no section is read yet).

        >>> ElfFile.open(pathlib.Path("/bin/true")).header.type  # doctest: +SKIP
        3

        Raises ``OSError`` and :class:`~ebpfhooks.errors.NotAnElfError`.
        """
        size = path.stat().st_size
        return cls(str(path), _file_reader(path, size), size)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<memory>") -> ElfFile:
        """Wrap an ELF image held in memory (for example decompressed MiniDebugInfo).

        >>> ElfFile.from_bytes(b"junk")
        Traceback (most recent call last):
        ...
        ebpfhooks.errors.NotAnElfError: <memory> is not an ELF file ...

        Raises :class:`~ebpfhooks.errors.NotAnElfError`.
        """
        return cls(name, lambda off, size: data[off:off + size], len(data))

    def read(self, offset: int, size: int) -> bytes:
        """Read ``size`` bytes at ``offset`` of the file (short at the end of file)."""
        return self._read(offset, size)

    @property
    def sections(self) -> list[Section]:
        """Every section header, index order, names resolved."""
        if self._sections is None:
            self._sections = self._load_sections()
        return self._sections

    def _load_sections(self) -> list[Section]:
        hdr = self.header
        if not hdr.shoff:
            return []
        entsize = hdr.shentsize or (64 if hdr.elfclass == 64 else 40)
        shnum, shstrndx = hdr.shnum, hdr.shstrndx
        if shnum == 0 or shstrndx == SHN_XINDEX:
            first = parse_section_headers(hdr, self._read(hdr.shoff, entsize))
            if first:
                if shnum == 0:
                    shnum = first[0][5]
                if shstrndx == SHN_XINDEX:
                    shstrndx = first[0][6]
        if shnum <= 0 or shnum > 1_000_000:
            return []
        raw = parse_section_headers(hdr, self._read(hdr.shoff, entsize * shnum))
        names = b""
        if 0 < shstrndx < len(raw):
            names = self._read(raw[shstrndx][4], raw[shstrndx][5])
        out: list[Section] = []
        for i, (name, typ, flags, addr, off, sz, link, info, entsz) in enumerate(raw):
            sname = _cstr(names, name) if name < len(names) else ""
            out.append(Section(i, sname, typ, flags, addr, off, sz, link, info, entsz))
        return out

    @property
    def segments(self) -> list[Segment]:
        """Every program header, in file order."""
        if self._segments is None:
            hdr = self.header
            size = hdr.phentsize * hdr.phnum
            self._segments = (parse_program_headers(hdr, self._read(hdr.phoff, size))
                              if hdr.phoff and size else [])
        return self._segments

    def section(self, name: str) -> Section | None:
        """The first section called ``name``, or ``None``."""
        if not self._by_name:
            for sec in self.sections:
                self._by_name.setdefault(sec.name, sec)
        return self._by_name.get(name)

    def sections_of_type(self, sh_type: int) -> list[Section]:
        """Every section whose ``sh_type`` is ``sh_type``."""
        return [s for s in self.sections if s.type == sh_type]

    def data(self, sec: Section) -> bytes:
        """The contents of ``sec`` (empty for ``SHT_NOBITS``), read once and kept."""
        if sec.type == SHT_NOBITS:
            return b""
        got = self._data.get(sec.number)
        if got is None:
            got = self._read(sec.offset, sec.size)
            self._data[sec.number] = got
        return got

    def vaddr_to_offset(self, vaddr: int) -> int | None:
        """Convert an ELF virtual address to a file offset through executable PT_LOAD segments.

        ``offset = vaddr - p_vaddr + p_offset`` for the executable segment that
        contains ``vaddr``; ``None`` if no executable segment does.

        >>> ElfFile.open(pathlib.Path("/bin/true")).vaddr_to_offset(0x2000)  # doctest: +SKIP
        8192
        """
        for seg in self.segments:
            if seg.executable and seg.vaddr <= vaddr < seg.vaddr + max(seg.filesz, seg.memsz):
                return vaddr - seg.vaddr + seg.offset
        return None

    def offset_to_vaddr(self, offset: int) -> int | None:
        """Convert a file offset inside an executable PT_LOAD segment to its virtual address.

        >>> ElfFile.open(pathlib.Path("/bin/true")).offset_to_vaddr(0x2000)  # doctest: +SKIP
        8192
        """
        for seg in self.segments:
            if seg.executable and seg.offset <= offset < seg.offset + seg.filesz:
                return offset - seg.offset + seg.vaddr
        return None

    def executable_ranges(self) -> list[tuple[int, int]]:
        """The ``(start, end)`` virtual address ranges of the executable segments."""
        return [(s.vaddr, s.vaddr + s.memsz) for s in self.segments if s.executable]
