"""Tests of ebpfhooks.elf.symbols and elffile: bulk decoders, pyelftools against readelf."""

from __future__ import annotations

import io
import pathlib
import re
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfhooks.elf.debuginfo import build_id
from ebpfhooks.elf.elffile import ElfFile
from ebpfhooks.elf.reading import _PreadStream
from ebpfhooks.elf.symbols import SymbolIndex, parse_symbols, parse_versym, split_version
from ebpfhooks.errors import NotAnElfError

LIBC = pathlib.Path("/lib/x86_64-linux-gnu/libc.so.6")
BASH = pathlib.Path("/bin/bash")
READELF = shutil.which("readelf")
needs_readelf = pytest.mark.skipif(READELF is None, reason="needs readelf (binutils)")


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


def test_parse_versym() -> None:
    assert parse_versym(struct.pack("<HHH", 0, 2, 0x8003)) == [0, 2, 0x8003]
    assert parse_versym(struct.pack(">HH", 1, 2) + b"\0", ">") == [1, 2]


def test_error_not_elf_header() -> None:
    with pytest.raises(NotAnElfError) as e:
        ElfFile.from_bytes(b"MZ\x90\x00" + bytes(60), "x.exe")
    assert str(e.value) == ("x.exe is not an ELF file: it starts with b'MZ\\x90\\x00', expected "
                            "b'\\x7fELF'; give the path of a compiled executable or shared "
                            "library")
    with pytest.raises(NotAnElfError) as e:
        ElfFile.from_bytes(b"\x7fELF\x07\x01" + bytes(58), "x.bin")
    assert str(e.value).startswith("x.bin is a damaged ELF file: its ELF header does not "
                                   "parse (ELFError: Invalid EI_CLASS")
    with pytest.raises(NotAnElfError, match=r"x\.cut is a damaged ELF file: its ELF header"):
        ElfFile.from_bytes(pathlib.Path("/bin/true").read_bytes()[:40], "x.cut")


@pytest.mark.skipif(not LIBC.exists(), reason="no x86-64 libc")
def test_libc_versions_and_needed() -> None:
    idx = SymbolIndex(ElfFile.open(LIBC))
    got = {s.versioned_name for s in idx.lookup("memcpy")}
    assert {"memcpy@@GLIBC_2.14", "memcpy@GLIBC_2.2.5"} <= got
    assert "ld-linux-x86-64.so.2" in idx.needed()


@needs_readelf
@pytest.mark.skipif(not BASH.exists(), reason="no /bin/bash")
def test_version_tables_match_readelf() -> None:
    out = subprocess.run([READELF or "readelf", "-VW", str(BASH)], check=True,
                         capture_output=True, text=True).stdout
    # the needs, as readelf prints them: "0x0010:   Name: GLIBC_2.3  Flags: none  Version: 13"
    expected = set()
    for line in out.splitlines():
        m = re.search(r"Name: (\S+)\s+Flags: \S+\s+Version: (\d+)", line)
        if m:
            expected.add((int(m[2]), m[1]))
    elf = ElfFile.open(BASH)
    got = {(ndx, name) for ndx, (name, _lib) in elf.version_needs().items()}
    assert expected and got == expected
    assert {lib for _name, lib in elf.version_needs().values()} <= set(elf.needed())


def test_from_bytes_round_trip() -> None:
    data = pathlib.Path("/bin/true").read_bytes()
    a, b = ElfFile.from_bytes(data), ElfFile.open(pathlib.Path("/bin/true"))
    assert a.sections == b.sections and a.segments == b.segments


def _readelf_sections(path: pathlib.Path) -> list[tuple[str, int, int]]:
    out = subprocess.run([READELF or "readelf", "-SW", str(path)], check=True,
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*(\d+)\]\s+(\S*)\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)",
                     line)
        if m and m[1] != "0":
            rows.append((m[2], int(m[3], 16), int(m[4], 16)))
    return rows


