"""USDT: spellings, errors, the note and argument parsers (on bytes and text), resolution,
listing against ``bpftrace -l``, ``info``, the generated reader C, and the attach path
through a stand-in bcc and perf_uprobe (the live tests are in test_live_usdt.py)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import not_possible

import ebpfhooks
from ebpfhooks import (
    AmbiguousSymbolError,
    Hook,
    NotAnElfError,
    NotSupportedError,
    SpecError,
    Usdt,
    UsdtProbeNotFoundError,
    UsdtResolution,
    bpfsys,
    discover,
)
from ebpfhooks import _bcc as adapter
from ebpfhooks.elf import usdt as elf_usdt
from ebpfhooks.elf.headers import Segment
from ebpfhooks.elf.usdt import (
    StapsdtNote,
    UsdtArg,
    locate,
    parse_stapsdt,
    parse_usdt_arg,
    parse_usdt_args,
    usdt_probes,
)
from ebpfhooks.hooks._usdt_c import reader_source
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import Feature, FeatureStatus

PYTHON = Path("/usr/bin/python3.11")
GC_START = f"usdt:{PYTHON}:python:gc__start"


def _python() -> Path:
    if not PYTHON.exists():
        not_possible(f"{PYTHON} (Debian's, built with USDT probes) is the real target")
    return PYTHON


# --------------------------------------------------------------------------- spellings

ACCEPTED = [
    (GC_START, Usdt(str(PYTHON), "gc__start", provider="python")),
    ("USDT:/usr/bin/python3.11:python:gc__start",
     Usdt("/usr/bin/python3.11", "gc__start", provider="python")),
    ("usdt:/usr/bin/python3.11:gc__start", Usdt("/usr/bin/python3.11", "gc__start")),
    ("usdt//usr/bin/python3.11:python:gc__start",  # libbpf's SEC("usdt/...")
     Usdt("/usr/bin/python3.11", "gc__start", provider="python")),
    ("usdt:python3:python:function__entry[pid=42]",
     Usdt("python3", "function__entry", provider="python", pid=42)),
    ("usdt:./a.out:p:n", Usdt("./a.out", "n", provider="p")),
    ("usdt:/odd:dir/app:p:n", Usdt("/odd:dir/app", "n", provider="p")),
]


@pytest.mark.parametrize(("spec", "hook"), ACCEPTED, ids=[s for s, _ in ACCEPTED])
def test_spellings_and_round_trip(spec: str, hook: Usdt) -> None:
    parsed = Hook.from_spec(spec)
    assert parsed == hook
    assert Hook.from_spec(str(parsed)) == parsed
    assert str(parsed).startswith("usdt:")


def test_canonical_spec_and_fields() -> None:
    hook = Usdt("/usr/bin/python3.11", "gc__start", provider="python", pid=7)
    assert str(hook) == "usdt:/usr/bin/python3.11:python:gc__start[pid=7]"
    assert repr(hook) == ("Usdt(binary='/usr/bin/python3.11', provider='python', "
                          "name='gc__start', pid=7)")
    assert hook.function_names() == ("usdt__gc__start", "gc__start", "on_gc__start")
    assert (hook.kind, hook.bcc_entry, hook.program_type, hook.min_kernel) == (
        "usdt", "USDT.enable_probe", "KPROBE", (4, 20))
    with pytest.raises(AttributeError):
        hook.name = "x"  # type: ignore[misc]


def _error(spec: str) -> str:
    with pytest.raises(SpecError) as info:
        Hook.from_spec(spec)
    return str(info.value)


def test_error_missing_name() -> None:
    assert _error("usdt:/bin/x") == (
        "invalid hook spec: missing ':NAME' after the binary\n"
        "    usdt:/bin/x\n"
        "               ^\n"
        "expected usdt:BINARY:[PROVIDER:]NAME, e.g. usdt:/usr/bin/python3:python:function__entry")
    assert _error("usdt:/bin/x:") == (
        "invalid hook spec: missing probe name after the binary\n"
        "    usdt:/bin/x:\n"
        "                ^")


def test_error_libbpf_spelling_needs_the_provider() -> None:
    assert _error("usdt//bin/x:name") == (
        "invalid hook spec: libbpf's usdt/ spelling names the provider\n"
        "    usdt//bin/x:name\n"
        "         ^~~~~~~~~~~\n"
        "expected usdt/BINARY:PROVIDER:NAME, e.g. usdt//usr/bin/python3:python:function__entry")


def test_error_names_outside_the_alphabet() -> None:
    assert _error("usdt:/bin/x:py-thon:name") == (
        "invalid hook spec: character '-' cannot be in a USDT provider (letters, digits "
        "and '_')\n"
        "    usdt:/bin/x:py-thon:name\n"
        "                  ^")
    assert _error("usdt:/bin/x::n") == (
        "invalid hook spec: empty USDT provider\n"
        "    usdt:/bin/x::n\n"
        "                ^")
    assert _error('usdt:/bin/x:p:n"a').startswith(
        "invalid hook spec: character '\"' cannot be in a USDT probe name")
    assert "wildcard '*' in a single-hook spec" in _error("usdt:/bin/x:p:na*me")


def test_error_options() -> None:
    assert _error("usdt:/bin/x:p:n[maxactive=1]") == (
        "invalid hook spec: unknown option 'maxactive' for usdt\n"
        "    usdt:/bin/x:p:n[maxactive=1]\n"
        "                    ^~~~~~~~~\n"
        "options of usdt: pid=N")
    assert _error("usdt:/bin/x:p:n[pid=0]").startswith(
        "invalid hook spec: pid 0 is out of range")


def test_error_fields_of_the_class() -> None:
    with pytest.raises(SpecError, match="character ':' cannot be in a USDT probe name"):
        Usdt("/bin/x", "python:gc__start")
    with pytest.raises(SpecError, match="pid must be a positive int"):
        Usdt("/bin/x", "n", pid=True)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="binary must be a str"):
        Usdt(None, "n")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- notes (bytes)

def _desc(loc: int, base: int, sema: int, strings: bytes, fmt: str = "<3Q") -> bytes:
    return struct.pack(fmt, loc, base, sema) + strings


def test_parse_stapsdt_64_32_and_big_endian() -> None:
    strings = b"python\0gc__start\0-4@112(%rsp)\0"
    note = StapsdtNote("python", "gc__start", 0x4287F3, 0x8CC5A0, 0xA8426E, "-4@112(%rsp)")
    assert parse_stapsdt(_desc(0x4287F3, 0x8CC5A0, 0xA8426E, strings)) == note
    assert parse_stapsdt(_desc(0x4287F3, 0x8CC5A0, 0xA8426E, strings, ">3Q"),
                         little_endian=False) == note
    assert parse_stapsdt(_desc(0x4287F3, 0x8CC5A0, 0xA8426E, strings, "<3I"),
                         elfclass=32) == note
    assert parse_stapsdt(_desc(1, 0, 0, b"p\0n\0\0")).args == ""   # no arguments


def test_error_damaged_notes() -> None:
    with pytest.raises(NotAnElfError) as err:
        parse_stapsdt(b"\0" * 23, where="note 3")
    assert str(err.value) == ("note 3 is damaged: 23 bytes, shorter than its 3 addresses "
                              "(24 bytes)")
    with pytest.raises(NotAnElfError, match="expected provider, name and arguments"):
        parse_stapsdt(_desc(1, 0, 0, b"python\0gc__start"))   # no NUL after the name
    with pytest.raises(NotAnElfError, match="expected provider, name and arguments"):
        parse_stapsdt(_desc(1, 0, 0, b"\0name\0\0"))          # empty provider


# --------------------------------------------------------------------------- arguments

ARGS = [
    # GCC's x86-64 forms (Debian's python3.11, libstdc++ and the test target write these)
    ("-4@%edi", UsdtArg(4, True, "register", "edi", "di", 0, 0)),
    ("8@16(%rsp)", UsdtArg(8, False, "memory", "rsp", "sp", 0, 16)),
    ("-8@%rax", UsdtArg(8, True, "register", "rax", "ax", 0, 0)),
    ("4@$5", UsdtArg(4, False, "constant", None, None, 0, 5)),
    ("8@-8(%rbp)", UsdtArg(8, False, "memory", "rbp", "bp", 0, -8)),
    ("-4@112(%rsp)", UsdtArg(4, True, "memory", "rsp", "sp", 0, 112)),
    ("8@-80(%rbx)", UsdtArg(8, False, "memory", "rbx", "bx", 0, -80)),
    ("8@%r15", UsdtArg(8, False, "register", "r15", "r15", 0, 0)),
    ("-4@%r12d", UsdtArg(4, True, "register", "r12d", "r12", 0, 0)),
    ("2@%r8w", UsdtArg(2, False, "register", "r8w", "r8", 0, 0)),
    ("1@%r9b", UsdtArg(1, False, "register", "r9b", "r9", 0, 0)),
    ("2@%cx", UsdtArg(2, False, "register", "cx", "cx", 0, 0)),
    ("1@%dl", UsdtArg(1, False, "register", "dl", "dx", 0, 0)),
    ("-1@%sil", UsdtArg(1, True, "register", "sil", "si", 0, 0)),
    ("1@%ah", UsdtArg(1, False, "register", "ah", "ax", 8, 0)),
    ("8@(%rax)", UsdtArg(8, False, "memory", "rax", "ax", 0, 0)),
    ("8@0x10(%rdi)", UsdtArg(8, False, "memory", "rdi", "di", 0, 16)),
    ("-2@$-5", UsdtArg(2, True, "constant", None, None, 0, -5)),
    ("8@$0xffffffffffffffff", UsdtArg(8, False, "constant", None, None, 0, (1 << 64) - 1)),
]


@pytest.mark.parametrize(("text", "arg"), ARGS, ids=[t for t, _ in ARGS])
def test_parse_usdt_arg(text: str, arg: UsdtArg) -> None:
    assert parse_usdt_arg(text) == arg
    assert parse_usdt_arg(arg.spec()) == arg   # the rebuilt text means the same


def test_describe_arguments() -> None:
    assert [a.describe() for a in parse_usdt_args("-4@112(%rsp) 8@%rbx 4@$5 8@-8(%rbp)")] == [
        "signed 4 bytes in memory at %rsp+112", "unsigned 8 bytes in register %rbx",
        "unsigned 4 bytes, the constant 5", "unsigned 8 bytes in memory at %rbp-8"]
    assert parse_usdt_args("") == ()


BAD_ARGS = [
    ("8@foo(%rip)", "a %rip-relative operand (a global variable, addressed from the code) "
     "is not read"),
    ("8@8(%rip)", "a %rip-relative operand (a global variable, addressed from the code) "
     "is not read"),
    ("8@8(%rax,%rbx,4)", "indexed addresses (base, index, scale) are not read"),
    ("8@$sym", "a symbolic operand (a symbol's address or offset)"),
    ("8@sym+8(%rbx)", "a symbolic operand (a symbol's address or offset)"),
    ("8@8", "operand '8' is not %REG, OFFSET(%REG) or $CONSTANT"),
    ("3@%rax", "size 3 is not 1, 2, 4 or 8 bytes (- when signed)"),
    ("%rax", "no SIZE@ before the operand (the byte count is needed)"),
    ("8@%xmm0", "%xmm0 is not an x86-64 general purpose register"),
    ("8@16(%eax)", "an address is held in a 64-bit register, not %eax"),
    ("8@4294967296(%rax)", "offset 4294967296 is out of the signed 32-bit range"),
    ("8@$18446744073709551616", "constant 18446744073709551616 does not fit in 64 bits"),
    ("8@%rax);system(", "operand '%rax);system(' is not %REG, OFFSET(%REG) or $CONSTANT"),
]


@pytest.mark.parametrize(("text", "why"), BAD_ARGS, ids=[t for t, _ in BAD_ARGS])
def test_error_arguments_that_cannot_be_read(text: str, why: str) -> None:
    with pytest.raises(NotSupportedError) as err:
        parse_usdt_arg(text)
    assert str(err.value) == (
        f"USDT argument {text!r}: {why}; ebpfhooks reads x86-64 registers (%rdi, %eax, "
        "%r12d ...), memory at a register plus an integer offset (-8(%rbp)) and integer "
        "constants ($5)")
    assert err.value.missing == "a reader for this argument operand"


# --------------------------------------------------------------------------- locating

SEGMENTS = [Segment("PT_LOAD", 5, 0x1000, 0x401000, 0x1000, 0x1000),   # text, r-x
            Segment("PT_LOAD", 6, 0x2000, 0x603000, 0x100, 0x200)]     # data, rw-, bss after


def test_locate_and_the_prelink_adjustment() -> None:
    note = StapsdtNote("p", "n", 0x401010, 0x600000, 0x603008, "")
    assert locate(note, 0x600000, SEGMENTS, where="t") == (0x401010, 0x1010, 0x603008, 0x2008, 0)
    # prelink moved the file by -0x100 after the note was written: .stapsdt.base says so
    moved = StapsdtNote("p", "n", 0x401110, 0x600100, 0x603108, "")
    assert locate(moved, 0x600000, SEGMENTS, where="t") == (
        0x401010, 0x1010, 0x603008, 0x2008, -0x100)
    # a note without base (or a file without .stapsdt.base) is taken as written
    assert locate(moved._replace(base=0, semaphore=0), 0x600000, SEGMENTS,
                  where="t")[0] == 0x401110
    assert locate(note, None, SEGMENTS, where="t")[4] == 0
    nosema = note._replace(semaphore=0)
    assert locate(nosema, None, SEGMENTS, where="t")[2:4] == (0, 0)


def test_error_locations_outside_the_file() -> None:
    note = StapsdtNote("p", "n", 0x603000, 0, 0, "")
    with pytest.raises(NotAnElfError) as err:
        locate(note, None, SEGMENTS, where="f: p:n")
    assert str(err.value) == ("f: p:n: its location 0x603000 is outside every executable "
                              "segment of the file")
    bss = StapsdtNote("p", "n", 0x401000, 0, 0x603180, "")   # past filesz: no file offset
    with pytest.raises(NotAnElfError) as err:
        locate(bss, None, SEGMENTS, where="f: p:n")
    assert str(err.value) == ("f: p:n: its semaphore 0x603180 is outside the file-backed part "
                              "of every loaded segment")


# --------------------------------------------------------------------------- real files

def test_probes_of_pythons_notes() -> None:
    probes = {p.qualified: p for p in usdt_probes(_python())}
    assert {"python:gc__start", "python:function__entry", "python:line"} <= set(probes)
    gc = probes["python:gc__start"]
    out = subprocess.run(["readelf", "-n", str(PYTHON)], capture_output=True, text=True,
                         check=True).stdout
    block = out.split("Name: gc__start", 1)[1]
    assert f"Location: 0x{gc.vaddr:016x}" in block and f"Semaphore: 0x{gc.semaphore:016x}" in block
    assert gc.args == "-4@112(%rsp)" and gc.semaphore_offset and gc.adjustment == 0
    assert all(parse_usdt_args(p.args) is not None for p in probes.values())  # all readable


def test_the_built_target(usdt_target: Path) -> None:
    probes = usdt_probes(usdt_target)
    assert [p.qualified for p in probes] == ["ehk:tick", "ehk:multi", "ehk:multi"]
    tick = probes[0]
    syms = subprocess.run(["nm", str(usdt_target)], capture_output=True, text=True,
                          check=True).stdout
    sema = next(int(line.split()[0], 16) for line in syms.splitlines()
                if line.endswith(" ehk_tick_semaphore"))
    assert tick.semaphore == sema and tick.semaphore_offset
    assert [a.where for a in parse_usdt_args(tick.args)] == [
        "register", "register", "register", "register", "constant", "memory"]
    res = Hook.from_spec(f"usdt:{usdt_target}:ehk:multi").resolve()
    assert isinstance(res, UsdtResolution)
    assert [loc.file_offset for loc in res.locations] == [p.file_offset for p in probes[1:]]
    assert res.arguments_differ and res.semaphore_offset == 0


def _prelinked_copy(src: Path, dst: Path, shift: int) -> None:
    """A copy whose notes say it was linked ``shift`` bytes higher (as prelink leaves them)."""
    from ebpfhooks.elf.elffile import ElfFile

    data = bytearray(src.read_bytes())
    for note in ElfFile.open(src).notes(".note.stapsdt"):
        desc = note.offset + 12 + 8   # header (namesz, descsz, type), "stapsdt\0"
        for field in range(3):
            at = desc + 8 * field
            value = int.from_bytes(data[at:at + 8], "little")
            if value:
                data[at:at + 8] = (value + shift).to_bytes(8, "little")
    dst.write_bytes(bytes(data))


def test_prelinked_file_resolves_to_the_same_places(usdt_target: Path, tmp_path: Path) -> None:
    moved = tmp_path / "prelinked"
    _prelinked_copy(usdt_target, moved, 0x3000)
    assert [p.vaddr for p in usdt_probes(moved)] == [p.vaddr for p in usdt_probes(usdt_target)]
    assert [p.semaphore_offset for p in usdt_probes(moved)] == [
        p.semaphore_offset for p in usdt_probes(usdt_target)]
    res = Hook.from_spec(f"usdt:{moved}:ehk:tick").resolve()
    assert res.note == "the file was prelinked: locations moved by -0x3000 (.stapsdt.base)"


def test_error_probe_not_found() -> None:
    _python()
    with pytest.raises(UsdtProbeNotFoundError) as err:
        Hook.from_spec(f"usdt:{PYTHON}:python:gc_start").resolve()
    assert isinstance(err.value, LookupError)
    assert str(err.value).startswith(
        f"USDT probe 'python:gc_start' not found in the USDT probes of {PYTHON} "
        f"(.note.stapsdt); closest: usdt:{PYTHON}:python:gc__start, ")
    assert str(err.value).endswith(f"\nlist them with: ebpfhooks list 'usdt:{PYTHON}:*'")
    with pytest.raises(UsdtProbeNotFoundError) as err:
        Hook.from_spec(f"usdt:{PYTHON}:other:gc__start").resolve()
    assert err.value.candidates == (f"usdt:{PYTHON}:python:gc__start",)


def test_error_file_without_probes() -> None:
    with pytest.raises(UsdtProbeNotFoundError) as err:
        Hook.from_spec("usdt:/bin/true:main").resolve()
    assert str(err.value) == (
        "USDT probe 'main' not found in the USDT probes of /usr/bin/true (.note.stapsdt)\n"
        "/usr/bin/true has no USDT probes: it was built without <sys/sdt.h> probes (Python: "
        "--with-dtrace); `readelf -n FILE` shows a file's notes")


def test_error_name_in_two_providers(usdt_target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = usdt_probes(usdt_target)
    both = [real[0], real[0]._replace(provider="other")]
    monkeypatch.setattr(elf_usdt, "usdt_probes", lambda path: both)
    with pytest.raises(AmbiguousSymbolError) as err:
        Hook.from_spec(f"usdt:{usdt_target}:tick").resolve()
    assert str(err.value) == (
        f"USDT probe 'tick' is in 2 providers of {usdt_target}: ehk, other; name one: "
        f"usdt:{usdt_target}:ehk:tick, usdt:{usdt_target}:other:tick")
    hook = Hook.from_spec(f"usdt:{usdt_target}:other:tick")
    assert hook.resolve().provider == "other"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- listing, info

def _bpftrace_list(pattern: str) -> list[str]:
    if shutil.which("bpftrace") is None:
        not_possible("bpftrace is the oracle for listings")
    out = subprocess.run(["bpftrace", "-l", pattern], capture_output=True, text=True,
                         timeout=60, check=False)
    return out.stdout.splitlines()


@pytest.mark.live
@pytest.mark.parametrize("pattern", [
    f"usdt:{PYTHON}:*", f"usdt:{PYTHON}:gc*", f"usdt:{PYTHON}:*:gc*",
    f"usdt:{PYTHON}:python:function__*", f"usdt:{PYTHON}:python:line",
])
def test_listing_equals_bpftrace(live: None, pattern: str) -> None:
    _python()
    expected = _bpftrace_list(pattern)
    assert expected   # not vacuous
    assert discover.list_hooks(pattern) == expected


@pytest.mark.live
def test_listing_of_the_built_target_equals_bpftrace(live: None, usdt_target: Path) -> None:
    pattern = f"usdt:{usdt_target}:*"
    assert discover.list_hooks(pattern) == _bpftrace_list(pattern) == [
        f"usdt:{usdt_target}:ehk:multi", f"usdt:{usdt_target}:ehk:tick"]


def test_expand_builds_the_hooks(usdt_target: Path) -> None:
    hooks = list(ebpfhooks.expand(f"usdt:{usdt_target}:ehk:*"))
    assert hooks == [Usdt(str(usdt_target), "multi", provider="ehk"),
                     Usdt(str(usdt_target), "tick", provider="ehk")]


def test_error_listing_a_relative_glob() -> None:
    with pytest.raises(SpecError, match="a wildcard in the binary needs an absolute path"):
        discover.list_hooks("usdt:bin*:*")


def test_info_shows_the_semaphore_and_each_argument() -> None:
    _python()
    report = ebpfhooks.info("usdt:/usr/bin/python3.11:python:function__entry")
    res = Hook.from_spec("usdt:/usr/bin/python3.11:python:function__entry").resolve()
    assert isinstance(res, UsdtResolution)
    loc = res.locations[0]
    text = str(report).splitlines()
    assert text[2:9] == [
        "    file: /usr/bin/python3.11",
        "    probe: python:function__entry   locations: 1",
        f"    semaphore: {res.semaphore:#x} (file offset {res.semaphore_offset:#x}): counted "
        "up by the kernel while attached",
        f"    location 0: address {loc.vaddr:#x}   file offset {loc.file_offset:#x}",
        "        arg0: 8@%rbp           unsigned 8 bytes in register %rbp",
        "        arg1: 8@%r12           unsigned 8 bytes in register %r12",
        "        arg2: -4@%eax          signed 4 bytes in register %eax"]
    facts = report.to_dict()
    assert facts["kind"] == "usdt" and facts["semaphore_offset"] == res.semaphore_offset
    assert facts["locations"][0]["args"][2] == {
        "spec": "-4@%eax", "size": 4, "signed": True, "where": "register",
        "register": "eax", "offset": 0}


# --------------------------------------------------------------------------- generated C

def test_reader_c_of_gc_start() -> None:
    _python()
    assert ebpfhooks.usdt_args(GC_START) == "\n".join([
        "/* ebpfhooks: argument reader of USDT probe python:gc__start (1 location) */",
        "#include <uapi/linux/ptrace.h>",
        "#define USDT_PYTHON_GC__START_NARGS 1",
        "static __always_inline int usdt_python_gc__start_arg(struct pt_regs *ctx, int n, "
        "u64 *val)",
        "{",
        "    u64 raw = 0;",
        "    u64 r_sp = ctx->sp;",
        '    asm volatile("" : "+r"(r_sp));',
        "    switch (n) {",
        "    case 0:  /* -4@112(%rsp): signed 4 bytes in memory at %rsp+112 */",
        "        if (bpf_probe_read_user(&raw, 4, (void *)(r_sp + 112)))",
        "            return -1;",
        "        *val = (u64)(s64)(s32)(u32)(raw);",
        "        return 0;",
        "    }",
        "    return -1;",
        "}",
        ""])


def test_reader_c_conversions() -> None:
    args = parse_usdt_args("1@%ah -2@$-5 8@-16(%rbp) 2@%cx")
    text = reader_source("p", "a:b", [args], cookies=False)
    assert "*val = (u64)(u8)((r_ax >> 8));" in text
    assert "*val = 0xfffffffffffffffbULL;" in text       # -5 as a signed 2-byte value
    assert "(void *)(r_bp - 16)" in text and "*val = raw;" in text
    assert "*val = (u64)(u16)(r_cx);" in text
    assert "bpf_get_attach_cookie" not in text


def test_reader_c_switches_on_the_cookie_when_locations_differ() -> None:
    one, two = parse_usdt_args("-4@%edi"), parse_usdt_args("-4@8(%rdi)")
    text = reader_source("m", "a:b", [one, two], cookies=True)
    assert "switch (bpf_get_attach_cookie(ctx)) {  /* the location's index */" in text
    assert text.count("switch (n)") == 2
    same = reader_source("m", "a:b", [one, one], cookies=True)
    assert "bpf_get_attach_cookie" not in same    # equal arguments: no cookie needed
    with pytest.raises(ValueError, match="need cookies"):
        reader_source("m", "a:b", [one, two], cookies=False)


def test_error_reader_prefix_and_hook() -> None:
    _python()
    with pytest.raises(SpecError) as err:
        ebpfhooks.usdt_args(GC_START, "1st")
    assert str(err.value) == (
        "invalid hook spec: USDT reader prefix '1st' is not a C identifier (letters, digits "
        "and '_', not starting with a digit, at most 64 characters)")
    with pytest.raises(SpecError, match="usdt_args\\(\\) needs a usdt hook, got uprobe"):
        ebpfhooks.usdt_args("uprobe:/bin/bash:readline")
    assert Hook.from_spec(GC_START).c_args("gc").startswith(  # type: ignore[attr-defined]
        "/* ebpfhooks: argument reader of USDT probe python:gc__start")


def test_error_reader_of_differing_locations_without_cookies(
        usdt_target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "perf_link", lambda: Feature(
        "perf_link", FeatureStatus.NO, "pretend: kernel 5.10", None))
    with pytest.raises(NotSupportedError) as err:
        ebpfhooks.usdt_args(f"usdt:{usdt_target}:ehk:multi")
    assert str(err.value) == (
        f"usdt:{usdt_target}:ehk:multi: its 2 locations keep their arguments in different "
        "places, and telling them apart needs a BPF cookie per location, which this kernel "
        "cannot attach (BPF_PERF_EVENT links, kernel 5.15)")
    assert "#define USDT_EHK_TICK_NARGS 6" in ebpfhooks.usdt_args(f"usdt:{usdt_target}:ehk:tick")


def test_error_reader_of_an_unreadable_argument(
        usdt_target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = usdt_probes(usdt_target)
    monkeypatch.setattr(elf_usdt, "usdt_probes",
                        lambda path: [real[0]._replace(args="8@%rdi 8@sym(%rip)")])
    with pytest.raises(NotSupportedError) as err:
        ebpfhooks.usdt_args(f"usdt:{usdt_target}:ehk:tick")
    assert str(err.value).startswith(
        f"usdt:{usdt_target}:ehk:tick, location 0: USDT argument '8@sym(%rip)': a "
        "%rip-relative operand")
    assert "arg1: not readable: USDT argument '8@sym(%rip)'" in str(
        ebpfhooks.info(f"usdt:{usdt_target}:ehk:tick"))


# --------------------------------------------------------------------------- attach path

class _Fn:
    fd = 42


class _FakeBPF:
    """What the adapter needs of a bcc module to load a function."""

    def __init__(self) -> None:
        self.funcs: dict[bytes, Any] = {}

    def load_func(self, name: bytes, prog_type: int) -> _Fn:
        self.funcs[name] = _Fn()
        return self.funcs[name]


class _Probe:
    def __init__(self, calls: list[Any], args: tuple[Any, ...]) -> None:
        self.calls, self.args, self.perf_fd = calls, args, 9

    def close(self) -> None:
        self.calls.append(("close", self.args[2]))


@pytest.fixture
def fake_perf(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    fail_at: list[int] = []

    def perf_uprobe(prog_fd: int, path: str, offset: int, **kw: Any) -> _Probe:
        if offset in fail_at:
            raise ebpfhooks.AttachError("refused")
        calls.append(("open", prog_fd, path, offset, kw["pid"], kw["ref_ctr_offset"],
                      kw["cookie"]))
        return _Probe(calls, (prog_fd, path, offset))

    monkeypatch.setattr(bpfsys, "perf_uprobe", perf_uprobe)
    monkeypatch.setattr(adapter.core, "_bcc", types.SimpleNamespace(BPF=types.SimpleNamespace(
        KPROBE=2)))
    monkeypatch.setattr(features, "capabilities", lambda: frozenset({"CAP_SYS_ADMIN"}))
    calls.append(fail_at)
    return calls


def test_attach_every_location_with_semaphore_and_cookie(
        usdt_target: Path, fake_perf: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    fake_perf.pop(0)
    monkeypatch.setattr(features, "perf_link", lambda: Feature(
        "perf_link", FeatureStatus.YES, "pretend", None))
    pid = os.getpid()
    hook = Hook.from_spec(f"usdt:{usdt_target}:ehk:multi[pid={pid}]")
    res = hook.resolve()
    assert isinstance(res, UsdtResolution)
    path = str(res.path)
    with hook.attach(_FakeBPF(), "on_multi") as link:
        assert link.via == "bpf_link" and link.fd is None
        assert fake_perf == [("open", 42, path, loc.file_offset, pid, 0, i)
                             for i, loc in enumerate(res.locations)]
    assert fake_perf[2:] == [("close", loc.file_offset) for loc in res.locations]
    fake_perf.clear()
    tick = Hook.from_spec(f"usdt:{usdt_target}:ehk:tick").resolve()
    assert isinstance(tick, UsdtResolution)
    with Hook.from_spec(f"usdt:{usdt_target}:ehk:tick").attach(_FakeBPF(), "on_tick") as link:
        assert link.via == "perf_event" and link.fd == 9
    assert fake_perf[0] == ("open", 42, path, tick.locations[0].file_offset, None,
                            tick.semaphore_offset, None)


def test_attach_is_all_or_nothing(usdt_target: Path, fake_perf: list[Any]) -> None:
    fail_at = fake_perf.pop(0)
    hook = Hook.from_spec(f"usdt:{usdt_target}:ehk:multi")
    res = hook.resolve()
    assert isinstance(res, UsdtResolution)
    first, second = (loc.file_offset for loc in res.locations)
    fail_at.append(second)
    with pytest.raises(ebpfhooks.AttachError, match="refused"):
        hook.attach(_FakeBPF(), "on_multi")
    assert [c[0] for c in fake_perf] == ["open", "close"]
    assert fake_perf[1] == ("close", first)
