"""USDT probes: the ``.note.stapsdt`` notes of an ELF file, parsed and located.

A USDT probe (``DTRACE_PROBE``, ``STAP_PROBE`` of ``<sys/sdt.h>``) is a ``nop`` in the
code plus one note of type ``NT_STAPSDT`` (3), owner ``stapsdt``, whose descriptor is::

    address  location    the nop's virtual address, as linked
    address  base        the .stapsdt.base section's address, as linked (prelink: see below)
    address  semaphore   a 2-byte counter the program tests before it reaches the probe, or 0
    char[]   provider    NUL-terminated
    char[]   name        NUL-terminated
    char[]   arguments   NUL-terminated: "SIZE@OPERAND" per argument, space-separated

(an address is 8 bytes in a 64-bit file, 4 in a 32-bit one, in the file's byte order).
When prelink moved the file after it was linked, ``.stapsdt.base``'s real address
differs from the note's ``base``: the location and the semaphore move by the same amount.

The parsers are pure functions over bytes and text (:func:`parse_stapsdt`,
:func:`parse_usdt_arg`, :func:`locate`), tested on bytes; :func:`usdt_probes` is the
thin reader over a file opened through :mod:`ebpfhooks.elf.loaded` (pyelftools reads
the notes: ``ElfFile.notes(".note.stapsdt")``).

>>> note = parse_stapsdt(bytes.fromhex("f387420000000000a0c58c00000000006e42a80000000000")
...                      + b"python\\0gc__start\\0-4@112(%rsp)\\0")
>>> note.provider, note.name, hex(note.location), note.args
('python', 'gc__start', '0x4287f3', '-4@112(%rsp)')
>>> parse_usdt_arg("-4@112(%rsp)").describe()
'signed 4 bytes in memory at %rsp+112'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from ebpfhooks.errors import NotAnElfError, NotSupportedError

if TYPE_CHECKING:
    import pathlib

    from ebpfhooks.elf.headers import Segment

__all__ = [
    "NT_STAPSDT",
    "REGISTERS",
    "StapsdtNote",
    "UsdtArg",
    "UsdtProbe",
    "locate",
    "parse_stapsdt",
    "parse_usdt_arg",
    "parse_usdt_args",
    "split_usdt_args",
    "usdt_probes",
]

NT_STAPSDT = 3
STAPSDT_OWNER = "stapsdt"
BASE_SECTION = ".stapsdt.base"
NOTE_SECTION = ".note.stapsdt"


class StapsdtNote(NamedTuple):
    """One ``NT_STAPSDT`` note's descriptor, as the file writes it (nothing adjusted)."""

    provider: str
    name: str
    location: int  #: the probe's virtual address, as linked
    base: int  #: the ``.stapsdt.base`` address as linked (0: none recorded)
    semaphore: int  #: the semaphore's virtual address, as linked (0: none)
    args: str  #: the argument specs, space-separated, as the compiler wrote them


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def parse_stapsdt(desc: bytes, *, elfclass: int = 64, little_endian: bool = True,
                  where: str = "a .note.stapsdt note") -> StapsdtNote:
    """Parse one ``NT_STAPSDT`` descriptor (see the module docstring for its layout).

    >>> parse_stapsdt(bytes(24) + b"p\\0n\\0\\0").name
    'n'
    >>> parse_stapsdt(b"short")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ebpfhooks.errors.NotAnElfError: a .note.stapsdt note is damaged: 5 bytes, shorter than ...

    Raises :class:`~ebpfhooks.errors.NotAnElfError` (``where`` names the note) when the
    descriptor is too short or its strings are not NUL-terminated.
    """
    width = 8 if elfclass == 64 else 4
    if len(desc) < 3 * width:
        raise NotAnElfError(f"{where} is damaged: {len(desc)} bytes, shorter than its 3 "
                            f"addresses ({3 * width} bytes)")
    location, base, semaphore = (
        int.from_bytes(desc[i * width:(i + 1) * width], "little" if little_endian else "big")
        for i in range(3))
    strings = desc[3 * width:].split(b"\0")
    # provider, name, args, then what follows the last NUL (padding or nothing)
    if len(strings) < 4 or not strings[0] or not strings[1]:
        raise NotAnElfError(f"{where} is damaged: expected provider, name and arguments as "
                            f"three NUL-terminated strings after the addresses, got "
                            f"{desc[3 * width:][:80]!r}")
    return StapsdtNote(_text(strings[0]), _text(strings[1]), location, base, semaphore,
                       _text(strings[2]))


