"""The spec parser: every accepted form, every error with its message, round trips."""

from __future__ import annotations

import pytest

import ebpfhooks
from ebpfhooks import (
    Address,
    FileOffset,
    Hook,
    Kprobe,
    Kretprobe,
    RawSocket,
    RawTracepoint,
    SpecError,
    Symbol,
    Tracepoint,
    Uprobe,
    Uretprobe,
    Xdp,
    XdpMode,
)

ACCEPTED = [
    # bpftrace forms and aliases
    ("kprobe:do_sys_openat2", Kprobe("do_sys_openat2")),
    ("k:do_sys_openat2", Kprobe("do_sys_openat2")),
    ("KPROBE:vfs_read", Kprobe("vfs_read")),
    ("Kprobe:vfs_read+0x10", Kprobe("vfs_read", 16)),
    ("kprobe:vfs_read+16", Kprobe("vfs_read", 16)),
    ("kprobe:vfs_read+0", Kprobe("vfs_read")),
    ("kprobe:nf_conntrack:nf_conntrack_in", Kprobe("nf_conntrack_in", module="nf_conntrack")),
    ("kprobe:do_execveat_common.isra.0", Kprobe("do_execveat_common.isra.0")),
    ("kretprobe:vfs_read", Kretprobe("vfs_read")),
    ("kr:vfs_read", Kretprobe("vfs_read")),
    ("kretprobe:vfs_read[maxactive=16]", Kretprobe("vfs_read", maxactive=16)),
    ("kretprobe:ext4:ext4_file_open", Kretprobe("ext4_file_open", module="ext4")),
    ("tracepoint:syscalls:sys_enter_openat", Tracepoint("syscalls", "sys_enter_openat")),
    ("t:syscalls:sys_enter_openat", Tracepoint("syscalls", "sys_enter_openat")),
    ("TRACEPOINT:sched:sched_switch", Tracepoint("sched", "sched_switch")),
    ("rawtracepoint:sched_switch", RawTracepoint("sched_switch")),
    ("raw_tracepoint:sys_enter", RawTracepoint("sys_enter")),
    ("rt:sys_enter", RawTracepoint("sys_enter")),
    ("rawtracepoint:kvm:kvm_exit", RawTracepoint("kvm_exit", module="kvm")),
    ("uprobe:/bin/bash:readline", Uprobe("/bin/bash", Symbol("readline"))),
    ("u:/bin/bash:readline", Uprobe("/bin/bash", "readline")),
    ("uprobe:bash:readline", Uprobe("bash", "readline")),
    ("uprobe:libc:malloc", Uprobe("libc", "malloc")),
    ("uprobe:c:malloc", Uprobe("c", "malloc")),
    ("uprobe:./a.out:main", Uprobe("./a.out", "main")),
    ("uprobe:/bin/bash:readline+4", Uprobe("/bin/bash", Symbol("readline", 4))),
    ("uprobe:/bin/bash:0x1139", Uprobe("/bin/bash", Address(0x1139))),
    ("uprobe:/bin/bash:4409", Uprobe("/bin/bash", Address(4409))),
    ("uprobe:/bin/bash:file_offset=0x1139", Uprobe("/bin/bash", FileOffset(0x1139))),
    ("uprobe:libc:malloc@@GLIBC_2.2.5", Uprobe("libc", "malloc@@GLIBC_2.2.5")),
    ("uprobe:libc:memcpy@GLIBC_2.2.5", Uprobe("libc", "memcpy@GLIBC_2.2.5")),
    ("uprobe:/bin/bash:readline[pid=42]", Uprobe("/bin/bash", "readline", pid=42)),
    ("uretprobe:/bin/bash:readline", Uretprobe("/bin/bash", "readline")),
    ("ur:/bin/bash:readline[pid=7]", Uretprobe("/bin/bash", "readline", pid=7)),
    ("uretprobe:/bin/bash:0x10", Uretprobe("/bin/bash", Address(0x10))),
    ("uprobe:/opt/a:b/prog:main", Uprobe("/opt/a:b/prog", "main")),
    ("xdp:lo", Xdp("lo")),
    ("xdp:lo:skb", Xdp("lo", XdpMode.SKB)),
    ("xdp:lo:generic", Xdp("lo", XdpMode.SKB)),
    ("xdp:eth0:native", Xdp("eth0", XdpMode.DRV)),
    ("xdp:eth0:drv", Xdp("eth0", XdpMode.DRV)),
    ("xdp:eth0:hw", Xdp("eth0", XdpMode.HW)),
    ("xdp:eth0:auto", Xdp("eth0")),
    ("xdp:veth-a.10", Xdp("veth-a.10")),
    ("raw_socket:lo", RawSocket("lo")),
    # libbpf SEC() forms
    ("kprobe/do_sys_openat2", Kprobe("do_sys_openat2")),
    ("kprobe/vfs_read+0x10", Kprobe("vfs_read", 16)),
    ("kretprobe/vfs_read", Kretprobe("vfs_read")),
    ("tp/syscalls/sys_enter_openat", Tracepoint("syscalls", "sys_enter_openat")),
    ("tracepoint/syscalls/sys_enter_openat", Tracepoint("syscalls", "sys_enter_openat")),
    ("raw_tp/sched_switch", RawTracepoint("sched_switch")),
    ("raw_tracepoint/sys_enter", RawTracepoint("sys_enter")),
    ("uprobe//bin/bash:readline", Uprobe("/bin/bash", "readline")),
    ("uprobe//bin/bash:readline+8", Uprobe("/bin/bash", Symbol("readline", 8))),
    ("uprobe/libc.so.6:malloc", Uprobe("libc.so.6", "malloc")),
    ("uprobe//bin/bash:0x1139", Uprobe("/bin/bash", FileOffset(0x1139))),
    ("uretprobe//bin/bash:readline", Uretprobe("/bin/bash", "readline")),
]


