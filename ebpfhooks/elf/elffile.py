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
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import pathlib
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from ebpfhooks.errors import EbpfHooksError, NotAnElfError, NotSupportedError

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

PF_X = 1
_V = TypeVar("_V")


def host_machine() -> int:
    """Return the ELF ``e_machine`` number of the machine we run on (0 if unknown).

    >>> host_machine()  # doctest: +SKIP
    62
    """
    machine = os.uname().machine.lower()
    if machine.startswith("armv"):
        return 40
    return _UNAME_TO_EM.get(machine, 0)


class Section(NamedTuple):
    """One section header as pyelftools parsed it, with its name.

    ``type`` is pyelftools' name for ``sh_type`` (``'SHT_SYMTAB'``), or the number
    when pyelftools has no name for it.
    """

    number: int  #: section index
    name: str
    type: str | int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


class Segment(NamedTuple):
    """One program header (segment) as pyelftools parsed it."""

    type: str | int  #: ``'PT_LOAD'``, ``'PT_NOTE'``, ... (a number when unnamed)
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int

    @property
    def executable(self) -> bool:
        """True for a ``PT_LOAD`` segment mapped executable (``PF_X``)."""
        return self.type == "PT_LOAD" and bool(self.flags & PF_X)


class Note(NamedTuple):
    """One ELF note: owner (``n_name``), type number, and the raw descriptor bytes.

    ``where`` is the note section's name, or ``PT_NOTE`` for a note read from a
    segment; ``offset`` is the note's file offset. Readers of particular notes (the
    build-id here; ``.note.stapsdt`` USDT probes) decode ``desc`` themselves.
    """

    owner: str
    type: int
    desc: bytes
    where: str
    offset: int


#: Files up to this size are read whole on open: one read instead of one per header,
#: table and string section (a dozen for a symbol lookup).
WHOLE_FILE_MAX = 256 * 1024


class _PreadStream:
    """A read-only, seekable view of a file that holds no descriptor between reads.

    pyelftools reads headers a few bytes at a time: reads up to :attr:`BLOCK` bytes are
    served from a few cached blocks, larger ones (symbol tables) are read directly.
    The file is opened for each read that misses, so a cache of loaded files keeps no
    descriptor open.
    """

    _SHIFT = 16
    BLOCK = 1 << _SHIFT
    _MASK = BLOCK - 1
    KEEP = 4

    def __init__(self, path: pathlib.Path, size: int) -> None:
        self._path = path
        self._size = size
        self._pos = 0
        self._blocks: dict[int, bytes] = {}

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _pread(self, offset: int, size: int) -> bytes:
        fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def _block(self, index: int) -> bytes:
        got = self._blocks.get(index)
        if got is None:
            got = self._pread(index * self.BLOCK, self.BLOCK)
            if len(self._blocks) >= self.KEEP:
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[index] = got
        return got

    def read(self, size: int | None = -1) -> bytes:
        pos = self._pos
        if size is not None and size >= 0 and (pos & self._MASK) + size <= self.BLOCK:
            # the usual call: a header field inside one block
            block = self._blocks.get(pos >> self._SHIFT)
            if block is None:
                block = self._block(pos >> self._SHIFT)
            start = pos & self._MASK
            data = block[start:start + size]
            self._pos = pos + len(data)
            return data
        # header fields are untrusted: never read (or allocate) past the end of the file
        end = self._size if size is None or size < 0 else min(self._size, pos + size)
        if end <= pos:
            return b""
        if end - pos > self.BLOCK:
            data = self._pread(pos, end - pos)
        else:
            first, last = pos >> self._SHIFT, (end - 1) >> self._SHIFT
            data = b"".join(self._block(i) for i in range(first, last + 1))
            start = pos - first * self.BLOCK
            data = data[start:start + end - pos]
        self._pos = pos + len(data)
        return data


@contextlib.contextmanager
def _parsing(name: str, what: str) -> Iterator[None]:
    """Turn pyelftools' errors on a damaged file into NotAnElfError naming ``name``."""
    try:
        yield
    except (EbpfHooksError, OSError):
        raise
    except Exception as err:  # pyelftools raises ELFError, construct and builtin errors
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise NotAnElfError(
            f"{name} is a damaged ELF file: its {what} does not parse "
            f"({type(err).__name__}{': ' + detail if detail else ''}); "
            "the file is truncated or corrupt: give an intact executable or library"
        ) from err


@contextlib.contextmanager
def _tolerated() -> Iterator[None]:
    """Skip an optional table pyelftools cannot parse (damaged); I/O errors pass."""
    try:
        yield
    except OSError:
        raise
    except Exception:  # pyelftools raises ELFError, construct and builtin errors
        return


class _Incremental(Mapping[int, _V]):
    """A read-only mapping filled from ``(key, value)`` pairs only as far as a lookup needs.

    The first value of a key wins. An error while producing pairs ends them.
    """

    def __init__(self, pairs: Iterator[tuple[int, _V]]) -> None:
        self._got: dict[int, _V] = {}
        self._more: Iterator[tuple[int, _V]] | None = pairs

    def _until(self, key: int | None) -> None:
        while self._more is not None and (key is None or key not in self._got):
            try:
                k, v = next(self._more)
            except StopIteration:
                self._more = None
            except OSError:
                raise
            except Exception:  # pyelftools on a damaged table: what was read stays
                self._more = None
            else:
                self._got.setdefault(k, v)

    def __getitem__(self, key: int) -> _V:
        self._until(key)
        return self._got[key]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int):
            return False
        self._until(key)
        return key in self._got

    def __iter__(self) -> Iterator[int]:
        self._until(None)
        return iter(self._got)

    def __len__(self) -> int:
        self._until(None)
        return len(self._got)


def _pyelftools() -> tuple[type[ELFFile], Mapping[str, int]]:
    """pyelftools' ``ELFFile`` and its ``e_machine`` names, imported on first use."""
    try:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.enums import ENUM_E_MACHINE
    except ImportError as err:
        raise NotSupportedError(
            f"ebpfhooks reads uprobe targets with pyelftools, which cannot be imported "
            f"({err}); install it: pip install 'pyelftools>=0.32'",
            missing="pyelftools") from err
    return ELFFile, ENUM_E_MACHINE


def _check_magic(head: bytes, name: str) -> None:
    if len(head) < 4 or head[:4] != b"\x7fELF":
        hint = " (it is a script)" if head[:2] == b"#!" else ""
        raise NotAnElfError(
            f"{name} is not an ELF file{hint}: it starts with {head[:4]!r}, expected "
            "b'\\x7fELF'; give the path of a compiled executable or shared library"
        )


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


