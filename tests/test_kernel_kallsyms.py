"""Tests of ebpfhooks.kernel.kallsyms: parser and index on fixtures, then /proc/kallsyms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import not_possible
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfhooks.errors import SymbolNotFoundError
from ebpfhooks.kernel import kallsyms as ks
from ebpfhooks.kernel.kallsyms import Kallsyms, KallsymsFormatError, KSym, parse_kallsyms

FIXTURES = Path(__file__).parent / "fixtures" / "kernel"
MODULES_TEXT = (FIXTURES / "kallsyms_modules.txt").read_text()
HIDDEN_TEXT = (FIXTURES / "kallsyms_hidden.txt").read_text()


# --------------------------------------------------------------------------- parser


def test_parse_kallsyms_module_symbols():
    syms = parse_kallsyms(MODULES_TEXT)
    assert len(syms) == 19
    conn = [s for s in syms if s.name == "nf_conntrack_in"]
    assert conn == [KSym(0xFFFFFFFFA05EF110, "t", "nf_conntrack_in", "nf_conntrack")]
    assert syms[0] == KSym(0xFFFFFFFF81000000, "T", "_stext", None)
    assert not any(s.address_hidden for s in syms)


def test_parse_kallsyms_hidden_addresses():
    syms = parse_kallsyms(HIDDEN_TEXT)
    assert all(s.address == 0 and s.address_hidden for s in syms)
    assert syms[0].real_address is None
    assert str(syms[0]) == "(hidden) T _stext"


@pytest.mark.parametrize(
    ("letter", "description", "is_function"),
    [
        ("T", "global text (code)", True),
        ("t", "local text (code)", True),
        ("W", "global weak symbol (text in the kernel)", True),
        ("w", "local weak symbol (text in the kernel)", True),
        ("D", "global initialised data", False),
        ("d", "local initialised data", False),
        ("R", "global read-only data", False),
        ("r", "local read-only data", False),
        ("B", "global uninitialised data (bss)", False),
        ("b", "local uninitialised data (bss)", False),
        ("V", "global weak object", False),
        ("U", "undefined, or a unique global", False),
        ("A", "absolute value", False),
        ("?", "unknown symbol type '?'", False),
    ],
)
def test_type_description(letter, description, is_function):
    sym = KSym(0, letter, "x")
    assert sym.type_description == description
    assert sym.is_function is is_function


def test_error_parse_kallsyms_bad_address():
    with pytest.raises(KallsymsFormatError) as info:
        parse_kallsyms("ffffffff81000000 T ok\nzz T bad\n")
    assert str(info.value) == (
        "kallsyms line 2: expected a hexadecimal address, got 'zz' in 'zz T bad'"
    )
    assert isinstance(info.value, ValueError)


def test_error_parse_kallsyms_bad_shape():
    with pytest.raises(KallsymsFormatError) as info:
        parse_kallsyms("ffffffff81000000 T\n")
    assert str(info.value) == (
        "kallsyms line 1: expected 'ADDRESS TYPE NAME' optionally followed by '[MODULE]', "
        "got 'ffffffff81000000 T'"
    )
    with pytest.raises(KallsymsFormatError, match="one-letter symbol type, got 'TT'"):
        parse_kallsyms("ffffffff81000000 TT x\n")
    with pytest.raises(KallsymsFormatError, match=r"module name in brackets"):
        parse_kallsyms("ffffffff81000000 t x\tmod\n")
    with pytest.raises(KallsymsFormatError):
        Kallsyms.from_text("ffffffff81000000 T ok\nzz T bad\n")


def test_str_of_ksym():
    assert str(KSym(0xFFFFFFFFA05EF110, "t", "nf_conntrack_in", "nf_conntrack")) == (
        "0xffffffffa05ef110 t nf_conntrack_in [nf_conntrack]"
    )


# --------------------------------------------------------------------------- index


@pytest.fixture(scope="module")
def table() -> Kallsyms:
    return Kallsyms.from_text(MODULES_TEXT)


def test_index_matches_parser(table):
    syms = parse_kallsyms(MODULES_TEXT)
    assert len(table) == len(syms)
    for sym in syms:
        assert sym in table.lookup(sym.name)
    assert not table.addresses_hidden


def test_lookup_duplicates_in_file_order(table):
    found = table.lookup("ptdump_show")
    assert [(hex(s.address), s.module) for s in found] == [
        ("0xffffffff81002000", None),
        ("0xffffffff81003000", None),
        ("0xffffffffa05f0000", "some_module"),
    ]
    assert table.lookup("nope") == []
    assert "ptdump_show" in table and "nope" not in table


def test_module_symbol(table):
    (sym,) = table.lookup("nf_conntrack_in")
    assert sym.module == "nf_conntrack" and sym.type == "t" and sym.is_function


def test_functions_skip_padding_and_data(table):
    names = [s.name for s in table.functions()]
    assert "do_one_initcall" in names and "arch_cpu_idle" in names
    assert "__pfx_do_one_initcall" not in names
    assert "jiffies" not in names and "linux_banner" not in names
    assert "__pfx_do_one_initcall" in [s.name for s in table.functions(include_padding=True)]


def test_variants(table):
    assert table.variants("tcp_v4_rcv") == ["tcp_v4_rcv.isra.0", "tcp_v4_rcv.isra.0.cold"]
    assert table.variants("tcp_v4_rcv.isra.0") == ["tcp_v4_rcv.isra.0", "tcp_v4_rcv.isra.0.cold"]
    assert table.variants("jiffies") == []


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("f.isra.0", "f"), ("f.constprop.12", "f"), ("f.part.0", "f"), ("f.cold", "f"),
        ("f.llvm.123456789", "f"), ("f.constprop.0.isra.0.cold", "f"), ("f.lto_priv.0", "f"),
        ("f", "f"), ("f.E_copy", "f.E_copy"), ("f.slowpath", "f.slowpath"),
    ],
)
def test_strip_variant_suffix(name, base):
    assert ks.strip_variant_suffix(name) == base


def test_close_matches(table):
    assert table.close_matches("tcp_v4_rcv") == ["tcp_v4_rcv.isra.0", "tcp_v4_rcv.isra.0.cold"]
    assert table.close_matches("do_sys_openat3")[0] == "do_sys_openat2"
    assert "__pfx_do_one_initcall" not in table.close_matches("do_one_initcal")
    assert table.close_matches("") == []


def test_syscall_prefix_prefers_native(table):
    assert table.syscall_prefix("x86_64") == "__x64_sys_"
    assert table.syscall_prefix("i686") == "__ia32_sys_"
    assert table.syscall_prefix("aarch64") == "__x64_sys_"  # only what exists counts
    arm = Kallsyms.from_text("ffff800008000000 T __arm64_sys_bpf\n")
    assert arm.syscall_prefix("aarch64") == "__arm64_sys_"
    old = Kallsyms.from_text("ffffffff81000000 T sys_bpf\n")
    assert old.syscall_prefix("x86_64") == "sys_"


def test_error_syscall_prefix_none():
    with pytest.raises(SymbolNotFoundError, match="symbol 'sys_bpf' not found in /proc/kallsyms"):
        Kallsyms.from_text("ffffffff81000000 T foo\n").syscall_prefix("x86_64")


def test_error_require_names_candidates(table):
    with pytest.raises(SymbolNotFoundError) as info:
        table.require("tcp_v4_rcvv")
    assert str(info.value).startswith(
        "symbol 'tcp_v4_rcvv' not found in /proc/kallsyms; closest: tcp_v4_rcv"
    )
    assert isinstance(info.value, LookupError)
    with pytest.raises(SymbolNotFoundError):
        table.require("jiffies", functions_only=True)
    assert table.require("jiffies")[0].type == "D"


def test_hidden_table():
    hidden = Kallsyms.from_text(HIDDEN_TEXT)
    assert hidden.addresses_hidden
    (sym,) = hidden.lookup("do_sys_openat2")
    assert sym.address_hidden and sym.real_address is None
    assert "addresses hidden" in repr(hidden)


def test_from_bytes_and_slow_path_agree():
    fast = Kallsyms.from_bytes(MODULES_TEXT.encode())
    # uneven address widths force the line-by-line path
    uneven = MODULES_TEXT.replace("ffffffff81000000 T _stext", "81000000 T _stext", 1)
    slow = Kallsyms.from_text(uneven)
    for sym in parse_kallsyms(MODULES_TEXT)[1:]:
        assert fast.lookup(sym.name) == slow.lookup(sym.name)
    assert slow.lookup("_stext")[0].address == 0x81000000


def test_32bit_width():
    table = Kallsyms.from_text("c1000000 T _stext\nc1000010 t foo\n")
    assert table.lookup("foo")[0].address == 0xC1000010


def test_empty_table():
    empty = Kallsyms.from_text("")
    assert len(empty) == 0 and not empty.addresses_hidden and empty.lookup("x") == []


_names = st.from_regex(r"[a-z_][a-z0-9_]{0,12}(\.isra\.0|\.cold)?", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**64 - 1), st.sampled_from("TtWwDdRrBb"), _names,
            st.one_of(st.none(), st.from_regex(r"[a-z_]{1,8}", fullmatch=True)),
        ),
        min_size=1, max_size=40,
    )
)
def test_index_equals_parser_on_generated_tables(rows):
    # modules come after the core kernel, as in the real file
    rows = sorted(rows, key=lambda r: r[3] is not None)
    text = "".join(
        f"{a:016x} {t} {n}" + (f"\t[{m}]" if m else "") + "\n" for a, t, n, m in rows
    )
    parsed = parse_kallsyms(text)
    table = Kallsyms.from_text(text)
    assert len(table) == len(parsed)
    for name in {s.name for s in parsed}:
        assert table.lookup(name) == [s for s in parsed if s.name == name]


# --------------------------------------------------------------------------- live


@pytest.fixture(scope="module")
def live() -> Kallsyms:
    if not Path("/proc/kallsyms").exists():
        not_possible("/proc/kallsyms is missing")
    ks.clear_cache()
    return ks.index()


def test_live_known_symbol(live):
    syms = live.lookup("do_sys_openat2")
    assert syms and all(s.type in "tT" for s in syms)
    assert len(live) > 10_000
    assert ks.index() is live
    if os.geteuid() == 0 and Path("/proc/sys/kernel/kptr_restrict").read_text().strip() == "0":
        assert not live.addresses_hidden and syms[0].address > 0


def test_live_matches_parser_for_a_sample(live):
    text = Path("/proc/kallsyms").read_text()
    lines = text.splitlines()
    sample = parse_kallsyms("\n".join(lines[:: max(1, len(lines) // 500)]))
    for sym in sample:
        assert sym in live.lookup(sym.name)


def test_live_syscall_prefix(live):
    expected = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_"}.get(os.uname().machine)
    if expected:
        assert live.syscall_prefix() == expected


def test_live_reload_lookup_and_close_match(live):
    # speed is measured in bench/, never asserted in tests
    ks.index(reload=True)
    assert ks.index().lookup("vfs_read")
    assert ks.index().close_matches("vfs_reed")[0] == "vfs_read"
