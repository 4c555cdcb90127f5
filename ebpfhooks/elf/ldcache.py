"""Parse ``/etc/ld.so.cache`` (both formats) and look library names up in it.

Formats (glibc ``sysdeps/generic/dl-cache.h``, all little/native endian):

- old: ``"ld.so-1.7.0"`` (11 bytes, padded to 12), ``u32 nlibs``, then ``nlibs``
  entries ``(i32 flags, u32 key, u32 value)``; string offsets count from the
  end of the entries. The new format may follow, aligned to 8 bytes.
- new: ``"glibc-ld.so.cache"`` + ``"1.1"`` (20 bytes), ``u32 nlibs``,
  ``u32 len_strings``, ``u8 flags``, 3 pad, ``u32 extension_offset``,
  ``u32 unused[3]`` (48 bytes), then ``nlibs`` entries ``(i32 flags, u32 key,
  u32 value, u32 osversion, u64 hwcap)``; string offsets count from the start
  of the new header.

``flags & 0xff`` is the library type (3: ELF libc6), ``flags & 0xff00`` the
architecture requirement (0x0300: x86-64).

>>> [e.path for e in lookup_library(parse_ld_so_cache(data), "c")]  # doctest: +SKIP
['/lib/x86_64-linux-gnu/libc.so.6']
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

from ebpfhooks.elf.headers import host_machine
from ebpfhooks.errors import LdCacheFormatError

__all__ = [
    "ARCH_FLAGS",
    "LdCacheEntry",
    "find_in_ld_so_cache",
    "host_flags",
    "library_name_matches",
    "lookup_library",
    "parse_ld_so_cache",
    "read_ld_so_cache",
    "read_ld_so_cache_bytes",
]

OLD_MAGIC = b"ld.so-1.7.0"
NEW_MAGIC = b"glibc-ld.so.cache1.1"

#: Architecture requirement bits (``flags & 0xff00``) and what ldconfig -p prints for them.
ARCH_FLAGS: dict[int, str] = {
    0x0000: "",
    0x0100: "64bit",  # sparc
    0x0200: "IA-64",
    0x0300: "x86-64",
    0x0400: "64bit",  # s390
    0x0500: "64bit",  # powerpc
    0x0600: "N32",
    0x0700: "64bit",  # mips n64
    0x0800: "x32",
    0x0900: "hard-float",
    0x0A00: "AArch64",
    0x0B00: "soft-float",
    0x0C00: "nan2008",
    0x0E00: "double-float",  # riscv / loongarch variants share the table
}

_HOST_REQUIRED = {62: 0x0300, 183: 0x0A00, 21: 0x0500, 22: 0x0400, 3: 0x0000}


class LdCacheEntry(NamedTuple):
    """One library of the cache: its soname (key), path (value) and flags."""

    name: str
    path: str
    flags: int
    hwcap: int = 0

    @property
    def arch(self) -> str:
        """The architecture tag as ``ldconfig -p`` shows it ('x86-64', '' for none)."""
        return ARCH_FLAGS.get(self.flags & 0xFF00, f"0x{self.flags & 0xFF00:x}")


def _cstr(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    if end < 0:
        end = len(data)
    return data[offset:end].decode("utf-8", "surrogateescape")


def _parse_new(data: bytes, base: int) -> list[LdCacheEntry]:
    if len(data) < base + 48:
        raise LdCacheFormatError("ld.so.cache: new-format header is truncated")
    (nlibs,) = struct.unpack_from("<I", data, base + 20)
    out = []
    for i in range(nlibs):
        pos = base + 48 + 24 * i
        if pos + 24 > len(data):
            raise LdCacheFormatError(f"ld.so.cache: entry {i} of {nlibs} is truncated")
        flags, key, value, _osv, hwcap = struct.unpack_from("<iIIIQ", data, pos)
        out.append(LdCacheEntry(_cstr(data, base + key), _cstr(data, base + value), flags, hwcap))
    return out


def parse_ld_so_cache(data: bytes) -> list[LdCacheEntry]:
    """Parse the bytes of an ld.so.cache file into its entries, in file order.

    Accepts the new format, the old format, and the old format with the new one
    embedded after it (then the new entries are returned, as glibc uses them).

    >>> parse_ld_so_cache(b"glibc-ld.so.cache1.1" + bytes(28))
    []
    >>> parse_ld_so_cache(b"garbage")
    Traceback (most recent call last):
    ...
    ebpfhooks.errors.LdCacheFormatError: ld.so.cache: unknown format (starts with ...

    Raises :class:`~ebpfhooks.errors.LdCacheFormatError` (a ``ValueError``) on an
    unknown magic or truncated data.
    """
    if data.startswith(NEW_MAGIC):
        return _parse_new(data, 0)
    if data.startswith(OLD_MAGIC):
        if len(data) < 16:
            raise LdCacheFormatError("ld.so.cache: old-format header is truncated")
        (nlibs,) = struct.unpack_from("<I", data, 12)
        strings = 16 + 12 * nlibs
        new_at = (strings + 7) & ~7
        if data[new_at:new_at + len(NEW_MAGIC)] == NEW_MAGIC:
            return _parse_new(data, new_at)
        if strings > len(data):
            raise LdCacheFormatError(
                f"ld.so.cache: {nlibs} old-format entries do not fit in the file")
        out = []
        for i in range(nlibs):
            flags, key, value = struct.unpack_from("<iII", data, 16 + 12 * i)
            out.append(LdCacheEntry(_cstr(data, strings + key), _cstr(data, strings + value),
                                    flags))
        return out
    raise LdCacheFormatError(
        f"ld.so.cache: unknown format (starts with {data[:20]!r}), expected {NEW_MAGIC!r} "
        f"or {OLD_MAGIC!r}; regenerate it with ldconfig"
    )


def host_flags(machine: int | None = None) -> int:
    """The flags ldconfig gives libraries of ``machine`` (default: this host).

    >>> hex(host_flags(62))
    '0x303'
    """
    m = host_machine() if machine is None else machine
    return 0x03 | _HOST_REQUIRED.get(m, 0)


def library_name_matches(soname: str, name: str) -> bool:
    """Whether cache key ``soname`` answers a library ``name`` as bcc or bpftrace spell it.

    ``'c'`` (bcc) and ``'libc'`` (bpftrace) match ``libc.so.6``, ``'libc.so.6'``
    matches itself; ``'c'`` does not match ``libcrypt.so.1``.

    >>> library_name_matches("libc.so.6", "c"), library_name_matches("libcap.so.2", "c")
    (True, False)
    """
    if soname == name:
        return True
    stem = name if name.startswith("lib") else "lib" + name
    if ".so" in name and name.startswith("lib"):
        # a full or partial soname: 'libc.so' matches 'libc.so.6'
        return soname.startswith(name + ".")
    return soname.startswith(stem + ".so") or soname.startswith(stem + "-")


def lookup_library(entries: list[LdCacheEntry], name: str,
                   machine: int | None = None) -> list[LdCacheEntry]:
    """Cache entries for library ``name``, entries of this machine first, cache order kept.

    >>> lookup_library([LdCacheEntry("libc.so.6", "/lib/libc.so.6", 0x303)], "libc", 62)
    [LdCacheEntry(name='libc.so.6', path='/lib/libc.so.6', flags=771, hwcap=0)]

    Raises nothing; an empty list means the cache does not know the name.
    """
    want = host_flags(machine)
    hits = [e for e in entries if library_name_matches(e.name, name)]
    return [e for e in hits if e.flags == want] + [e for e in hits if e.flags != want]


def find_in_ld_so_cache(data: bytes, name: str,
                        machine: int | None = None) -> list[LdCacheEntry]:
    """Look ``name`` up in raw cache bytes, decoding only the entries whose key may match.

    Same answer as ``lookup_library(parse_ld_so_cache(data), name, machine)``,
    several times faster on a full cache (no string is decoded for the
    hundreds of other libraries).

    >>> find_in_ld_so_cache(data, "c")[0].name  # doctest: +SKIP
    'libc.so.6'

    Raises :class:`~ebpfhooks.errors.LdCacheFormatError` (a ``ValueError``) on an
    unknown format or truncated data.
    """
    if data.startswith(OLD_MAGIC) and len(data) >= 16:
        (nold,) = struct.unpack_from("<I", data, 12)
        new_at = (16 + 12 * nold + 7) & ~7
        if data[new_at:new_at + len(NEW_MAGIC)] != NEW_MAGIC:
            return lookup_library(parse_ld_so_cache(data), name, machine)
    elif data.startswith(NEW_MAGIC):
        new_at = 0
    else:
        return lookup_library(parse_ld_so_cache(data), name, machine)
    if len(data) < new_at + 48:
        raise LdCacheFormatError("ld.so.cache: new-format header is truncated")
    (nlibs,) = struct.unpack_from("<I", data, new_at + 20)
    start = new_at + 48
    end = start + 24 * nlibs
    if end > len(data):
        raise LdCacheFormatError(f"ld.so.cache: {nlibs} entries do not fit in the file")
    prefix = (name if name.startswith("lib") else "lib" + name).encode()
    exact = name.encode() + b"\0"
    hits = []
    for flags, key, value, _osv, hwcap in struct.iter_unpack("<iIIIQ", data[start:end]):
        if data.startswith(prefix, new_at + key) or data.startswith(exact, new_at + key):
            soname = _cstr(data, new_at + key)
            if library_name_matches(soname, name):
                hits.append(LdCacheEntry(soname, _cstr(data, new_at + value), flags, hwcap))
    want = host_flags(machine)
    return [e for e in hits if e.flags == want] + [e for e in hits if e.flags != want]


_raw: dict[str, tuple[tuple[int, int, int], bytes]] = {}


def read_ld_so_cache_bytes(path: str = "/etc/ld.so.cache") -> bytes:
    """The bytes of ``path``, cached by (device, inode, mtime); b"" if it does not exist.

    >>> read_ld_so_cache_bytes()[:20]  # doctest: +SKIP
    b'glibc-ld.so.cache1.1'
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return b""
    key = (st.st_dev, st.st_ino, st.st_mtime_ns)
    hit = _raw.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    with open(path, "rb") as f:
        data = f.read()
    _raw[path] = (key, data)
    return data


_cache: dict[str, tuple[tuple[int, int, int], list[LdCacheEntry]]] = {}


def read_ld_so_cache(path: str = "/etc/ld.so.cache") -> list[LdCacheEntry]:
    """Read and parse ``path``, cached by (device, inode, mtime); [] if it does not exist.

    >>> read_ld_so_cache()[0].path  # doctest: +SKIP
    '/lib/x86_64-linux-gnu/libzstd.so.1'

    Raises ``ValueError`` when the file is not an ld.so.cache.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    key = (st.st_dev, st.st_ino, st.st_mtime_ns)
    hit = _cache.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    with open(path, "rb") as f:
        entries = parse_ld_so_cache(f.read())
    _cache[path] = (key, entries)
    return entries
