"""What an ELF file's headers say, as plain values: machines, sections, segments, notes.

:data:`EM_NAMES` names the ``e_machine`` numbers, :func:`host_machine` gives this
machine's; :class:`Section`, :class:`Segment` and :class:`Note` are the headers and notes
:class:`~ebpfhooks.elf.elffile.ElfFile` reads (no pyelftools here)::

    >>> Segment("PT_LOAD", 5, 0x1000, 0x401000, 0x200, 0x200).executable
    True
    >>> EM_NAMES[62]
    'x86-64'
"""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = ["EM_NAMES", "PF_X", "Note", "Section", "Segment", "host_machine"]

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
