"""Separate debug symbols: build-id, ``.gnu_debuglink`` and MiniDebugInfo.

A stripped binary keeps only ``.dynsym``; its static functions are in a
separate debug file, found (as gdb does) under the debug root by build-id
(``/usr/lib/debug/.build-id/ab/cdef....debug``) or by the name and CRC32 in
``.gnu_debuglink`` (next to the binary, in ``.debug/`` beside it, or under the
debug root with the binary's directory). A MiniDebugInfo section
(``.gnu_debugdata``, an xz-compressed ELF holding a ``.symtab``) is used last: its
decompressed bytes are opened with pyelftools like any file.

The notes (build-id), the ``.gnu_debuglink`` record and the sections are read by
pyelftools through :class:`~ebpfhooks.elf.elffile.ElfFile`.

>>> find_debug_file(pathlib.Path("/usr/bin/python3.11"), elf)  # doctest: +SKIP
PosixPath('/usr/lib/debug/.build-id/3a/9c....debug')
"""

from __future__ import annotations

import os
import pathlib
import zlib

from ebpfhooks.elf.elffile import ElfFile

__all__ = [
    "DEFAULT_DEBUG_ROOT",
    "build_id",
    "debuglink",
    "file_crc32",
    "find_debug_file",
    "minidebuginfo",
]

DEFAULT_DEBUG_ROOT = pathlib.Path("/usr/lib/debug")
NT_GNU_BUILD_ID = 3


def build_id(elf: ElfFile) -> str | None:
    """The GNU build-id of ``elf`` as lowercase hex, or None.

    >>> build_id(ElfFile.open(pathlib.Path("/bin/true")))  # doctest: +SKIP
    '3b0c...'
    """
    for note in elf.notes():
        if note.owner == "GNU" and note.type == NT_GNU_BUILD_ID and note.desc:
            return note.desc.hex()
    return None


def debuglink(elf: ElfFile) -> tuple[str, int] | None:
    """The ``(file name, crc32)`` of ``elf``'s ``.gnu_debuglink``, or None.

    >>> debuglink(ElfFile.open(pathlib.Path("/usr/bin/ls")))  # doctest: +SKIP
    ('9c...debug', 3241934)
    """
    return elf.debuglink()


def file_crc32(path: pathlib.Path) -> int:
    """The CRC32 (zlib/gdb polynomial) of a whole file, read in 1 MiB blocks."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def _open_if_elf(path: pathlib.Path) -> ElfFile | None:
    try:
        if path.is_file():
            return ElfFile.open(path)
    except (OSError, ValueError):
        return None
    return None


def find_debug_file(path: pathlib.Path, elf: ElfFile,
                    debug_root: pathlib.Path = DEFAULT_DEBUG_ROOT) -> pathlib.Path | None:
    """Find the separate debug file of ``path`` (opened as ``elf``), checked, or None.

    Build-id first (the candidate's build-id must match), then
    ``.gnu_debuglink`` (the candidate's build-id must match if both have one,
    else its CRC32 must match the link's).

    >>> find_debug_file(p, ElfFile.open(p), pathlib.Path("/tmp/dbg"))  # doctest: +SKIP

    Raises nothing: unreadable candidates are skipped.
    """
    bid = build_id(elf)
    if bid and len(bid) > 2:
        cand = debug_root / ".build-id" / bid[:2] / (bid[2:] + ".debug")
        got = _open_if_elf(cand)
        if got is not None and build_id(got) == bid:
            return cand
    link = debuglink(elf)
    if link is None:
        return None
    name, crc = link
    real = pathlib.Path(os.path.realpath(path))
    where = real.parent
    for cand in (where / name, where / ".debug" / name,
                 debug_root / where.relative_to(where.anchor) / name):
        if cand == real:
            continue
        got = _open_if_elf(cand)
        if got is None:
            continue
        other = build_id(got)
        if bid and other:
            if other == bid:
                return cand
            continue
        try:
            if file_crc32(cand) == crc:
                return cand
        except OSError:
            continue
    return None


def minidebuginfo(elf: ElfFile) -> ElfFile | None:
    """The ELF image inside ``.gnu_debugdata`` (MiniDebugInfo), decompressed, or None.

    >>> minidebuginfo(ElfFile.open(pathlib.Path("/usr/bin/ls")))  # doctest: +SKIP

    Raises nothing: a section that does not decompress to ELF gives None.
    """
    import lzma

    sec = elf.section(".gnu_debugdata")
    if sec is None:
        return None
    try:
        data = lzma.decompress(elf.data(sec))
        return ElfFile.from_bytes(data, f"{elf.name}[.gnu_debugdata]")
    except (lzma.LZMAError, ValueError):  # NotAnElfError is a ValueError
        return None