@pytest.mark.parametrize(("spec", "expected"), ACCEPTED, ids=[s for s, _ in ACCEPTED])
def test_accepted_forms(spec: str, expected: Hook) -> None:
    hook = Hook.from_spec(spec)
    assert hook == expected
    assert type(hook) is type(expected)
    assert ebpfhooks.from_spec(spec) == expected


@pytest.mark.parametrize("hook", [h for _, h in ACCEPTED], ids=[s for s, _ in ACCEPTED])
def test_round_trip(hook: Hook) -> None:
    assert Hook.from_spec(str(hook)) == hook
    assert str(Hook.from_spec(str(hook))) == str(hook)


CANONICAL = [
    ("k:vfs_read+16", "kprobe:vfs_read+0x10"),
    ("kr:vfs_read[maxactive=16]", "kretprobe:vfs_read[maxactive=16]"),
    ("t:syscalls:sys_enter_openat", "tracepoint:syscalls:sys_enter_openat"),
    ("raw_tp/sched_switch", "rawtracepoint:sched_switch"),
    ("u:/bin/bash:4409", "uprobe:/bin/bash:0x1139"),
    ("uprobe//bin/bash:0x1139", "uprobe:/bin/bash:file_offset=0x1139"),
    ("xdp:lo:generic", "xdp:lo:skb"),
    ("xdp:lo:auto", "xdp:lo"),
    ("ur:bash:readline[pid=5]", "uretprobe:bash:readline[pid=5]"),
]


@pytest.mark.parametrize(("spec", "canonical"), CANONICAL)
def test_canonical_spelling(spec: str, canonical: str) -> None:
    assert str(Hook.from_spec(spec)) == canonical


def test_hooks_are_hashable_and_distinct_by_kind() -> None:
    a = Uprobe("/bin/bash", "readline")
    b = Uretprobe("/bin/bash", "readline")
    assert a != b
    assert len({a, b, Uprobe("/bin/bash", "readline")}) == 2
    with pytest.raises(AttributeError):
        a.binary = "/bin/sh"  # type: ignore[misc]


