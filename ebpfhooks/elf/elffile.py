"""ELF files read through pyelftools: headers, sections, segments, notes, versions, tags.

:class:`ElfFile` wraps pyelftools' ``ELFFile`` and is the only place in ebpfhooks that
imports pyelftools, and only when a file is opened (``import ebpfhooks`` does not pay for
it). The file header, the section and program headers, section contents, notes, the
``.gnu_debuglink`` record, the GNU version definitions and needs and the dynamic tags
all come from pyelftools; the symbol tables' entries are decoded in bulk from the
section bytes pyelftools returns (:mod:`ebpfhooks.elf.symbols`), because building one
pyelftools ``Symbol`` per entry takes ~1 s for a table of 45k symbols.

Every parse error pyelftools raises on a damaged file (``ELFError``, construct errors,
``ValueError`` ...) comes out as :class:`~ebpfhooks.errors.NotAnElfError` naming the
file; ``OSError`` from reading it passes through.

>>> elf = ElfFile.open(pathlib.Path("/bin/true"))  # doctest: +SKIP
>>> elf.machine, elf.type, elf.section(".dynsym").type  # doctest: +SKIP
(62, 'ET_DYN', 'SHT_DYNSYM')

The plain values it returns (:class:`Section`, :class:`Segment`, :class:`Note`,
:data:`EM_NAMES`, :func:`host_machine`) are :mod:`ebpfhooks.elf.headers`'s, and the
stream, lazy mappings and error translation it reads with :mod:`ebpfhooks.elf.reading`'s;
every name is importable from here as before.
"""

from __future__ import annotations

import io
import itertools
import pathlib
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, cast

from ebpfhooks.elf.headers import EM_NAMES, Note, Section, Segment, host_machine
from ebpfhooks.elf.headers import PF_X as PF_X
from ebpfhooks.elf.reading import (
    _check_magic,
    _Incremental,
    _parsing,
    _PreadStream,
    _pyelftools,
    _tolerated,
)
from ebpfhooks.errors import EbpfHooksError, NotAnElfError

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

__all__ = [
    "EM_NAMES",
    "ElfFile",
    "Note",
    "Section",
    "Segment",
    "host_machine",
]

#: Files up to this size are read whole on open: one read instead of one per header,
#: table and string section (a dozen for a symbol lookup).
WHOLE_FILE_MAX = 256 * 1024