def _readelf_loads(path: pathlib.Path) -> list[tuple[int, int, int, int, bool]]:
    out = subprocess.run([READELF or "readelf", "-lW", str(path)], check=True,
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "LOAD":
            rows.append((int(parts[1], 16), int(parts[2], 16), int(parts[4], 16),
                         int(parts[5], 16), "E" in "".join(parts[6:-1])))
    return rows


@needs_readelf
@pytest.mark.parametrize("path", [pathlib.Path("/bin/true"), BASH, LIBC])
def test_headers_match_readelf(path: pathlib.Path) -> None:
    # /bin/true is read whole (BytesIO); bash and libc through the pread stream
    if not path.exists():
        pytest.skip(f"{path} not installed")
    elf = ElfFile.open(path)
    ours = [(s.name, s.offset, s.size) for s in elf.sections[1:]]
    assert ours == _readelf_sections(path)
    loads = [(s.offset, s.vaddr, s.filesz, s.memsz, s.executable) for s in elf.segments
             if s.type == "PT_LOAD"]
    assert loads == _readelf_loads(path)


@needs_readelf
@pytest.mark.parametrize("path", [pathlib.Path("/bin/true"), LIBC])
def test_build_id_matches_readelf(path: pathlib.Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not installed")
    out = subprocess.run([READELF or "readelf", "-nW", str(path)], check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    assert m is not None
    assert build_id(ElfFile.open(path)) == m[1]
    notes = ElfFile.open(path).notes(".note.gnu.build-id")
    assert [(n.owner, n.type, n.desc.hex(), n.where) for n in notes] == [
        ("GNU", 3, m[1], ".note.gnu.build-id")]


def test_notes_from_segments_when_sections_are_gone() -> None:
    data = bytearray(pathlib.Path("/bin/true").read_bytes())
    want = build_id(ElfFile.from_bytes(bytes(data)))
    data[0x28:0x30] = bytes(8)  # e_shoff = 0: no section headers
    data[0x3C:0x3E] = bytes(2)  # e_shnum = 0
    elf = ElfFile.from_bytes(bytes(data), "noshdr")
    assert elf.sections == []
    assert want and build_id(elf) == want
    assert {n.where for n in elf.notes()} == {"PT_NOTE"}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, bytes]:
    data = bytes(range(256)) * 1000  # 256,000 bytes: four blocks of the stream and a bit
    path = tmp_path_factory.mktemp("pread") / "data.bin"
    path.write_bytes(data)
    return path, data


def test_pread_stream_reads_like_bytes(data_file: tuple[pathlib.Path, bytes]) -> None:
    path, data = data_file

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 300_000), st.integers(-1, 200_000)),
                    max_size=12))
    def check(reads: list[tuple[int, int]]) -> None:
        ref = io.BytesIO(data)
        stream = _PreadStream(path, len(data))
        for pos, size in reads:
            ref.seek(pos)
            stream.seek(pos)
            assert stream.read(size) == ref.read(size)
            assert stream.tell() == ref.tell()
        assert stream.seek(-10, 2) == len(data) - 10 and stream.read() == data[-10:]

    check()


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


def test_damaged_files_through_the_pread_stream(tmp_path: pathlib.Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/test_fuzz.py mutates files small enough to be read whole; this one makes
    every file go through the pread stream: a damaged file gives a typed error."""
    from ebpfhooks.elf import elffile
    from ebpfhooks.elf.resolve import function_symbols
    from ebpfhooks.errors import EbpfHooksError

    monkeypatch.setattr(elffile, "WHOLE_FILE_MAX", 0)
    seed = pathlib.Path("/bin/true").read_bytes()
    counter = iter(range(10**9))

    @settings(max_examples=150, deadline=None)
    @given(st.integers(0, len(seed)), st.lists(st.tuples(st.integers(0, len(seed) - 1),
                                                          st.integers(0, 255)), max_size=8))
    def check(cut: int, flips: list[tuple[int, int]]) -> None:
        data = bytearray(seed[:cut])
        for i, v in flips:
            if i < len(data):
                data[i] = v
        path = tmp_path / f"elf{next(counter)}"
        path.write_bytes(bytes(data))
        try:
            syms = function_symbols(path, debug_root=tmp_path / "nodebug")
        except EbpfHooksError:
            return
        finally:
            path.unlink()
        assert all(isinstance(s.name, str) for s in syms)

    check()