def test_from_spec_on_a_kind_checks_the_kind() -> None:
    assert Tracepoint.from_spec("t:sched:sched_switch") == Tracepoint("sched", "sched_switch")
    with pytest.raises(SpecError) as err:
        Tracepoint.from_spec("kprobe:vfs_read")
    assert "expected a tracepoint spec, got a kprobe one" in str(err.value)


def test_hooks_md_facts_are_class_data() -> None:
    table = {cls.kind: (cls.bcc_entry, cls.stable, cls.overhead) for cls in ebpfhooks.KINDS}
    assert table == {
        "kprobe": ("attach_kprobe", False, "very low"),
        "kretprobe": ("attach_kretprobe", False, "very low"),
        "tracepoint": ("attach_tracepoint", True, "moderate"),
        "rawtracepoint": ("attach_raw_tracepoint", True, "low"),
        "xdp": ("attach_xdp", True, "very low"),
        "uprobe": ("attach_uprobe", False, "very low"),
        "uretprobe": ("attach_uretprobe", False, "very low"),
        "raw_socket": ("attach_raw_socket", True, "very low"),
        "usdt": ("USDT.enable_probe", True, "very low"),
        **{k: ("attach_perf_event", True, "low")
           for k in ("profile", "interval", "software", "hardware")},
        "fentry": ("attach_kfunc", False, "very low"),
        "fexit": ("attach_kretfunc", False, "very low"),
        "tp_btf": ("attach_raw_tracepoint", True, "low"),
        "lsm": ("attach_lsm", False, "very low"),
    }
    for cls in ebpfhooks.KINDS:
        assert cls.hooks and cls.fires and cls.min_kernel > (3, 0)


def test_one_word_per_kind_everywhere() -> None:
    """The kind word of a class is the word its spec starts with, and every alias maps to it."""
    from ebpfhooks.hooks import REGISTRY

    for cls in ebpfhooks.KINDS:
        for word in (cls.kind, *cls.aliases, *cls.libbpf):
            assert REGISTRY.get(word) is cls and REGISTRY.get(word.upper()) is cls
    for spec in ("rawtracepoint:sched_switch", "raw_tracepoint:sys_enter", "rt:sys_enter",
                 "raw_tp/sys_enter"):
        hook = Hook.from_spec(spec)
        assert hook.kind == "rawtracepoint"
        assert str(hook).split(":", 1)[0] == hook.kind


def _error(spec: str) -> str:
    with pytest.raises(SpecError) as info:
        Hook.from_spec(spec)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_error_unknown_kind_suggests_closest() -> None:
    assert _error("kprob:vfs_read") == (
        "invalid hook spec: unknown hook kind 'kprob'\n"
        "    kprob:vfs_read\n"
        "    ^~~~~\n"
        "did you mean 'kprobe'? kinds: kprobe, kretprobe, tracepoint, rawtracepoint, "
        "xdp, uprobe, uretprobe, raw_socket, usdt, profile, interval, software, hardware, "
        "fentry, fexit, tp_btf, lsm"
    )


def test_error_other_tools_kind() -> None:
    msg = _error("iter:task")
    assert "ebpfhooks does not attach 'iter' hooks" in msg
    assert "    ^~~~\n" in msg


@pytest.mark.parametrize("spec", ["fmod_ret/update_socket_protocol", "fmod_ret.s/f",
                                  "lsm.s/file_open", "lsm_cgroup/socket_bind", "freplace/f"])
def test_error_libbpf_sections_of_other_program_types(spec: str) -> None:
    # libbpf's SEC() words for program types ebpfhooks does not attach: not a typo of
    # fentry or lsm (bcc's tools/mptcpify.py is an fmod_ret program)
    word = spec.partition("/")[0]
    assert f"ebpfhooks does not attach '{word}' hooks" in _error(spec)


