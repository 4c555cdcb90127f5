"""Tests of ebpfhooks.elf.symbols and elffile: parsers on bytes, hash lookups on real files."""

from __future__ import annotations

import pathlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebpfhooks.elf.elffile import ElfFile, parse_elf_header
from ebpfhooks.elf.symbols import (
    SymbolIndex,
    gnu_hash,
    parse_needed,
    parse_symbols,
    parse_verdef,
    parse_verneed,
    parse_versym,
    split_version,
    sysv_hash,
)
from ebpfhooks.errors import NotAnElfError

LIBC = pathlib.Path("/lib/x86_64-linux-gnu/libc.so.6")


def test_hashes_known_values() -> None:
    # values from the ELF gABI (SysV) and glibc's dl_new_hash (GNU) for these names
    assert gnu_hash(b"") == 5381
    assert gnu_hash(b"printf") == 0x156B2BB8
    assert sysv_hash(b"printf") == 0x077905A6
    assert sysv_hash(b"") == 0


@given(st.binary(max_size=64))
def test_hashes_are_32_bit(name: bytes) -> None:
    assert 0 <= gnu_hash(name) < 2**32
    assert 0 <= sysv_hash(name) < 2**28


@pytest.mark.parametrize(("text", "expected"), [
    ("malloc", ("malloc", None, None)),
    ("malloc@@GLIBC_2.2.5", ("malloc", "GLIBC_2.2.5", True)),
    ("memcpy@GLIBC_2.2.5", ("memcpy", "GLIBC_2.2.5", False)),
])
def test_split_version(text: str, expected: tuple[str, str | None, bool | None]) -> None:
    assert split_version(text) == expected


def test_parse_symbols_64_and_32() -> None:
    raw64 = struct.pack("<IBBHQQ", 5, 0x12, 0, 14, 0x1130, 42)
    assert parse_symbols(raw64 + b"\0" * 7, 64) == [(5, 0x12, 14, 0x1130, 42)]
    raw32 = struct.pack(">IIIBBH", 5, 0x1130, 42, 0x12, 0, 14)
    assert parse_symbols(raw32, 32, ">") == [(5, 0x12, 14, 0x1130, 42)]


def test_parse_versions() -> None:
    strtab = b"\0libx.so\0V_1\0V_2\0libc.so.6\0GLIBC_2.2.5\0"
    # verdef: base entry (flags=1, ndx 1) then V_1 (ndx 2), each with one aux
    vd = struct.pack("<HHHHIII", 1, 1, 1, 1, 0, 20, 28) + struct.pack("<II", 1, 0)
    vd += struct.pack("<HHHHIII", 1, 0, 2, 1, 0, 20, 0) + struct.pack("<II", 9, 0)
    assert parse_verdef(vd, strtab, 2) == {2: "V_1"}
    vn = struct.pack("<HHIII", 1, 1, 17, 16, 0) + struct.pack("<IHHII", 0, 0, 3, 27, 0)
    assert parse_verneed(vn, strtab, 1) == {3: ("GLIBC_2.2.5", "libc.so.6")}
    assert parse_versym(struct.pack("<HHH", 0, 2, 0x8003)) == [0, 2, 0x8003]
    dyn = struct.pack("<qQqQqQ", 1, 17, 14, 1, 0, 0)
    assert parse_needed(dyn, strtab, 64) == ["libc.so.6"]


def test_error_not_elf_header() -> None:
    with pytest.raises(NotAnElfError) as e:
        parse_elf_header(b"MZ\x90\x00" + bytes(60), "x.exe")
    assert str(e.value) == ("x.exe is not an ELF file: it starts with b'MZ\\x90\\x00', expected "
                            "b'\\x7fELF'; give the path of a compiled executable or shared "
                            "library")
    with pytest.raises(NotAnElfError, match="invalid ELF identification"):
        parse_elf_header(b"\x7fELF\x07\x01" + bytes(58))


@pytest.mark.skipif(not LIBC.exists(), reason="no x86-64 libc")
def test_hash_lookup_equals_scan_on_libc() -> None:
    idx = SymbolIndex(ElfFile.open(LIBC))
    assert idx.dynsym is not None
    names = {s.name for s in idx.dynsym.all() if s.defined}
    assert len(names) > 2000
    for name in sorted(names):
        hashed = idx.lookup_dynamic(name)
        assert hashed is not None
        scanned = [s for s in idx.dynsym.find(name) if s.defined]
        assert sorted(hashed, key=repr) == sorted(scanned, key=repr), name
    assert idx.lookup_dynamic("no_such_symbol_here") == []


@pytest.mark.skipif(not LIBC.exists(), reason="no x86-64 libc")
def test_libc_versions_and_needed() -> None:
    idx = SymbolIndex(ElfFile.open(LIBC))
    got = {s.versioned_name for s in idx.lookup("memcpy")}
    assert {"memcpy@@GLIBC_2.14", "memcpy@GLIBC_2.2.5"} <= got
    assert "ld-linux-x86-64.so.2" in idx.needed()


def test_from_bytes_round_trip() -> None:
    data = pathlib.Path("/bin/true").read_bytes()
    a, b = ElfFile.from_bytes(data), ElfFile.open(pathlib.Path("/bin/true"))
    assert a.sections == b.sections and a.segments == b.segments


@pytest.mark.skipif(not LIBC.exists(), reason="no x86-64 libc")
def test_find_equals_full_decode() -> None:
    idx = SymbolIndex(ElfFile.open(LIBC))
    assert idx.dynsym is not None
    everything = idx.dynsym.all()
    by_name: dict[str, list[object]] = {}
    for s in everything:
        by_name.setdefault(s.name, []).append(s)
    for name, syms in by_name.items():
        assert idx.dynsym.find(name) == syms, name