# --------------------------------------------------------------------------- arguments

def _registers() -> dict[str, tuple[str, int, int]]:
    """x86-64 register names as GCC prints them -> (pt_regs field, shift, width in bytes)."""
    table: dict[str, tuple[str, int, int]] = {}
    for letter in "abcd":
        field = f"{letter}x"
        table.update({f"r{letter}x": (field, 0, 8), f"e{letter}x": (field, 0, 4),
                      f"{letter}x": (field, 0, 2), f"{letter}l": (field, 0, 1),
                      f"{letter}h": (field, 8, 1)})
    for name in ("si", "di", "bp", "sp"):
        table.update({f"r{name}": (name, 0, 8), f"e{name}": (name, 0, 4),
                      name: (name, 0, 2), f"{name}l": (name, 0, 1)})
    for i in range(8, 16):
        field = f"r{i}"
        table.update({field: (field, 0, 8), f"{field}d": (field, 0, 4),
                      f"{field}w": (field, 0, 2), f"{field}b": (field, 0, 1)})
    return table


#: x86-64 general purpose registers as GCC names them in argument specs (``rdi``,
#: ``edi``, ``di``, ``dil``, ``ah``, ``r12d`` ...) -> (the ``struct pt_regs`` field that
#: holds them, the bit shift of the part named, its width in bytes). Nothing else is read.
REGISTERS: dict[str, tuple[str, int, int]] = _registers()

_SIZES = (1, 2, 4, 8)
_ARG = re.compile(r"(?:(?P<size>[+-]?\d+)@)?(?P<op>\S+)")
_INT = r"[+-]?(?:0[xX][0-9a-fA-F]+|\d+)"
_REG_OP = re.compile(r"%(?P<reg>[a-z0-9]+)")
_MEM_OP = re.compile(rf"(?P<off>{_INT})?\(%(?P<reg>[a-z0-9]+)\)")
_CONST_OP = re.compile(rf"\$(?P<value>{_INT})")
_SYMBOLIC = re.compile(r"\$?[A-Za-z_.][\w.$@]*(?:[+-]\d+)?(?:\(%[a-z0-9]+\))?")
_DISP_MAX = 1 << 31  # x86-64 displacements are signed 32-bit
_RIP = "a %rip-relative operand (a global variable, addressed from the code) is not read"


class UsdtArg(NamedTuple):
    """One validated USDT argument: what the generated C reads, and nothing from the file.

    ``where`` is ``"register"`` (the value of ``register``), ``"memory"`` (``size``
    bytes at ``register`` + ``offset``) or ``"constant"`` (``offset`` is the value).
    ``field`` is the ``struct pt_regs`` member holding ``register``, ``shift`` the bit
    position of the part named (8 for ``%ah``).

    >>> parse_usdt_arg("8@%rbx")
    UsdtArg(size=8, signed=False, where='register', register='rbx', field='bx', shift=0, offset=0)
    """

    size: int
    signed: bool
    where: str
    register: str | None
    field: str | None
    shift: int
    offset: int

    def spec(self) -> str:
        """The argument in the note's syntax, rebuilt from the validated values.

        >>> parse_usdt_arg("-8@-16(%rbp)").spec()
        '-8@-16(%rbp)'
        """
        size = f"{-self.size if self.signed else self.size}@"
        if self.where == "constant":
            return f"{size}${self.offset}"
        if self.where == "register":
            return f"{size}%{self.register}"
        return f"{size}{self.offset or ''}(%{self.register})"

    def describe(self) -> str:
        """In words: ``'signed 4 bytes in memory at %rsp+112'``."""
        what = f"{'signed' if self.signed else 'unsigned'} {self.size} byte" + (
            "s" if self.size > 1 else "")
        if self.where == "constant":
            return f"{what}, the constant {self.offset}"
        if self.where == "register":
            return f"{what} in register %{self.register}"
        sign = "+" if self.offset >= 0 else "-"
        return f"{what} in memory at %{self.register}{sign}{abs(self.offset)}"


def split_usdt_args(text: str) -> list[str]:
    """The argument specs of a note, one per argument (they are space-separated).

    >>> split_usdt_args("8@%rbp 8@%r12 -4@%eax")
    ['8@%rbp', '8@%r12', '-4@%eax']
    """
    return text.split()