def test_error_missing_part() -> None:
    assert _error("tracepoint:syscalls") == (
        "invalid hook spec: missing ':event' after the category\n"
        "    tracepoint:syscalls\n"
        "                       ^\n"
        "expected tracepoint:category:event, e.g. tracepoint:syscalls:sys_enter_openat"
    )
    assert "missing target after 'kprobe:'" in _error("kprobe:")
    assert "missing ':SYMBOL' after the binary" in _error("uprobe:/bin/bash")
    assert _error("kprobe") == (
        "invalid hook spec: 'kprobe' names no kernel function\n"
        "    kprobe\n"
        "    ^~~~~~\n"
        "write kprobe:FUNCTION, e.g. kprobe:do_sys_openat2 (libbpf's bare SEC(\"kprobe\") "
        "leaves the target to the tool that attaches it; a spec names it)")
    assert "expected ':' after the kind 'kprobe', got '-'" in _error("kprobe-x")
    for kind in ebpfhooks.hooks.KINDS:  # every kind alone says what its target is
        assert f"'{kind.kind}' names no {kind.target_noun}" in _error(kind.kind)
        assert "TARGET" not in _error(kind.kind)
    assert "empty spec" in _error("")
    assert "'xdp' names no interface" in _error("xdp")


def test_error_bad_offset() -> None:
    assert _error("kprobe:vfs_read+-1") == (
        "invalid hook spec: negative offset '-1'\n"
        "    kprobe:vfs_read+-1\n"
        "                    ^~\n"
        "offsets and values are non-negative"
    )
    assert "offset 'zz' is not a number" in _error("kprobe:vfs_read+zz")
    assert "missing offset" in _error("kprobe:vfs_read+")
    assert "negative offset" in _error("kprobe:vfs_read-4")
    assert "out of range" in _error("kprobe:vfs_read+0xffffffffffffffffff")


def test_error_offset_on_return_probe() -> None:
    msg = _error("kretprobe:vfs_read+4")
    assert msg.startswith("invalid hook spec: offset not allowed on a kretprobe\n")
    assert "                      ^~" in msg
    assert "offset not allowed on a uretprobe" in _error("uretprobe:/bin/bash:readline+4")


def test_error_empty_symbol() -> None:
    assert "empty kernel symbol name" in _error("kprobe:+4")
    assert "empty tracepoint category" in _error("tracepoint::sys_enter_openat")
    assert "empty tracepoint event" in _error("tracepoint:syscalls:")
    assert "empty binary path or name" in _error("uprobe::malloc")


def test_error_characters_that_cannot_be_a_symbol() -> None:
    assert _error("kprobe:vfs read") == (
        "invalid hook spec: character ' ' cannot be in a kernel symbol name "
        "(letters, digits, '_' and '.')\n"
        "    kprobe:vfs read\n"
        "              ^"
    )
    assert "cannot be in a tracepoint event" in _error("tracepoint:syscalls:a;b")
    assert "cannot start a kernel symbol name" in _error("kprobe:9abc")
    # a uprobe location that starts with a digit is an address (uprobe:/bin/bash:0x4f0),
    # so a name starting with one is refused as an address, not as a symbol
    assert _error("uprobe:/bin/bash:9abc+1") == (
        "invalid hook spec: address '9abc+1' is not a number\n"
        "    uprobe:/bin/bash:9abc+1\n"
        "                     ^~~~~~\n"
        "expected decimal (16) or hex (0x10)"
    )


def test_error_wildcard_points_to_listing() -> None:
    msg = _error("kprobe:vfs_*")
    assert "wildcard '*' in a single-hook spec" in msg
    assert "ebpfhooks list 'PATTERN'" in msg
    assert "ebpfhooks.expand(spec)" in msg
    assert "wildcard '?'" in _error("tracepoint:syscalls:sys_enter_open?t")
    assert "wildcard" in _error("uprobe:/bin/*:main")


def test_error_options() -> None:
    assert "kprobe hooks take no options" in _error("kprobe:vfs_read[pid=3]")
    assert "unknown option 'maxactiv' for kretprobe" in _error("kretprobe:vfs_read[maxactiv=3]")
    assert "is not key=value" in _error("uprobe:/bin/bash:readline[pid]")
    assert "pid value 'x' is not a number" in _error("uprobe:/bin/bash:readline[pid=x]")
    assert "pid 0 is out of range" in _error("uprobe:/bin/bash:readline[pid=0]")
    assert "above the kernel's limit" in _error("kretprobe:vfs_read[maxactive=99999]")


