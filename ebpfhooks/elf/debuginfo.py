"""Separate debug symbols: build-id, ``.gnu_debuglink`` and MiniDebugInfo.

A stripped binary keeps only ``.dynsym``; its static functions are in a
separate debug file, found (as gdb does) under the debug root by build-id
(``/usr/lib/debug/.build-id/ab/cdef....debug``) or by the name and CRC32 in
``.gnu_debuglink`` (next to the binary, in ``.debug/`` beside it, or under the
debug root with the binary's directory). A MiniDebugInfo section
(``.gnu_debugdata``, an xz-compressed ELF holding a ``.symtab``) is used last.

>>> find_debug_file(pathlib.Path("/usr/bin/python3.11"), elf)  # doctest: +SKIP
PosixPath('/usr/lib/debug/.build-id/3a/9c....debug')
"""

from __future__ import annotations

import lzma
import os
import pathlib
import struct
import zlib

from ebpfhooks.elf.elffile import PT_NOTE, ElfFile

__all__ = [
    "DEFAULT_DEBUG_ROOT",
    "build_id",
    "debuglink",
    "file_crc32",
    "find_debug_file",
    "minidebuginfo",
    "parse_debuglink",
    "parse_notes",
]

DEFAULT_DEBUG_ROOT = pathlib.Path("/usr/lib/debug")
NT_GNU_BUILD_ID = 3
SHT_NOTE = 7


def parse_notes(data: bytes, endian: str = "<") -> list[tuple[str, int, bytes]]:
    """Parse an ELF note section/segment into ``(owner, type, descriptor)`` tuples.

    >>> parse_notes(b"\\x04\\0\\0\\0\\x02\\0\\0\\0\\x03\\0\\0\\0GNU\\0\\xab\\xcd\\0\\0")
    [('GNU', 3, b'\\xab\\xcd')]

    Raises nothing: a damaged note ends the list.
    """
    out = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(endian + "III", data, pos)
        pos += 12
        name = data[pos:pos + namesz].rstrip(b"\0").decode("ascii", "replace")
        pos += (namesz + 3) & ~3
        desc = data[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        if len(desc) < descsz:
            break
        out.append((name, ntype, desc))
    return out


def build_id(elf: ElfFile) -> str | None:
    """The GNU build-id of ``elf`` as lowercase hex, or None.

    >>> build_id(ElfFile.open(pathlib.Path("/bin/true")))  # doctest: +SKIP
    '3b0c...'
    """
    endian = elf.header.endian
    blobs = [elf.data(s) for s in elf.sections if s.type == SHT_NOTE]
    if not blobs:
        blobs = [elf.read(p.offset, p.filesz) for p in elf.segments if p.type == PT_NOTE]
    for blob in blobs:
        for owner, ntype, desc in parse_notes(blob, endian):
            if owner == "GNU" and ntype == NT_GNU_BUILD_ID and desc:
                return desc.hex()
    return None


def parse_debuglink(data: bytes, endian: str = "<") -> tuple[str, int] | None:
    """Parse ``.gnu_debuglink`` contents: file name (NUL, padded to 4) then a CRC32.

    >>> parse_debuglink(b"x.debug\\0" + (0x1234).to_bytes(4, "little"))
    ('x.debug', 4660)
    """
    end = data.find(b"\0")
    if end <= 0:
        return None
    pos = (end + 4) & ~3
    if pos + 4 > len(data):
        return None
    (crc,) = struct.unpack_from(endian + "I", data, pos)
    return data[:end].decode("utf-8", "surrogateescape"), crc


def debuglink(elf: ElfFile) -> tuple[str, int] | None:
    """The ``(file name, crc32)`` of ``elf``'s ``.gnu_debuglink``, or None."""
    sec = elf.section(".gnu_debuglink")
    return parse_debuglink(elf.data(sec), elf.header.endian) if sec is not None else None


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
    sec = elf.section(".gnu_debugdata")
    if sec is None:
        return None
    try:
        data = lzma.decompress(elf.data(sec))
        return ElfFile.from_bytes(data, f"{elf.name}[.gnu_debugdata]")
    except (lzma.LZMAError, ValueError):
        return None