def _unreadable(text: str, why: str) -> NotSupportedError:
    shown = text if len(text) <= 60 else text[:57] + "..."
    return NotSupportedError(
        f"USDT argument {shown!r}: {why}; ebpfhooks reads x86-64 registers (%rdi, %eax, "
        "%r12d ...), memory at a register plus an integer offset (-8(%rbp)) and integer "
        "constants ($5)",
        missing="a reader for this argument operand")


def _register(text: str, name: str) -> tuple[str, int, int]:
    got = REGISTERS.get(name)
    if got is None:
        why = (_RIP if name == "rip" else f"%{name} is not an x86-64 general purpose "
               "register")
        raise _unreadable(text, why)
    return got


def parse_usdt_arg(text: str) -> UsdtArg:
    """Parse and validate one x86-64 argument spec as GCC writes it.

    ``[-]SIZE@OPERAND``: SIZE is 1, 2, 4 or 8 bytes, ``-`` when signed; OPERAND is
    ``%REG``, ``OFFSET(%REG)`` or ``$CONSTANT`` (integers in decimal or ``0x`` hex).

    >>> parse_usdt_arg("-4@%edi").describe()
    'signed 4 bytes in register %edi'
    >>> parse_usdt_arg("4@$5").describe()
    'unsigned 4 bytes, the constant 5'
    >>> parse_usdt_arg("8@foo(%rip)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ebpfhooks.errors.NotSupportedError: USDT argument '8@foo(%rip)': ...

    Raises :class:`~ebpfhooks.errors.NotSupportedError` naming the argument for any
    other operand (a symbol, an indexed address, an unknown register) or size.
    """
    m = _ARG.fullmatch(text)
    if m is None:
        raise _unreadable(text, "not SIZE@OPERAND")
    if m.group("size") is None:
        raise _unreadable(text, "no SIZE@ before the operand (the byte count is needed)")
    size = int(m.group("size"))
    if abs(size) not in _SIZES:
        raise _unreadable(text, f"size {size} is not 1, 2, 4 or 8 bytes (- when signed)")
    signed, size = size < 0, abs(size)
    op = m.group("op")
    if (r := _REG_OP.fullmatch(op)) is not None:
        field, shift, _ = _register(text, r.group("reg"))
        return UsdtArg(size, signed, "register", r.group("reg"), field, shift, 0)
    if (r := _MEM_OP.fullmatch(op)) is not None:
        field, shift, width = _register(text, r.group("reg"))
        if width != 8:
            raise _unreadable(text, f"an address is held in a 64-bit register, not "
                              f"%{r.group('reg')}")
        off = int(r.group("off") or "0", 0)
        if not -_DISP_MAX <= off < _DISP_MAX:
            raise _unreadable(text, f"offset {off} is out of the signed 32-bit range")
        return UsdtArg(size, signed, "memory", r.group("reg"), field, 0, off)
    if (r := _CONST_OP.fullmatch(op)) is not None:
        value = int(r.group("value"), 0)
        if not -(1 << 63) <= value < 1 << 64:
            raise _unreadable(text, f"constant {value} does not fit in 64 bits")
        return UsdtArg(size, signed, "constant", None, None, 0, value)
    if op.endswith("(%rip)"):
        raise _unreadable(text, _RIP)
    if "," in op:
        raise _unreadable(text, "indexed addresses (base, index, scale) are not read")
    if _SYMBOLIC.fullmatch(op):
        raise _unreadable(text, "a symbolic operand (a symbol's address or offset)")
    raise _unreadable(text, f"operand {op!r} is not %REG, OFFSET(%REG) or $CONSTANT")


def parse_usdt_args(text: str) -> tuple[UsdtArg, ...]:
    """Every argument of a note's spec text (:func:`parse_usdt_arg` each).

    >>> [a.spec() for a in parse_usdt_args("8@%rbp 8@%r12 -4@%eax")]
    ['8@%rbp', '8@%r12', '-4@%eax']
    """
    return tuple(parse_usdt_arg(a) for a in split_usdt_args(text))


# --------------------------------------------------------------------------- locating

class UsdtProbe(NamedTuple):
    """One location of a USDT probe in a file: what the kernel gets, and the note's facts.

    ``vaddr`` and ``semaphore`` are the note's addresses moved by the prelink
    adjustment (``adjustment``, 0 for a file prelink never moved); ``file_offset`` is
    the uprobe's offset and ``semaphore_offset`` the semaphore's file offset (the
    kernel's ``ref_ctr_offset``; 0: no semaphore).
    """

    path: pathlib.Path
    provider: str
    name: str
    vaddr: int
    file_offset: int
    semaphore: int
    semaphore_offset: int
    adjustment: int
    args: str

    @property
    def qualified(self) -> str:
        """``PROVIDER:NAME``."""
        return f"{self.provider}:{self.name}"