def test_error_xdp_mode_and_interface() -> None:
    assert _error("xdp:lo:fast") == (
        "invalid hook spec: unknown XDP mode 'fast'\n"
        "    xdp:lo:fast\n"
        "           ^~~~\n"
        "expected auto, skb (generic), drv (native) or hw (offload)"
    )
    assert "longer than 15 characters" in _error("xdp:" + "a" * 16)
    assert "cannot be in a network interface name" in _error("raw_socket:e/th0")
    assert "is not an interface name" in _error("raw_socket:..")
    assert "names no interface" in _error("xdp/eth0")


def test_error_hostile_names_are_refused() -> None:
    hostile = ['a"b', "a\nb", "a;b", "a)b", "a/b", "..", "a\x00b", "x" * 10_000]
    for name in hostile:
        for spec in (f"kprobe:{name}", f"tracepoint:syscalls:{name}", f"tracepoint:{name}:ev",
                     f"rawtracepoint:{name}", f"xdp:{name}", f"raw_socket:{name}"):
            with pytest.raises(SpecError):
                Hook.from_spec(spec)
    with pytest.raises(SpecError):
        Hook.from_spec("uprobe:/bin/ba\x00sh:readline")
    with pytest.raises(SpecError):
        Hook.from_spec("uprobe:/bin/bash:read\nline")


def test_error_messages_escape_control_characters() -> None:
    msg = _error("kprobe:foo\nbar")
    assert "kprobe:foo\\nbar" in msg
    assert msg.count("\n") == 2


def test_error_not_a_string() -> None:
    with pytest.raises(SpecError, match="must be a str"):
        Hook.from_spec(42)  # type: ignore[arg-type]


def test_error_white_space() -> None:
    assert "white space around the spec" in _error(" kprobe:vfs_read")
    assert "white space around the spec" in _error("kprobe:vfs_read\n")


def test_error_direct_construction_is_validated() -> None:
    with pytest.raises(SpecError, match="kernel symbol"):
        Kprobe("bad name")
    with pytest.raises(SpecError, match="non-negative"):
        Kprobe("vfs_read", -1)
    with pytest.raises(SpecError, match="must be a str"):
        Tracepoint("syscalls", 3)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="offset not allowed on a uretprobe"):
        Uretprobe("/bin/bash", Symbol("readline", 4))
    with pytest.raises(SpecError, match="pid must be a positive int"):
        Uprobe("/bin/bash", "readline", pid=-3)
    with pytest.raises(SpecError, match="uprobe location must be"):
        Uprobe("/bin/bash", 1.5)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="unknown XDP mode"):
        Xdp("lo", "turbo")  # type: ignore[arg-type]


def test_uprobe_location_written_as_in_a_spec() -> None:
    """A str location is parsed as a spec writes it: symbol+offset, address, file offset."""
    assert Uprobe("/bin/bash", "readline+4") == Hook.from_spec("uprobe:/bin/bash:readline+4")
    assert Uprobe("/bin/bash", "readline+0x4").location == Symbol("readline", 4)
    assert Uprobe("/bin/bash", "0x1139").location == Address(0x1139)
    assert Uprobe("/bin/bash", 0x1139).location == Address(0x1139)
    assert Uprobe("/bin/bash", "file_offset=0x10").location == FileOffset(16)
    assert Uprobe("c", "malloc@@GLIBC_2.2.5").location == Symbol("malloc@@GLIBC_2.2.5")


def test_error_uprobe_location() -> None:
    with pytest.raises(SpecError) as err:
        Uprobe("/bin/bash", "readline+")
    assert str(err.value).splitlines()[0] == "invalid hook spec: missing offset"
    with pytest.raises(SpecError, match="offset not allowed on a uretprobe"):
        Uretprobe("/bin/bash", "readline+4")
    with pytest.raises(SpecError, match=r"'readline\+4', '0x1139'.*got NoneType None"):
        Uprobe("/bin/bash", None)  # type: ignore[arg-type]
