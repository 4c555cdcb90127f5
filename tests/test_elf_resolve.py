"""Tests of ebpfhooks.elf.resolve on binaries compiled for the test (gcc, objcopy, strip)."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from ebpfhooks.elf import (
    AddressNotExecutableError,
    OffsetOutOfRangeError,
    UserTarget,
    function_symbols,
    resolve_address,
    resolve_binary,
    resolve_file_offset,
    resolve_symbol,
)
from ebpfhooks.errors import (
    AmbiguousSymbolError,
    BinaryNotFoundError,
    ImportedSymbolError,
    LibraryNotFoundError,
    NotAnElfError,
    ProcessNotFoundError,
    SymbolNotFoundError,
    WrongArchitectureError,
)

HERE = pathlib.Path(__file__).resolve().parent
TOOLS = all(shutil.which(t) for t in ("gcc", "objcopy", "strip", "readelf", "nm"))
needs_tools = pytest.mark.skipif(not TOOLS, reason="needs gcc and binutils")


def _load_build() -> object:
    spec = importlib.util.spec_from_file_location("elf_targets_build",
                                                  HERE / "elf_targets" / "build.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    if not TOOLS:
        pytest.skip("needs gcc and binutils")
    build = _load_build()
    out = tmp_path_factory.mktemp("elf_targets")
    return build.build_all(out)  # type: ignore[attr-defined, no-any-return]


# ---------------------------------------------------------------- readelf/nm oracles


def readelf_symbols(path: pathlib.Path) -> list[tuple[int, int, str, str, str, str]]:
    """(value, size, type, bind, ndx, name) of every symbol readelf -sW shows."""
    out = subprocess.run(["readelf", "-sW", str(path)], check=True, capture_output=True,
                         text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*\d+:\s+([0-9a-f]+)\s+(\d+|0x[0-9a-f]+)\s+(\w+)\s+(\w+)\s+\w+\s+(\w+)"
                     r"\s+(\S+)", line)
        if m:
            size = int(m[2], 0)
            rows.append((int(m[1], 16), size, m[3], m[4], m[5], m[6]))
    return rows


def readelf_exec_loads(path: pathlib.Path) -> list[tuple[int, int, int]]:
    """(offset, vaddr, filesz) of the executable LOAD segments readelf -lW shows."""
    out = subprocess.run(["readelf", "-lW", str(path)], check=True, capture_output=True,
                         text=True).stdout
    segs = []
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "LOAD" and "E" in "".join(parts[7:-1]):
            segs.append((int(parts[1], 16), int(parts[2], 16), int(parts[4], 16)))
    return segs


def oracle_offset(path: pathlib.Path, vaddr: int) -> int:
    for off, va, size in readelf_exec_loads(path):
        if va <= vaddr < va + size:
            return vaddr - va + off
    raise AssertionError(f"0x{vaddr:x} not in an executable segment of {path}")


def nm_address(path: pathlib.Path, name: str) -> int:
    out = subprocess.run(["nm", str(path)], check=True, capture_output=True, text=True).stdout
    hits = [int(line.split()[0], 16) for line in out.splitlines()
            if line.split()[-1] == name and len(line.split()) == 3]
    assert len(hits) == 1, hits
    return hits[0]


# ---------------------------------------------------------------- symbols in compiled files


@needs_tools
@pytest.mark.parametrize("binary", ["prog_pie", "prog_nopie", "libvlib.so"])
def test_every_function_matches_readelf_arithmetic(targets: dict[str, pathlib.Path],
                                                   binary: str) -> None:
    path = targets[binary]
    funcs = [r for r in readelf_symbols(path) if r[2] in ("FUNC", "IFUNC") and r[4] != "UND"]
    assert funcs
    ours = {(s.versioned_name, s.value) for s in function_symbols(path)}
    for value, _size, _typ, _bind, _ndx, name in funcs:
        assert (name, value) in ours or (name.split("@")[0], value) in ours, name
    for s in function_symbols(path):
        if s.name == "dup_helper":
            continue
        t = resolve_symbol(path, s.versioned_name)
        assert t.file_offset == oracle_offset(path, t.vaddr)


@needs_tools
def test_pie_and_non_pie_offsets(targets: dict[str, pathlib.Path]) -> None:
    pie = resolve_symbol(targets["prog_pie"], "target_func")
    nopie = resolve_symbol(targets["prog_nopie"], "target_func")
    assert pie.vaddr == nm_address(targets["prog_pie"], "target_func")
    assert nopie.vaddr == nm_address(targets["prog_nopie"], "target_func")
    assert nopie.vaddr >= 0x400000  # ET_EXEC: absolute addresses
    assert nopie.file_offset == nopie.vaddr - 0x400000  # the usual single-base layout
    assert pie.file_offset == oracle_offset(targets["prog_pie"], pie.vaddr)
    assert str(nopie) == (f"{targets['prog_nopie']}:target_func (vaddr 0x{nopie.vaddr:x}, "
                          f"file offset 0x{nopie.file_offset:x})")


@needs_tools
def test_static_function_only_in_symtab(targets: dict[str, pathlib.Path]) -> None:
    t = resolve_symbol(targets["prog_pie"], "static_helper")
    assert (t.binding, t.type) == ("LOCAL", "FUNC")
    assert t.vaddr == nm_address(targets["prog_pie"], "static_helper")


@needs_tools
def test_alias_resolves_to_same_place(targets: dict[str, pathlib.Path]) -> None:
    a = resolve_symbol(targets["prog_pie"], "target_func")
    b = resolve_symbol(targets["prog_pie"], "target_alias")
    assert (a.vaddr, a.file_offset) == (b.vaddr, b.file_offset)
    assert b.symbol == "target_alias"


@needs_tools
def test_weak_function(targets: dict[str, pathlib.Path]) -> None:
    t = resolve_symbol(targets["prog_nopie"], "weak_func")
    assert t.binding == "WEAK"
    assert t.vaddr == nm_address(targets["prog_nopie"], "weak_func")


@needs_tools
def test_zero_size_symbol_allowed_offset_unchecked(targets: dict[str, pathlib.Path]) -> None:
    t = resolve_symbol(targets["prog_pie"], "zero_size_func")
    assert t.size == 0 and t.note and "size is 0" in t.note
    t4 = resolve_symbol(targets["prog_pie"], "zero_size_func", 2)
    assert t4.vaddr == t.vaddr + 2 and t4.offset == 2
    assert t4.note and "not checked" in t4.note


@needs_tools
def test_offset_inside_symbol(targets: dict[str, pathlib.Path]) -> None:
    t = resolve_symbol(targets["prog_pie"], "target_func")
    t2 = resolve_symbol(targets["prog_pie"], "target_func", 4)
    assert (t2.vaddr, t2.file_offset, t2.offset) == (t.vaddr + 4, t.file_offset + 4, 4)
    assert str(t2).startswith(f"{targets['prog_pie']}:target_func+0x4 ")


@needs_tools
def test_error_offset_past_end(targets: dict[str, pathlib.Path]) -> None:
    path = targets["prog_pie"]
    t = resolve_symbol(path, "target_func")
    with pytest.raises(OffsetOutOfRangeError) as e:
        resolve_symbol(path, "target_func", t.size)
    assert str(e.value) == (f"offset 0x{t.size:x} is past the end of {path}:target_func "
                            f"(size 0x{t.size:x}); give an offset below 0x{t.size:x}")
    assert isinstance(e.value, ValueError)


@needs_tools
def test_versioned_symbols(targets: dict[str, pathlib.Path]) -> None:
    lib = targets["libvlib.so"]
    rows = {r[5]: r[0] for r in readelf_symbols(lib)}
    default = resolve_symbol(lib, "vfoo")
    assert (default.version, default.vaddr) == ("VLIB_2", rows["vfoo@@VLIB_2"])
    assert default.note and "vfoo@VLIB_1" in default.note
    assert resolve_symbol(lib, "vfoo@@VLIB_2").vaddr == rows["vfoo@@VLIB_2"]
    old = resolve_symbol(lib, "vfoo@VLIB_1")
    assert (old.version, old.vaddr, old.hidden_version) == ("VLIB_1", rows["vfoo@VLIB_1"], True)
    assert str(old).startswith(f"{lib}:vfoo@VLIB_1 ")


@needs_tools
def test_error_unknown_version(targets: dict[str, pathlib.Path]) -> None:
    lib = targets["libvlib.so"]
    with pytest.raises(SymbolNotFoundError) as e:
        resolve_symbol(lib, "vfoo@@VLIB_1")  # VLIB_1 exists but is not the default
    assert str(e.value) == (f"symbol 'vfoo@@VLIB_1' not found in {lib}; closest: "
                            "vfoo@@VLIB_2, vfoo@VLIB_1\n"
                            "that version is not defined here; use one of the versions listed")


@needs_tools
def test_ifunc_resolves_resolver(targets: dict[str, pathlib.Path]) -> None:
    lib = targets["libvlib.so"]
    t = resolve_symbol(lib, "picked")
    assert t.ifunc and t.type == "IFUNC"
    assert t.vaddr == {r[5]: r[0] for r in readelf_symbols(lib)}["picked@@VLIB_1"]
    assert t.note and "resolver" in t.note


@needs_tools
def test_error_ambiguous_statics(targets: dict[str, pathlib.Path]) -> None:
    path = targets["prog_pie"]
    with pytest.raises(AmbiguousSymbolError) as e:
        resolve_symbol(path, "dup_helper")
    addrs = sorted(r[0] for r in readelf_symbols(path) if r[5] == "dup_helper")
    msg = str(e.value)
    assert msg.startswith(f"symbol 'dup_helper' has 2 different definitions in {path}:\n")
    for a in addrs:
        assert f"dup_helper at vaddr 0x{a:x} (LOCAL FUNC" in msg
    assert msg.endswith("probe one of them by its address (0xADDR, as nm prints it)")
    assert isinstance(e.value, LookupError)
    # each definition is reachable by address
    assert resolve_address(path, addrs[1]).note == "inside dup_helper+0x0"


@needs_tools
def test_error_imported_symbol_names_library(targets: dict[str, pathlib.Path]) -> None:
    path = targets["uses_vlib"]
    with pytest.raises(ImportedSymbolError) as e:
        resolve_symbol(path, "vfoo")
    assert str(e.value) == (f"'vfoo' is only imported by {path} (undefined there, value 0): it "
                            "is defined in libvlib.so; probe it in the library instead, e.g. "
                            "uprobe:libvlib.so:vfoo")


@needs_tools
def test_error_symbol_not_found_close_matches(targets: dict[str, pathlib.Path]) -> None:
    path = targets["prog_pie"]
    with pytest.raises(SymbolNotFoundError) as e:
        resolve_symbol(path, "target_fun")
    assert str(e.value).startswith(f"symbol 'target_fun' not found in {path}; closest: "
                                   "target_func")
    assert e.value.candidates[0] == "target_func"


@needs_tools
def test_error_symbol_not_found_close_names_unique(targets: dict[str, pathlib.Path]) -> None:
    lib = targets["libvlib.so"]  # vfoo is defined twice (VLIB_1, VLIB_2): one name
    with pytest.raises(SymbolNotFoundError) as e:
        resolve_symbol(lib, "vfooo")
    assert e.value.candidates.count("vfoo") == 1
    assert len(set(e.value.candidates)) == len(e.value.candidates)


@pytest.mark.skipif(not pathlib.Path("/lib/x86_64-linux-gnu/libc.so.6").exists(),
                    reason="no x86-64 libc")
def test_error_libc_close_names_unique() -> None:
    libc = resolve_binary("c")
    for name in ("mallocx", "vallocc", "mallok"):
        with pytest.raises(SymbolNotFoundError) as e:
            resolve_symbol(libc, name)
        assert len(set(e.value.candidates)) == len(e.value.candidates), str(e.value)
        assert e.value.candidates


@needs_tools
def test_resolve_address_and_file_offset(targets: dict[str, pathlib.Path]) -> None:
    path = targets["prog_nopie"]
    sym = resolve_symbol(path, "target_func")
    a = resolve_address(path, sym.vaddr + 1)
    assert (a.file_offset, a.symbol, a.offset) == (sym.file_offset + 1, None, 0)
    assert a.note == "inside target_func+0x1"
    assert str(a) == f"{path}:0x{sym.vaddr + 1:x} (vaddr 0x{sym.vaddr + 1:x}, " \
                     f"file offset 0x{sym.file_offset + 1:x})"
    f = resolve_file_offset(path, sym.file_offset)
    assert f.vaddr == sym.vaddr


@needs_tools
def test_error_address_not_code(targets: dict[str, pathlib.Path]) -> None:
    path = targets["prog_nopie"]
    with pytest.raises(AddressNotExecutableError) as e:
        resolve_address(path, 0x10)
    assert str(e.value).startswith(f"address 0x10 is outside every executable segment of {path} (")
    with pytest.raises(AddressNotExecutableError):
        resolve_file_offset(path, 0x10)


# ---------------------------------------------------------------- debug symbols


@needs_tools
def test_stripped_uses_build_id_debug_file(targets: dict[str, pathlib.Path]) -> None:
    path, root = targets["prog_stripped"], targets["debugroot"]
    ref = resolve_symbol(targets["prog_pie"], "static_helper")
    t = resolve_symbol(path, "static_helper", debug_root=root)
    assert (t.vaddr, t.file_offset) == (ref.vaddr, ref.file_offset)
    assert t.note and t.note.startswith(f"symbol read from debug file {root}/.build-id/")
    names = {s.name for s in function_symbols(path, debug_root=root)}
    assert {"static_helper", "dup_helper", "target_func"} <= names


@needs_tools
def test_error_stripped_without_debug_file(targets: dict[str, pathlib.Path],
                                           tmp_path: pathlib.Path) -> None:
    path = targets["prog_stripped"]
    with pytest.raises(SymbolNotFoundError) as e:
        resolve_symbol(path, "static_helper", debug_root=tmp_path)
    assert str(e.value).endswith(
        f"the file is stripped (no .symtab) and no debug file was found under {tmp_path}: "
        "install its debug symbols")


@needs_tools
def test_stripped_uses_debuglink(targets: dict[str, pathlib.Path],
                                 tmp_path: pathlib.Path) -> None:
    path = targets["prog_linked"]
    t = resolve_symbol(path, "static_helper", debug_root=tmp_path)
    assert t.vaddr == resolve_symbol(targets["prog_nopie"], "static_helper").vaddr
    assert t.note == f"symbol read from debug file {path.parent}/.debug/prog_linked.debug"


@needs_tools
def test_debuglink_crc_mismatch_is_ignored(targets: dict[str, pathlib.Path],
                                           tmp_path: pathlib.Path) -> None:
    src = targets["prog_linked"]
    (tmp_path / ".debug").mkdir()
    shutil.copy(src, tmp_path / "prog_linked")
    # a debug file with the right name but other contents: CRC differs
    shutil.copy(targets["prog_pie"], tmp_path / ".debug" / "prog_linked.debug")
    with pytest.raises(SymbolNotFoundError):
        resolve_symbol(tmp_path / "prog_linked", "static_helper", debug_root=tmp_path)


@needs_tools
def test_minidebuginfo(targets: dict[str, pathlib.Path], tmp_path: pathlib.Path) -> None:
    t = resolve_symbol(targets["prog_mini"], "static_helper", debug_root=tmp_path)
    assert t.vaddr == resolve_symbol(targets["prog_pie"], "static_helper").vaddr
    assert t.note == "symbol read from MiniDebugInfo (.gnu_debugdata)"


# ---------------------------------------------------------------- against bcc's resolver


@needs_tools
@pytest.mark.parametrize("binary", ["prog_pie", "prog_nopie", "libvlib.so", "prog_linked"])
def test_compiled_targets_agree_with_bcc(targets: dict[str, pathlib.Path], binary: str) -> None:
    bcc = pytest.importorskip("bcc")
    path = targets[binary]
    for s in function_symbols(path, debug_root=targets["debugroot"]):
        if s.name == "dup_helper":
            continue  # ambiguous here on purpose (test_error_ambiguous_statics)
        try:
            ours = resolve_symbol(path, s.name, debug_root=targets["debugroot"])
        except AmbiguousSymbolError:
            continue
        mod, off = bcc.BPF._check_path_symbol(str(path).encode(), s.name.encode(), 0, -1)
        assert mod.decode() == str(path)
        if off != ours.file_offset:
            # intended: we take the default version (vfoo@@VLIB_2), bcc the first in .dynsym
            assert ours.note and ours.note.startswith("default version chosen"), s.name
            others = [o for o in function_symbols(path) if o.name == s.name and not o.default]
            assert off in {resolve_symbol(path, o.versioned_name).file_offset for o in others}
            continue
        # bcc's addr= is an ELF virtual address too
        _, off2 = bcc.BPF._check_path_symbol(str(path).encode(), b"", ours.vaddr, -1)
        assert resolve_address(path, ours.vaddr).file_offset == off2


# ---------------------------------------------------------------- resolve_binary


def test_resolve_binary_library_names() -> None:
    libc = resolve_binary("c")
    assert libc.name.startswith("libc.so")
    assert resolve_binary("libc") == libc == resolve_binary("libc.so.6")
    assert libc == pathlib.Path(os.path.realpath(libc))


def test_resolve_binary_matches_bcc_find_library() -> None:
    bcc = pytest.importorskip("bcc")
    for name in ("c", "m", "pthread"):
        theirs = bcc.BPF.find_library(name.encode())
        assert theirs is not None
        assert resolve_binary(name) == pathlib.Path(os.path.realpath(theirs.decode()))


def test_resolve_binary_path_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert resolve_binary("bash") == pathlib.Path(os.path.realpath("/usr/bin/bash"))


def test_resolve_binary_relative_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/usr")
    assert resolve_binary("./bin/bash") == pathlib.Path(os.path.realpath("/usr/bin/bash"))


def test_resolve_binary_with_pid_uses_maps() -> None:
    path = resolve_binary("libc.so.6", pid=os.getpid())
    with open(f"/proc/{os.getpid()}/maps") as f:
        assert str(path) in f.read()
    exe = pathlib.Path(os.path.realpath(sys.executable))
    assert resolve_binary(exe.name, pid=os.getpid()) == exe


def _unmapped_library() -> tuple[str, str]:
    """A library in ld.so.cache that this process has not mapped: (soname, path)."""
    from ebpfhooks.elf.ldcache import read_ld_so_cache

    with open(f"/proc/{os.getpid()}/maps") as f:
        maps = f.read()
    mapped = {line.split()[-1].rsplit("/", 1)[-1] for line in maps.splitlines()
              if line.split()[-1].startswith("/")}
    for e in read_ld_so_cache():
        if e.arch == "x86-64" and e.name not in mapped and os.path.exists(e.path) \
                and os.path.realpath(e.path) not in maps:
            return e.name, e.path
    pytest.skip("every library in ld.so.cache is mapped here")


def test_error_pid_library_not_mapped() -> None:
    # the library exists (ld.so.cache has it) but this process does not map it: with a
    # pid it must not be taken from the cache, or the probe would never fire for the pid
    name, _path = _unmapped_library()
    pid = os.getpid()
    with pytest.raises(LibraryNotFoundError) as e:
        resolve_binary(name, pid=pid)
    msg = str(e.value)
    assert msg.startswith(f"library {name!r} not found in /proc/{pid}/maps (the files "
                          f"process {pid} has mapped)")
    assert f"process {pid} does not map {name!r}" in msg


def test_error_pid_library_close_names_are_mapped_ones() -> None:
    pid = os.getpid()
    with pytest.raises(LibraryNotFoundError) as e:
        resolve_binary("libc.so.7", pid=pid)
    assert "libc.so.6" in e.value.candidates
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    assert all(c in maps for c in e.value.candidates)
    assert len(set(e.value.candidates)) == len(e.value.candidates)


def test_resolve_binary_with_pid_accepts_other_name_of_mapped_file(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = pathlib.Path(os.path.realpath(sys.executable))
    (tmp_path / "ourpython").symlink_to(exe)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_binary("ourpython", pid=os.getpid()) == exe


def test_error_pid_not_found() -> None:
    with pytest.raises(ProcessNotFoundError) as e:
        resolve_binary("c", pid=2**22 + 12345)
    assert str(e.value) == ("process '4206649' not found in /proc\n"
                            "is the process running? check with `ps -p PID`")


def test_error_directory(tmp_path: pathlib.Path) -> None:
    with pytest.raises(BinaryNotFoundError) as e:
        resolve_binary(str(tmp_path))
    # said once: not "not found" and then "is a directory"
    assert str(e.value) == (f"binary '{tmp_path}' is a directory, not an executable or "
                            f"library; give the path of a file inside it, such as "
                            f"{tmp_path}/NAME")
    assert isinstance(e.value, LookupError)


def test_error_directory_through_a_symlink(tmp_path: pathlib.Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(BinaryNotFoundError) as e:
        resolve_binary(str(tmp_path / "link"))
    assert str(e.value) == (f"binary '{tmp_path}/link' ({tmp_path}/real) is a directory, not "
                            "an executable or library; give the path of a file inside it, "
                            f"such as {tmp_path}/real/NAME")
    assert str(e.value).count(" is a directory") == 1 and "not found" not in str(e.value)


def test_error_missing_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "server").write_bytes(b"")
    with pytest.raises(BinaryNotFoundError) as e:
        resolve_binary(str(tmp_path / "servr"))
    assert str(e.value).startswith(f"binary '{tmp_path}/servr' not found in {tmp_path}; "
                                   f"closest: {tmp_path}/server\nno such file")


def test_error_not_elf(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(NotAnElfError) as e:
        resolve_binary(str(script))
    assert str(e.value) == (f"{script} is not an ELF file (it is a script): it starts with "
                            "b'#!/b', expected b'\\x7fELF'; give the path of a compiled "
                            "executable or shared library")


def test_error_wrong_architecture(tmp_path: pathlib.Path) -> None:
    data = bytearray(pathlib.Path("/bin/true").read_bytes()[:4096])
    data[18:20] = (183 if data[18] == 62 else 62).to_bytes(2, "little")
    other = tmp_path / "other_arch"
    other.write_bytes(bytes(data))
    with pytest.raises(WrongArchitectureError) as e:
        resolve_binary(str(other))
    assert "is an ELF file for " in str(e.value) and "but this machine is" in str(e.value)
    with pytest.raises(WrongArchitectureError):
        resolve_symbol(other, "main")


def test_error_library_not_found() -> None:
    with pytest.raises(LibraryNotFoundError) as e:
        resolve_binary("libnosuchthing")
    assert str(e.value).startswith("library 'libnosuchthing' not found in $PATH and "
                                   "/etc/ld.so.cache")


def test_error_bare_name_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin")
    with pytest.raises(BinaryNotFoundError) as e:
        resolve_binary("bsah")
    assert str(e.value).startswith("binary 'bsah' not found in $PATH and /etc/ld.so.cache; "
                                   "closest: bash")


def test_user_target_is_frozen_value() -> None:
    t = resolve_symbol(resolve_binary("c"), "malloc")
    assert isinstance(t, UserTarget)
    assert t == resolve_symbol(resolve_binary("libc"), "malloc")
    with pytest.raises(AttributeError):
        t.vaddr = 0  # type: ignore[misc]


def test_import_does_not_import_bcc() -> None:
    code = "import sys, ebpfhooks.elf; assert 'bcc' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_symlinks_followed_inside_another_root(tmp_path: pathlib.Path) -> None:
    from ebpfhooks.elf.binary import _resolve_in_root

    root = tmp_path / "container"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "libz.so.1.2").write_bytes(b"")
    (root / "lib").symlink_to("/usr/lib")  # absolute: must stay inside root
    (root / "usr" / "lib" / "libz.so.1").symlink_to("libz.so.1.2")
    got = _resolve_in_root(root, "/lib/libz.so.1")
    assert got == str(root / "usr" / "lib" / "libz.so.1.2")
    assert _resolve_in_root(root, "/../../lib/./libz.so.1") == got