class ElfFile:
    """An ELF file (or in-memory ELF image) read lazily through pyelftools.

    >>> elf = ElfFile.open(pathlib.Path("/bin/true"))  # doctest: +SKIP
    >>> elf.section(".dynsym").size > 0  # doctest: +SKIP
    True

    Raises :class:`~ebpfhooks.errors.NotAnElfError` on open if the file is not ELF or
    its header is damaged (and from any method that finds a damaged table); ``OSError``
    from reading the file.
    """

    def __init__(self, name: str, stream: _PreadStream | io.BytesIO, file_size: int) -> None:
        self.name = name
        self.file_size = file_size
        stream.seek(0)
        _check_magic(stream.read(16), name)
        elf_file, machines = _pyelftools()
        with _parsing(name, "ELF header"):
            self._elf: ELFFile = elf_file(cast("IO[bytes]", stream))
            machine = self._elf["e_machine"]
            self.machine: int = machine if isinstance(machine, int) else machines.get(machine, 0)
            self.type: str | int = self._elf["e_type"]
        self.elfclass: int = self._elf.elfclass
        self.little_endian: bool = self._elf.little_endian
        self._headers: list[Any] | None = None
        self._sections: list[Section] | None = None
        self._segments: list[Segment] | None = None
        self._by_name: dict[str, Section] = {}
        self._data: dict[int, bytes] = {}
        self._verdef: _Incremental[str] | None = None
        self._verneed: _Incremental[tuple[str, str]] | None = None

    @classmethod
    def open(cls, path: pathlib.Path) -> ElfFile:
        """Open ``path``: the header is parsed now, everything else on first use.

        A file up to :data:`WHOLE_FILE_MAX` bytes is read whole; a larger one is read
        where pyelftools asks, and no descriptor stays open.

        >>> ElfFile.open(pathlib.Path("/bin/true")).type  # doctest: +SKIP
        'ET_DYN'

        Raises ``OSError`` and :class:`~ebpfhooks.errors.NotAnElfError`.
        """
        size = path.stat().st_size
        if size <= WHOLE_FILE_MAX:
            with open(path, "rb") as f:
                data = f.read()
            return cls(str(path), io.BytesIO(data), len(data))
        return cls(str(path), _PreadStream(path, size), size)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<memory>") -> ElfFile:
        """Wrap an ELF image held in memory (for example decompressed MiniDebugInfo).

        >>> ElfFile.from_bytes(b"junk")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ebpfhooks.errors.NotAnElfError: <memory> is not an ELF file: it starts with b'junk'...

        Raises :class:`~ebpfhooks.errors.NotAnElfError`.
        """
        return cls(name, io.BytesIO(data), len(data))

    @property
    def endian(self) -> str:
        """The struct byte-order character of this file ('<' or '>')."""
        return "<" if self.little_endian else ">"

    # ------------------------------------------------------------------ sections

    @property
    def sections(self) -> list[Section]:
        """Every section header, index order, names resolved."""
        if self._sections is None:
            with _parsing(self.name, "section header table"):
                self._sections = self._load_sections()
        return self._sections

    def _load_sections(self) -> list[Section]:
        from elftools.common.utils import struct_parse

        elf = self._elf
        shoff, entsize = elf["e_shoff"], elf["e_shentsize"]
        if not shoff:
            return []
        shdr = elf.structs.Elf_Shdr
        if entsize < shdr.sizeof():
            raise NotAnElfError(f"{self.name} is a damaged ELF file: section header entry "
                                f"size {entsize} is below {shdr.sizeof()}")
        count = elf.num_sections()
        if count <= 0:
            return []
        if shoff + count * entsize > self.file_size:
            raise NotAnElfError(
                f"{self.name} is a damaged ELF file: its {count} section headers at "
                f"offset {shoff} end past the end of the file ({self.file_size} bytes)")
        # the headers through pyelftools' own struct (not elf.iter_sections(), which also
        # builds every hash table and dynamic section: ~70 ms for libLLVM), from the
        # table read in one piece (construct reads a field at a time)
        table = self._read(shoff, count * entsize)
        headers = [struct_parse(shdr, table, stream_pos=i * entsize) for i in range(count)]
        self._headers = headers
        names = b""
        strndx = elf.get_shstrndx()
        if 0 < strndx < count:
            names = self._section_bytes(strndx)
        out = []
        for i, h in enumerate(headers):
            n = h["sh_name"]
            end = names.find(b"\0", n) if n < len(names) else -1
            name = names[n:end].decode("utf-8", "replace") if end >= 0 else ""
            out.append(Section(i, name, h["sh_type"], h["sh_flags"], h["sh_addr"],
                               h["sh_offset"], h["sh_size"], h["sh_link"], h["sh_info"],
                               h["sh_entsize"]))
        return out

    def _read(self, offset: int, size: int) -> io.BytesIO:
        """``size`` bytes of the file at ``offset``, as a stream for pyelftools' structs."""
        stream = self._elf.stream
        stream.seek(offset)
        return io.BytesIO(stream.read(size))

    def _pyelftools_section(self, number: int) -> Any:
        """A plain pyelftools ``Section`` for the header at ``number`` (no subclass)."""
        from elftools.elf.sections import Section as PeSection

        assert self._headers is not None
        return PeSection(self._headers[number], "", self._elf)

    def _section_bytes(self, number: int) -> bytes:
        assert self._headers is not None
        header = self._headers[number]
        if header["sh_type"] in ("SHT_NOBITS", "SHT_NULL"):
            return b""
        # read through pyelftools: it also inflates SHF_COMPRESSED sections
        data: bytes = self._pyelftools_section(number).data()
        return data

    def section(self, name: str) -> Section | None:
        """The first section called ``name``, or ``None``."""
        if not self._by_name:
            for sec in self.sections:
                self._by_name.setdefault(sec.name, sec)
        return self._by_name.get(name)

    def sections_of_type(self, sh_type: str) -> list[Section]:
        """Every section whose type is ``sh_type`` (pyelftools' name: ``'SHT_DYNSYM'``)."""
        return [s for s in self.sections if s.type == sh_type]

    def data(self, sec: Section) -> bytes:
        """The contents of ``sec`` as pyelftools reads them (empty for ``SHT_NOBITS``).

        Read once and kept; a compressed section (``SHF_COMPRESSED``) is inflated.
        """
        got = self._data.get(sec.number)
        if got is None:
            with _parsing(self.name, f"section {sec.name or sec.number}"):
                got = self._section_bytes(sec.number)
            self._data[sec.number] = got
        return got

    def linked(self, sec: Section) -> Section | None:
        """The section ``sec.sh_link`` names (a symbol table's string table), or None."""
        return self.sections[sec.link] if 0 < sec.link < len(self.sections) else None

    # ------------------------------------------------------------------ segments

    @property
    def segments(self) -> list[Segment]:
        """Every program header, in file order."""
        if self._segments is None:
            with _parsing(self.name, "program header table"):
                self._segments = self._load_segments()
        return self._segments

    def _load_segments(self) -> list[Segment]:
        from elftools.common.utils import struct_parse

        elf = self._elf
        phoff, entsize = elf["e_phoff"], elf["e_phentsize"]
        if not phoff:
            return []
        phdr = elf.structs.Elf_Phdr
        if entsize < phdr.sizeof():
            raise NotAnElfError(f"{self.name} is a damaged ELF file: program header entry "
                                f"size {entsize} is below {phdr.sizeof()}")
        count = elf.num_segments()
        # a short table yields the segments that are there
        count = max(0, min(count, (self.file_size - phoff) // entsize))
        table = self._read(phoff, count * entsize)
        out = []
        for i in range(count):
            h = struct_parse(phdr, table, stream_pos=i * entsize)
            out.append(Segment(h["p_type"], h["p_flags"], h["p_offset"], h["p_vaddr"],
                               h["p_filesz"], h["p_memsz"]))
        return out

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

    # ------------------------------------------------------------------ notes

    def notes(self, section: str | None = None) -> list[Note]:
        """The notes of the note section called ``section``, or of every note section.

        With ``section=None`` and no note section (a file whose section headers were
        stripped), the ``PT_NOTE`` segments are read instead. pyelftools parses the
        note headers; a damaged note ends the list. A USDT reader gets its probes'
        descriptors with ``notes(".note.stapsdt")``.

        >>> [n.owner for n in ElfFile.open(pathlib.Path("/bin/true")).notes()]  # doctest: +SKIP
        ['GNU', 'GNU', 'GNU']
        """
        from elftools.elf.enums import ENUM_CORE_NOTE_N_TYPE, ENUM_NOTE_N_TYPE
        from elftools.elf.notes import iter_notes

        types = ENUM_CORE_NOTE_N_TYPE if self.type == "ET_CORE" else ENUM_NOTE_N_TYPE
        places: list[tuple[str, int, int]] = [
            (s.name, s.offset, s.size) for s in self.sections_of_type("SHT_NOTE")
            if section is None or s.name == section]
        if section is None and not places:
            places = [("PT_NOTE", p.offset, p.filesz) for p in self.segments
                      if p.type == "PT_NOTE"]
        out: list[Note] = []
        for where, offset, size in places:
            size = max(0, min(size, self.file_size - offset))
            try:
                for note in iter_notes(self._elf, offset, size):
                    ntype = note["n_type"]
                    number = ntype if isinstance(ntype, int) else types.get(ntype, -1)
                    out.append(Note(note["n_name"] or "", number, bytes(note["n_descdata"]),
                                    where, note["n_offset"]))
            except (EbpfHooksError, OSError):
                raise
            except Exception:  # a damaged note (pyelftools' error) ends that note list
                continue
        return out

    # ------------------------------------------------------------------ links, versions

    def debuglink(self) -> tuple[str, int] | None:
        """The ``(file name, CRC32)`` of the ``.gnu_debuglink`` section, or None.

        Parsed with pyelftools' ``Gnu_debuglink`` struct; a damaged record gives None.

        >>> ElfFile.open(pathlib.Path("/usr/bin/ls")).debuglink()  # doctest: +SKIP
        ('9c...debug', 3241934)
        """
        sec = self.section(".gnu_debuglink")
        if sec is None:
            return None
        try:
            link = self._elf.structs.Gnu_debuglink.parse(self.data(sec))
        except (EbpfHooksError, OSError):
            raise
        except Exception:
            return None
        name = bytes(link["filename"]).decode("utf-8", "surrogateescape")
        return (name, int(link["checksum"])) if name else None

    def _versions_section(self, sec: Section) -> Any:
        from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
        from elftools.elf.sections import StringTableSection

        assert self._headers is not None
        strtab = self.linked(sec)
        if strtab is None:
            return None
        table = StringTableSection(self._headers[strtab.number], strtab.name, self._elf)
        kind = GNUVerDefSection if sec.type == "SHT_GNU_verdef" else GNUVerNeedSection
        return kind(self._headers[sec.number], sec.name, self._elf, table)

    def version_definitions(self) -> Mapping[int, str]:
        """``{version index: name}`` of the versions this file defines (``.gnu.version_d``).

        The base entry (the file's own name, ``VER_FLG_BASE``) is left out. Read with
        pyelftools' ``GNUVerDefSection``, lazily: an index is looked up by walking the
        chain only as far as it (libc defines ~40 versions; ``malloc``'s is the first).
        A damaged chain stops the walk.

        >>> ElfFile.open(pathlib.Path("/lib/x86_64-linux-gnu/libc.so.6")
        ...              ).version_definitions()[2]  # doctest: +SKIP
        'GLIBC_2.2.5'
        """
        if self._verdef is None:
            self._verdef = _Incremental(self._iter_verdef())
        return self._verdef

    def _iter_verdef(self) -> Iterator[tuple[int, str]]:
        for sec in self.sections_of_type("SHT_GNU_verdef"):
            with _tolerated():
                table = self._versions_section(sec)
                if table is None:
                    continue
                # at most as many entries as fit in the section: a damaged count or
                # next-pointer loop cannot spin
                for version, aux in itertools.islice(table.iter_versions(), sec.size // 20):
                    if version["vd_flags"] & 1:
                        continue
                    first = next(aux, None)
                    if first is not None:
                        yield version["vd_ndx"] & 0x7FFF, first.name

    def version_needs(self) -> Mapping[int, tuple[str, str]]:
        """``{version index: (version name, library file)}`` from ``.gnu.version_r``.

        Read with pyelftools' ``GNUVerNeedSection``, lazily like
        :meth:`version_definitions`; a damaged chain stops the walk.
        """
        if self._verneed is None:
            self._verneed = _Incremental(self._iter_verneed())
        return self._verneed

    def _iter_verneed(self) -> Iterator[tuple[int, tuple[str, str]]]:
        for sec in self.sections_of_type("SHT_GNU_verneed"):
            with _tolerated():
                table = self._versions_section(sec)
                if table is None:
                    continue
                for need, auxes in itertools.islice(table.iter_versions(), sec.size // 16):
                    for aux in itertools.islice(auxes, sec.size // 16):
                        yield aux["vna_other"] & 0x7FFF, (aux.name, need.name)

    def needed(self) -> list[str]:
        """The file's ``DT_NEEDED`` libraries, from pyelftools' ``DynamicSection``.

        >>> ElfFile.open(pathlib.Path("/bin/true")).needed()  # doctest: +SKIP
        ['libc.so.6']
        """
        from elftools.elf.dynamic import DynamicSection

        out: list[str] = []
        for sec in self.sections_of_type("SHT_DYNAMIC"):
            with _tolerated():
                assert self._headers is not None
                dyn = DynamicSection(self._headers[sec.number], sec.name, self._elf)
                limit = sec.size // max(sec.entsize, 8) + 1
                for tag in itertools.islice(dyn.iter_tags(), limit):
                    if tag["d_tag"] == "DT_NEEDED":
                        out.append(str(getattr(tag, "needed", "")))
        return out
