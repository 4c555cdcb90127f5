"""Tests of ebpfhooks.elf.ldcache: both cache formats built as bytes, and the real cache."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from ebpfhooks.elf.ldcache import (
    LdCacheEntry,
    find_in_ld_so_cache,
    library_name_matches,
    lookup_library,
    parse_ld_so_cache,
    read_ld_so_cache,
    read_ld_so_cache_bytes,
)

X86_64 = 0x0303
I386 = 0x0003


def _strings(pairs: list[tuple[str, str]]) -> tuple[bytes, list[tuple[int, int]]]:
    blob = b""
    offs = []
    for key, value in pairs:
        k = len(blob)
        blob += key.encode() + b"\0"
        v = len(blob)
        blob += value.encode() + b"\0"
        offs.append((k, v))
    return blob, offs


def new_format(entries: list[tuple[int, str, str]]) -> bytes:
    """A glibc-ld.so.cache1.1 image: string offsets from the start of the header."""
    n = len(entries)
    base = 48 + 24 * n
    blob, offs = _strings([(k, v) for _, k, v in entries])
    out = b"glibc-ld.so.cache1.1" + struct.pack("<IIB3xI3I", n, len(blob), 2, 0, 0, 0, 0)
    assert len(out) == 48
    for (flags, _, _), (k, v) in zip(entries, offs, strict=True):
        out += struct.pack("<iIIIQ", flags, base + k, base + v, 0, 0)
    return out + blob


def old_format(entries: list[tuple[int, str, str]], embed_new: bool = False) -> bytes:
    """An ld.so-1.7.0 image, optionally followed by the new format (8-byte aligned)."""
    n = len(entries)
    out = b"ld.so-1.7.0\0" + struct.pack("<I", n)
    if embed_new:
        # glibc's compat layout: old entries point into the new part's strings; we only
        # need the new part to be found after the old table
        for flags, _, _ in entries:
            out += struct.pack("<iII", flags, 0, 0)
        out += b"\0" * (-len(out) % 8)
        return out + new_format(entries)
    blob, offs = _strings([(k, v) for _, k, v in entries])
    for (flags, _, _), (k, v) in zip(entries, offs, strict=True):
        out += struct.pack("<iII", flags, k, v)
    return out + blob


SAMPLE = [
    (I386, "libc.so.6", "/lib/i386-linux-gnu/libc.so.6"),
    (X86_64, "libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
    (X86_64, "libcrypt.so.1", "/lib/x86_64-linux-gnu/libcrypt.so.1"),
    (X86_64, "libcap.so.2", "/lib/x86_64-linux-gnu/libcap.so.2"),
    (X86_64, "libm.so.6", "/lib/x86_64-linux-gnu/libm.so.6"),
]


@pytest.mark.parametrize("image", [new_format(SAMPLE), old_format(SAMPLE),
                                   old_format(SAMPLE, embed_new=True)],
                         ids=["new", "old", "old+new"])
def test_parse_formats(image: bytes) -> None:
    entries = parse_ld_so_cache(image)
    assert [(e.flags, e.name, e.path) for e in entries] == SAMPLE


def test_lookup_prefers_this_architecture() -> None:
    entries = parse_ld_so_cache(new_format(SAMPLE))
    for name in ("c", "libc", "libc.so.6", "libc.so"):
        hits = lookup_library(entries, name, machine=62)
        assert [h.path for h in hits] == ["/lib/x86_64-linux-gnu/libc.so.6",
                                          "/lib/i386-linux-gnu/libc.so.6"], name
    assert lookup_library(entries, "c", machine=3)[0].path == "/lib/i386-linux-gnu/libc.so.6"
    assert [h.name for h in lookup_library(entries, "crypt", 62)] == ["libcrypt.so.1"]
    assert lookup_library(entries, "nosuch", 62) == []


def test_entry_arch_names() -> None:
    assert LdCacheEntry("a", "/a", X86_64).arch == "x86-64"
    assert LdCacheEntry("a", "/a", I386).arch == ""


@pytest.mark.parametrize(("soname", "name", "expected"), [
    ("libc.so.6", "c", True),
    ("libc.so.6", "libc", True),
    ("libc.so.6", "libc.so.6", True),
    ("libc.so.6", "libc.so", True),
    ("libcap.so.2", "c", False),
    ("libcrypt.so.1", "libc", False),
    ("libc-2.31.so", "c", True),
    ("libc.so.6", "libc.so.7", False),
])
def test_library_name_matches(soname: str, name: str, expected: bool) -> None:
    assert library_name_matches(soname, name) is expected


def test_error_unknown_format() -> None:
    with pytest.raises(ValueError) as e:
        parse_ld_so_cache(b"garbage!")
    assert str(e.value) == ("ld.so.cache: unknown format (starts with b'garbage!'), expected "
                            "b'glibc-ld.so.cache1.1' or b'ld.so-1.7.0'; regenerate it with "
                            "ldconfig")


def test_error_truncated() -> None:
    image = new_format(SAMPLE)
    with pytest.raises(ValueError, match="truncated"):
        parse_ld_so_cache(image[:60])


@pytest.mark.skipif(not shutil.which("ldconfig") and not shutil.which("/sbin/ldconfig"),
                    reason="no ldconfig")
def test_real_cache_matches_ldconfig_p() -> None:
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    out = subprocess.run([ldconfig, "-p"], check=True, capture_output=True, text=True).stdout
    expected = []
    for line in out.splitlines()[1:]:
        left, arrow, path = line.strip().partition(" => ")
        if not arrow:
            continue  # "Cache generated by: ..." trailer
        name = left.split(" (")[0]
        expected.append((name, path))
    entries = read_ld_so_cache()
    assert [(e.name, e.path) for e in entries] == expected
    assert read_ld_so_cache() is entries  # cached by device, inode and mtime


@pytest.mark.parametrize("image", [new_format(SAMPLE), old_format(SAMPLE),
                                   old_format(SAMPLE, embed_new=True)],
                         ids=["new", "old", "old+new"])
@pytest.mark.parametrize("name", ["c", "libc", "libc.so.6", "crypt", "m", "nosuch"])
def test_fast_lookup_equals_full_parse(image: bytes, name: str) -> None:
    for machine in (62, 3):
        assert find_in_ld_so_cache(image, name, machine) == lookup_library(
            parse_ld_so_cache(image), name, machine)


def test_fast_lookup_on_real_cache() -> None:
    data = read_ld_so_cache_bytes()
    if not data:
        pytest.skip("no /etc/ld.so.cache")
    entries = parse_ld_so_cache(data)
    names = {e.name.split(".so")[0] for e in entries} | {e.name for e in entries}
    for name in sorted(names):
        assert find_in_ld_so_cache(data, name) == lookup_library(entries, name), name
