"""Property tests: every parser returns a result or its own typed error, for any input.

Bounded in time: each property has ``max_examples`` (``EBPFHOOKS_FUZZ_EXAMPLES``
scales them: 1.0 by default) and a per-example deadline; the whole file runs in
well under a minute. Hypothesis keeps failing examples in .hypothesis/ and
replays them first.

* spec parser: any text -> a Hook or SpecError; every hook round-trips via str();
* tracepoint format parser -> TracepointFormat or TracefsFormatError;
* kallsyms parser -> list[KSym] or KallsymsFormatError;
* ld.so.cache parser -> entries or LdCacheFormatError;
* ELF symbol reader on real ELF files truncated, with flipped bytes and with huge
  counts/sizes -> symbols or an EbpfHooksError (NotAnElfError, WrongArchitectureError),
  never an allocation larger than the file.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import resource
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebpfhooks import Hook, SpecError
from ebpfhooks.errors import (
    EbpfHooksError,
    KallsymsFormatError,
    LdCacheFormatError,
    TracefsFormatError,
)
from ebpfhooks.kernel.kallsyms import parse_kallsyms
from ebpfhooks.kernel.tracefs import parse_format

SCALE = float(os.environ.get("EBPFHOOKS_FUZZ_EXAMPLES", "1"))
FIXTURES = Path(__file__).parent / "fixtures" / "kernel"


def examples(n: int) -> int:
    return max(10, int(n * SCALE))


FAST = settings(max_examples=examples(1000), deadline=500,
                suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- specs

KIND_WORDS = ["kprobe", "k", "kretprobe", "kr", "tracepoint", "t", "tp", "rawtracepoint",
              "rt", "raw_tp", "uprobe", "u", "uretprobe", "ur", "xdp", "raw_socket", "fentry",
              "KPROBE", "tp/", "kprobe/", "uprobe/", "raw_tp/", "usdt", "usdt/"]
PIECES = ["vfs_read", "syscalls", "sys_enter_openat", "/bin/bash", "libc", "readline", "lo",
          "0x10", "+", ":", "/", "[", "]", "pid=1", "maxactive=2", "skb", "drv", "=", ",",
          "..", "\x00", "\n", '"', ";", ")", "*", "file_offset=", "99999999999999999999",
          "-1", " ", "é", "\u202e", "a" * 300]
spec_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(KIND_WORDS + PIECES), max_size=8).map("".join),
    st.tuples(st.sampled_from(KIND_WORDS), st.lists(st.sampled_from(PIECES), max_size=6))
    .map(lambda t: t[0] + ":" + "".join(t[1])),
)


@FAST
@given(spec_text)
def test_spec_parser_gives_a_hook_or_spec_error(text: str) -> None:
    try:
        hook = Hook.from_spec(text)
    except SpecError as err:
        assert str(err).startswith("invalid hook spec")
        return
    assert Hook.from_spec(str(hook)) == hook
    assert str(Hook.from_spec(str(hook))) == str(hook)


# ------------------------------------------------------------------- tracepoint format

FORMAT = (FIXTURES / "sched_process_exec.format").read_text()
format_lines = FORMAT.splitlines()


@st.composite
def mutated_format(draw: st.DrawFn) -> str:
    lines = list(format_lines)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["del", "dup", "edit", "insert"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "del" and lines:
            del lines[i]
        elif op == "dup" and lines:
            lines.insert(i, lines[i])
        elif op == "edit" and lines:
            line = lines[i]
            j = draw(st.integers(0, len(line)))
            lines[i] = line[:j] + draw(st.text(max_size=6)) + line[j + 1:]
        else:
            lines.insert(i, draw(st.text(max_size=40)))
    return "\n".join(lines)


@FAST
@given(st.one_of(st.text(max_size=300), mutated_format()))
def test_tracepoint_format_parser(text: str) -> None:
    try:
        fmt = parse_format(text)
    except TracefsFormatError:
        return
    assert isinstance(fmt.fields, (list, tuple))


# -------------------------------------------------------------------------- kallsyms

KALLSYMS = (FIXTURES / "kallsyms_modules.txt").read_text()
ks_line = st.one_of(
    st.text(max_size=60),
    st.tuples(st.text("0123456789abcdefxX", max_size=20), st.text(max_size=3),
              st.text(max_size=20), st.sampled_from(["", "\t[ext4]", "\t[", " []", "\t[a b]"]))
    .map(lambda t: f"{t[0]} {t[1]} {t[2]}{t[3]}"),
    st.sampled_from(KALLSYMS.splitlines()),
)


@FAST
@given(st.lists(ks_line, max_size=20).map("\n".join))
def test_kallsyms_parser(text: str) -> None:
    try:
        syms = parse_kallsyms(text)
    except KallsymsFormatError:
        return
    assert all(isinstance(s.name, str) and s.address >= 0 for s in syms)


# ---------------------------------------------------------------------------- ld.so.cache

def _ldcache_bytes() -> bytes:
    path = Path("/etc/ld.so.cache")
    data = path.read_bytes() if path.exists() else b""
    return data[:4096] if data else b"glibc-ld.so.cache1.1" + bytes(28)


LDCACHE = _ldcache_bytes()


@st.composite
def mutated_bytes(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base[: draw(st.integers(0, len(base)))])
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if data and draw(st.booleans()):  # a huge count somewhere in the header
        i = draw(st.integers(0, min(len(data), 64) - 1))
        data[i:i + 4] = struct.pack("<I", draw(st.sampled_from([0xFFFFFFFF, 0x7FFFFFFF,
                                                                 0x10000000, 1 << 20])))
    return bytes(data)


@FAST
@given(st.one_of(st.binary(max_size=200), mutated_bytes(LDCACHE)))
def test_ld_so_cache_parser(data: bytes) -> None:
    from ebpfhooks.elf.ldcache import find_in_ld_so_cache, parse_ld_so_cache

    try:
        entries = parse_ld_so_cache(data)
    except LdCacheFormatError:
        entries = None
    if entries is not None:
        assert len(entries) * 12 <= len(data)
    with contextlib.suppress(LdCacheFormatError):
        find_in_ld_so_cache(data, "libc.so.6")


# ------------------------------------------------------------------------------ ELF

ELF_ERRORS = (EbpfHooksError,)


@pytest.fixture(scope="module")
def elf_seeds(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    seeds = []
    for name in ("true", "bash"):
        path = shutil.which(name)
        if path:
            seeds.append(Path(path).read_bytes()[:200_000])
    return seeds


_counter = itertools.count()


@st.composite
def mutated_elf(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    how = draw(st.sampled_from(["truncate", "flip", "huge", "mix"]))
    if how in ("truncate", "mix"):
        data = data[: draw(st.integers(0, len(data)))]
    if how in ("flip", "mix"):
        for _ in range(draw(st.integers(1, 16))):
            if data:
                i = draw(st.integers(0, len(data) - 1))
                data[i] ^= 1 << draw(st.integers(0, 7))
    if how in ("huge", "mix") and len(data) >= 64:
        # e_phoff/e_shoff (8 bytes), e_phnum/e_shnum (2 bytes), or a section header field
        field = draw(st.sampled_from([(0x20, 8), (0x28, 8), (0x38, 2), (0x3C, 2), (0x3E, 2),
                                      (0x3A, 2), (0x36, 2)]))
        off, size = field
        big = (1 << (8 * size)) - 1 - draw(st.integers(0, 3))
        data[off:off + size] = big.to_bytes(size, "little")
        shoff = int.from_bytes(data[0x28:0x30], "little")
        if shoff + 64 * 8 <= len(data) and draw(st.booleans()):
            # blow up sh_size / sh_offset of a section header
            sec = shoff + 64 * draw(st.integers(1, 7))
            data[sec + draw(st.sampled_from([0x18, 0x20, 0x38])):][:8] = (1 << 63).to_bytes(8,
                                                                                   "little")
    return bytes(data)


def test_elf_symbol_reader_on_mutated_files(elf_seeds: list[bytes], tmp_path: Path) -> None:
    from ebpfhooks.elf.resolve import function_symbols

    if not elf_seeds:
        pytest.fail("no ELF seed (/usr/bin/true) on this system")
    # a memory ceiling: a parser that believes a huge count must fail, not swap
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = 4 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY
                                            else min(limit, hard), hard))
    try:
        @settings(max_examples=examples(400), deadline=2000,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(st.sampled_from(elf_seeds).flatmap(mutated_elf))
        def check(data: bytes) -> None:
            path = tmp_path / f"elf{next(_counter)}"
            path.write_bytes(data)
            try:
                syms = function_symbols(path, debug_root=tmp_path / "nodebug")
            except ELF_ERRORS:
                return
            finally:
                path.unlink()
            assert all(s.name is not None for s in syms)

        check()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ------------------------------------------------------------------------ hostile names

HOSTILE = ['"', "'", "\n", ";", ")", "(", "/", "..", "\x00", " ", "\\", "$", "`", "{", "%",
           "\t", ">", "|"]


@settings(max_examples=examples(500), deadline=500)
@given(st.sampled_from(HOSTILE), st.text("abc_", min_size=0, max_size=5),
       st.text("abc_", min_size=0, max_size=5), st.booleans())
def test_hostile_names_never_reach_tracefs_or_c(bad: str, pre: str, post: str,
                                                long: bool) -> None:
    """Every kernel-side name field, built directly or through a spec, refuses them."""
    from ebpfhooks import Kprobe, Kretprobe, RawSocket, RawTracepoint, Tracepoint, Xdp

    name = pre + bad + post + ("x" * 10_000 if long else "")
    builders = [
        lambda: Kprobe(name), lambda: Kretprobe(name), lambda: Kprobe("f", module=name),
        lambda: Tracepoint(name, "ev"), lambda: Tracepoint("cat", name),
        lambda: RawTracepoint(name), lambda: Xdp(name), lambda: RawSocket(name),
        lambda: Hook.from_spec(f"kprobe:{name}"), lambda: Hook.from_spec(f"t:cat:{name}"),
        lambda: Hook.from_spec(f"t:{name}:ev"), lambda: Hook.from_spec(f"rt:{name}"),
        lambda: Hook.from_spec(f"xdp:{name}"), lambda: Hook.from_spec(f"raw_socket:{name}"),
    ]
    for build in builders:
        try:
            hook = build()
        except SpecError:
            continue
        # only a spelling that splits into valid names may parse; then no field holds `bad`
        # ('..' inside a longer name is one harmless path component: 'a..b' is a valid
        # kernel symbol or interface name; '..' alone is refused)
        fields = [str(getattr(hook, name)) for name in hook._fields]
        assert ".." not in fields, (name, hook)
        assert bad == ".." or not any(bad in f for f in fields), (name, hook)