def _load_segment_offset(segments: Sequence[Segment], vaddr: int) -> int | None:
    for seg in segments:
        if seg.type == "PT_LOAD" and seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
            return vaddr - seg.vaddr + seg.offset
    return None


def locate(note: StapsdtNote, base_section: int | None, segments: Sequence[Segment],
           *, where: str) -> tuple[int, int, int, int, int]:
    """(vaddr, file offset, semaphore vaddr, semaphore file offset, adjustment) of a note.

    ``base_section`` is the address of the file's ``.stapsdt.base`` section (None when
    it has none). The location must be in an executable ``PT_LOAD`` segment, the
    semaphore in the file-backed part of a ``PT_LOAD`` segment (the kernel counts it
    through the file's mapping).

    >>> from ebpfhooks.elf.headers import Segment
    >>> segs = [Segment("PT_LOAD", 5, 0x1000, 0x401000, 0x1000, 0x1000),
    ...         Segment("PT_LOAD", 6, 0x2000, 0x603000, 0x100, 0x200)]
    >>> note = StapsdtNote("p", "n", 0x401010, 0x600000, 0x603008, "")
    >>> [hex(v) for v in locate(note, 0x600000, segs, where="test")]
    ['0x401010', '0x1010', '0x603008', '0x2008', '0x0']

    Raises :class:`~ebpfhooks.errors.NotAnElfError` naming ``where`` when either is not.
    """
    adjustment = 0
    if base_section is not None and note.base:
        adjustment = base_section - note.base
    vaddr = note.location + adjustment
    file_offset = None
    for seg in segments:
        if seg.executable and seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
            file_offset = vaddr - seg.vaddr + seg.offset
            break
    if file_offset is None:
        raise NotAnElfError(f"{where}: its location {vaddr:#x} is outside every executable "
                            "segment of the file")
    sema = sema_offset = 0
    if note.semaphore:
        sema = note.semaphore + adjustment
        found = _load_segment_offset(segments, sema)
        if found is None:
            raise NotAnElfError(f"{where}: its semaphore {sema:#x} is outside the "
                                "file-backed part of every loaded segment")
        sema_offset = found
    return vaddr, file_offset, sema, sema_offset, adjustment


def usdt_probes(path: pathlib.Path) -> list[UsdtProbe]:
    """Every USDT probe location of the ELF file ``path``, in note order.

    A probe compiled in several places (an inlined function) has one entry per place.
    Notes of other types (older SDT versions) are left out.

    >>> [p.qualified for p in usdt_probes(pathlib.Path("/usr/bin/python3.11"))][:2]
    ... # doctest: +SKIP
    ['python:audit', 'python:gc__done']

    Raises the file errors of :func:`ebpfhooks.elf.resolve.resolve_symbol`
    (:class:`~ebpfhooks.errors.NotAnElfError` also for a damaged note).
    """
    from ebpfhooks.elf.loaded import _load

    loaded = _load(path)
    elf = loaded.elf
    cached = _PROBES.get(id(loaded))
    if cached is not None and cached[0] is loaded:
        return cached[1]
    base_sec = elf.section(BASE_SECTION)
    base = base_sec.addr if base_sec is not None else None
    out: list[UsdtProbe] = []
    for i, note in enumerate(elf.notes(NOTE_SECTION)):
        if note.owner != STAPSDT_OWNER or note.type != NT_STAPSDT:
            continue
        where = f"{path}: USDT note {i} (file offset {note.offset:#x})"
        sdt = parse_stapsdt(note.desc, elfclass=elf.elfclass,
                            little_endian=elf.little_endian, where=where)
        vaddr, off, sema, sema_off, adj = locate(
            sdt, base, elf.segments, where=f"{where}, {sdt.provider}:{sdt.name}")
        out.append(UsdtProbe(path, sdt.provider, sdt.name, vaddr, off, sema, sema_off, adj,
                             sdt.args))
    _PROBES.clear()  # one file's probes at a time: the loaded-file cache keeps the rest
    _PROBES[id(loaded)] = (loaded, out)
    return out


_PROBES: dict[int, tuple[object, list[UsdtProbe]]] = {}
