"""ebpfhooks.discover: patterns, listing (against bpftrace -l), expand, info, kallsyms, suggest."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import not_possible

from ebpfhooks import discover
from ebpfhooks.errors import HookNotFoundError, NotSupportedError, SpecError
from ebpfhooks.hooks import parse_pattern
from ebpfhooks.kernel.features import FeatureStatus, kprobes

FIXTURES = Path(__file__).parent / "fixtures" / "kernel"


# --------------------------------------------------------------------------- pure


def test_compile_wildcard_is_literal_except_star_and_question() -> None:
    from ebpfhooks.spec import compile_wildcard

    rx = compile_wildcard("a.b*c?")
    assert rx.fullmatch("a.bXXcY")
    assert not rx.fullmatch("aXbcY")  # '.' is literal
    assert compile_wildcard("***").pattern == ".*"


def test_matcher_agrees_with_the_wildcard_regex() -> None:
    """matcher() answers the common shapes (*W*, W*, *W, *) without a regex: same answers."""
    from ebpfhooks.spec import compile_wildcard, matcher

    names = ["", "a", "execve", "sys_enter_execve", "sys_enter_execveat", "execve_x", "x.y",
             "a*b", "sys_exit", "ab", "ba", "aXb"]
    for pattern in ("*", "**", "*execve*", "**execve**", "execve*", "*execve", "sys_*",
                    "*_x", "a*b", "a*b*", "*a*b", "a?", "*?*", "x.y*", "*.*", "a**", "**b"):
        test, rx = matcher(pattern), compile_wildcard(pattern)
        assert test is not None
        assert [n for n in names if test(n)] == [n for n in names if rx.fullmatch(n)], pattern


def _error(pattern: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_pattern(pattern)
    return str(info.value)


def test_error_pattern_characters_are_checked_per_part() -> None:
    assert _error("tracepoint:sys(*") == (
        "invalid hook spec: character '(' cannot be in a tracepoint event "
        "(letters, digits and '_')\n"
        "    tracepoint:sys(*\n"
        "                  ^"
    )
    assert "cannot be in a kernel symbol name" in _error("kprobe:vfs_read;rm")
    assert "cannot be in a pattern" in _error("tracepoint:a b")
    assert "white space around it" in _error("t:sched:x\n")
    assert "cannot be in a pattern" in _error("t:sched:x\ty")
    assert "too many ':' parts" in _error("tracepoint:a:b:c")
    assert "unknown hook kind 'kprob'" in _error("kprob:*")
    assert "no hook kind matches 'zz*'" in _error("zz*:x")
    assert "options ([pid=N]" in _error("uprobe:/bin/bash:read*[pid=1]")
    assert "offsets are not part" in _error("kprobe:vfs_*+4")
    assert "needs an absolute path" in _error("uprobe:lib*:malloc")
    assert "missing ':SYMBOL'" in _error("uprobe:/bin/bash")


def test_error_pattern_hostile_text_never_reaches_a_regex() -> None:
    for bad in ("kprobe:(a|b)", "tracepoint:[a-z]:x", "kprobe:a\\d", "*$(reboot)*"):
        with pytest.raises(SpecError):
            parse_pattern(bad)


def test_pattern_queries() -> None:
    """A pattern is the spec grammar with wildcards: one Pattern per kind it names."""
    def show(p: str) -> list[tuple[str, tuple[str | None, ...]]]:
        return [(q.kind.kind, tuple(v for _, v in q.fields)) for q in parse_pattern(p)]

    assert show("*execve*") == [("kprobe", (None, "*execve*")),
                                ("tracepoint", ("*", "*execve*")),
                                ("rawtracepoint", (None, "*execve*"))]
    assert show("tracepoint:*open") == [("tracepoint", ("*", "*open"))]
    assert show("t:sched:sched_sw*") == [("tracepoint", ("sched", "sched_sw*"))]
    assert show("kprobe:nf_*:nf_hook*") == [("kprobe", ("nf_*", "nf_hook*"))]
    assert show("uprobe:/bin/bash:read?ine") == [("uprobe", ("/bin/bash", "read?ine"))]
    assert [k for k, _ in show("k*:vfs_read")] == ["kprobe", "kretprobe"]
    assert show("xdp:eth*") == [("xdp", ("eth*",))]
    # a dotted name is a kernel symbol, not a tracepoint: only kprobes are searched
    assert show("foo.isra*") == [("kprobe", (None, "foo.isra*"))]
    # libbpf's spellings are patterns too (the same grammar)
    assert show("tp/syscalls/sys_enter_open*") == [("tracepoint", ("syscalls",
                                                                   "sys_enter_open*"))]
    assert show("raw_tp/sched_*") == [("rawtracepoint", (None, "sched_*"))]


def test_kallsyms_fixture_with_modules() -> None:
    def ks(*args: str, **kwargs: str) -> list[Any]:
        return discover.kallsyms(*args, **kwargs, path=FIXTURES / "kallsyms_modules.txt")

    mods = ks(module="nf_conntrack")
    assert {s.name for s in mods} >= {"nf_conntrack_in"}
    assert all(s.module == "nf_conntrack" for s in mods)
    core = ks("ptdump_show", module="vmlinux")
    assert [s.module for s in core] == [None, None]  # two static functions of one name
    both = ks("ptdump_show")
    assert sorted(str(s.module) for s in both) == ["None", "None", "some_module"]
    data = ks(type="d")
    assert data and all(s.type == "d" for s in data)
    first = ks("nf_conntrack_in")[0]
    assert first.real_address == 0xFFFFFFFFA05EF110
    assert first.type_description == "local text (code)"


def test_kallsyms_fixture_hidden_addresses_are_not_zeros() -> None:
    syms = discover.kallsyms("do_one_initcall", path=FIXTURES / "kallsyms_hidden.txt")
    assert syms and all(s.address_hidden and s.real_address is None for s in syms)
    assert str(syms[0]).startswith("(hidden) ")


def test_error_kallsyms_arguments() -> None:
    empty = FIXTURES / "kallsyms_hidden.txt"
    with pytest.raises(SpecError, match="cannot be in a kernel symbol name"):
        discover.kallsyms("a b", path=empty)
    with pytest.raises(SpecError, match="type letters"):
        discover.kallsyms(type="1", path=empty)


# --------------------------------------------------------------------------- live: listing


def _bpftrace_list(pattern: str) -> set[str]:
    if shutil.which("bpftrace") is None:
        not_possible("bpftrace is the oracle for listings")
    proc = subprocess.run(["bpftrace", "-l", pattern], capture_output=True, text=True,
                          timeout=60, check=False)
    return set(proc.stdout.split())


BPFTRACE_PATTERNS = [
    "tracepoint:syscalls:*", "tracepoint:*", "tracepoint:*open", "tracepoint:sys*open",
    "t:sched:sched_sw*", "tracepoint:sc*d:*", "tracepoint:*:sys_enter_open",
    "tracepoint:syscalls:sys_enter_openat", "*execve*", "sched*", "sys_enter_open*",
    "*:sched:*", "tracepoint:syscalls*",
]


@pytest.mark.live
@pytest.mark.parametrize("pattern", BPFTRACE_PATTERNS)
def test_tracepoint_lines_equal_bpftrace(live: None, pattern: str) -> None:
    # dynamic events (uprobes:/kprobes: made by tests running at the same time) come and go
    def stable(lines: list[str] | set[str]) -> set[str]:
        return {line for line in lines if line.startswith("tracepoint:")
                and not line.startswith(("tracepoint:uprobes:", "tracepoint:kprobes:"))}

    expected = stable(_bpftrace_list(pattern))
    got = stable(discover.list_hooks(pattern))
    assert got == expected
    if pattern.startswith("tracepoint:syscalls:") or pattern == "tracepoint:*":
        assert got  # the comparison is not vacuous


@pytest.mark.live
def test_uprobe_listing_equals_bpftrace(live: None) -> None:
    pattern = "uprobe:/bin/bash:readline*"
    assert set(discover.list_hooks(pattern)) == _bpftrace_list(pattern)


@pytest.mark.live
def test_uprobe_listing_of_a_built_target_and_a_glob(live: None, uprobe_target: Path) -> None:
    assert discover.list_hooks(f"uprobe:{uprobe_target}:ehk_*") == [
        f"uprobe:{uprobe_target}:ehk_ret", f"uprobe:{uprobe_target}:ehk_target"]
    # (uprobe_targ*t, not uprobe_tar*: test_live_uprobe builds uprobe_target_lib beside it)
    assert discover.list_hooks(f"uretprobe:{uprobe_target.parent}/uprobe_targ*t:ehk_ret") == [
        f"uretprobe:{uprobe_target}:ehk_ret"]


@pytest.mark.live
def test_raw_tracepoints_are_the_ones_bpf_can_open(live: None) -> None:
    from ebpfhooks.kernel import rawtp

    names = {n for m, n in rawtp.raw_tracepoints() or [] if m is None}
    if not names:  # no BTF: the __traceiter_ symbols
        names = {line.split()[2][len("__traceiter_"):]
                 for line in Path("/proc/kallsyms").read_text().splitlines()
                 if line.split()[2].startswith("__traceiter_") and "\t[" not in line}
    got = discover.list_hooks("rawtracepoint:*")
    assert {h.split(":", 1)[1] for h in got if h.count(":") == 1} == names
    assert "rawtracepoint:sched_switch" in got
    assert discover.list_hooks("rawtracepoint:sched_swi?ch") == ["rawtracepoint:sched_switch"]


def _forbid_kallsyms(monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc/kallsyms may not be read (~70 ms here): reading it fails the test."""
    from ebpfhooks.kernel import kallsyms as table

    def read(*_args: object, **_kwargs: object) -> bytes:
        raise AssertionError("/proc/kallsyms was read")

    monkeypatch.setattr(table, "read", read)


@pytest.fixture
def kallsyms_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_kallsyms(monkeypatch)


@pytest.mark.live
def test_bare_patterns_do_not_read_kallsyms_on_a_btf_kernel(
        live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from ebpfhooks.hooks.kprobe import kprobes_supported

    if Path("/sys/kernel/btf/vmlinux").exists() and not kprobes_supported():
        _forbid_kallsyms(monkeypatch)
    listing = discover.search("*execve*")
    assert "tracepoint:syscalls:sys_enter_execve" in listing.hooks


@pytest.mark.live
def test_kernel_functions_and_the_kprobe_decision(live: None) -> None:
    listing = discover.search("kprobe:do_sys_open*")
    everything = discover.list_hooks("kprobe:do_sys_open*", include_unsupported=True)
    assert "kprobe:do_sys_openat2" in everything
    if kprobes().status is FeatureStatus.NO:
        assert listing.hooks == []
        assert "this kernel has no kprobes" in listing.notes[0]
        assert "--all" in listing.notes[0]
        assert "/proc/kallsyms" in discover.search(
            "kprobe:do_sys_open*", include_unsupported=True).sources["kprobe"]
        with pytest.raises(NotSupportedError) as info:
            discover.expand("kprobe:do_sys_openat*")
        assert info.value.alternative == "tracepoint:syscalls:sys_enter_openat"
    else:
        assert listing.hooks == everything
    assert not any(h.startswith("kprobe:__pfx_") for h in everything)


@pytest.mark.live
def test_tracepoint_only_patterns_do_not_read_kallsyms(live: None,
                                                       kallsyms_unread: None) -> None:
    assert discover.list_hooks("tracepoint:syscalls:*")
    assert discover.list_hooks("t:*:*execve*")


@pytest.mark.live
def test_expand_and_attach_a_wildcard_as_one_group(live: None) -> None:
    hooks = discover.expand("tracepoint:syscalls:sys_enter_getppid*")
    assert [str(h) for h in hooks] == ["tracepoint:syscalls:sys_enter_getppid"]
    hooks = discover.expand("tracepoint:sched:sched_process_*")
    assert len(hooks) >= 4 and hooks == tuple(hooks)
    from bcc import BPF

    bpf = BPF(text="BPF_ARRAY(n, u64, 1); int on_ev(void *ctx) { int k = 0; "
                   "u64 *v = n.lookup(&k); if (v) __sync_fetch_and_add(v, 1); return 0; }")
    try:
        with hooks.attach(bpf, fn_name="on_ev") as group:
            assert len(group) == len(hooks)
            subprocess.run(["true"], check=True)  # fork, exec, exit: several events
            assert bpf["n"][0].value > 0
        assert not group.attached
    finally:
        bpf.cleanup()


@pytest.mark.live
def test_error_expand_nothing_matches(live: None) -> None:
    with pytest.raises(HookNotFoundError) as info:
        discover.expand("tracepoint:nosuchcat*:x")
    assert "ebpfhooks list" in str(info.value)


# --------------------------------------------------------------------------- live: info


@pytest.mark.live
def test_info_every_tracepoint_matches_bpftrace_lv(live: None) -> None:
    if shutil.which("bpftrace") is None:
        not_possible("bpftrace -lv is the oracle for formats")
    proc = subprocess.run(["bpftrace", "-lv", "tracepoint:*"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    expected: dict[str, list[str]] = {}
    current = ""
    for line in proc.stdout.splitlines():
        if line.startswith("tracepoint:"):
            current = line
            expected[current] = []
        elif line.startswith("    "):
            expected[current].append(line[4:])
    assert len(expected) > 100
    mismatches = []
    for spec, fields in expected.items():
        found = discover.info(spec)
        got = [f["declaration"] for f in found.facts["fields"]]
        if got != fields or found.spec != spec:
            mismatches.append((spec, got, fields))
        # every field line of the text report starts with the bpftrace declaration
        assert all(any(line.startswith("    " + d) for line in found.text) for d in got)
    assert mismatches == []


@pytest.mark.live
def test_info_tracepoint_fields(live: None) -> None:
    found = discover.info("tracepoint:syscalls:sys_enter_openat")
    d = found.to_dict()
    fields = {f["name"]: f for f in d["fields"]}
    assert fields["filename"] == {"name": "filename", "type": "const char *",
                                  "declaration": "const char * filename", "offset": 24,
                                  "size": 8, "signed": False}
    assert isinstance(d["id"], int) and d["print_fmt"].startswith('"dfd:')
    assert d["attachable"] is True and d["stable"] is True


@pytest.mark.live
def test_info_kprobe(live: None) -> None:
    found = discover.info("kprobe:do_sys_openat2")
    d = found.to_dict()
    assert d["kallsyms"][0]["name"] == "do_sys_openat2"
    assert d["kallsyms"][0]["type"] in "Tt"
    assert d["blacklisted"] is False
    assert d["stable_alternative"] == "tracepoint:syscalls:sys_enter_openat"
    assert d["btf_signature"] is None or "do_sys_openat2(" in d["btf_signature"]
    if kprobes().status is FeatureStatus.NO:
        assert d["attachable"] is False and "no kprobe support" in d["problem"]
    alias = discover.info("kprobe:sys_openat").to_dict()
    assert alias["kallsyms"][0]["name"].endswith("_sys_openat")


@pytest.mark.live
def test_error_info_missing_and_wildcard(live: None) -> None:
    from ebpfhooks.errors import SymbolNotFoundError

    with pytest.raises(SymbolNotFoundError) as info:
        discover.info("kprobe:vfs_reed")
    assert "vfs_read" in info.value.candidates
    with pytest.raises(SpecError, match="ebpfhooks list"):
        discover.info("tracepoint:sched:*")


@pytest.mark.live
def test_info_uprobe_and_raw_tracepoint(live: None, uprobe_target: Path) -> None:
    d = discover.info(f"uprobe:{uprobe_target}:ehk_target").to_dict()
    nm = subprocess.run(["nm", str(uprobe_target)], capture_output=True, text=True,
                        check=True).stdout
    vaddr = int(re.search(r"^([0-9a-f]+) T ehk_target$", nm, re.M).group(1), 16)  # type: ignore[union-attr]
    assert d["vaddr"] == vaddr and d["file"] == str(uprobe_target.resolve())
    assert d["binding"] == "GLOBAL" and d["type"] == "FUNC" and d["size"] > 0
    assert d["file_offset"] == vaddr  # PIE, text mapped at offset == vaddr
    raw = discover.info("rawtracepoint:sched_switch").to_dict()
    assert raw["kallsyms"][0]["name"] == "__traceiter_sched_switch"
    assert raw["tracepoint_events"] == ["tracepoint:sched:sched_switch"]


# --------------------------------------------------------------------------- live: suggest


@pytest.mark.live
@pytest.mark.parametrize(("word", "recommended"), [
    ("execve", "tracepoint:syscalls:sys_enter_execve"),
    ("openat", "tracepoint:syscalls:sys_enter_openat"),
    ("tcp_connect", "tracepoint:sock:inet_sock_set_state"),
])
def test_suggest(live: None, word: str, recommended: str) -> None:
    s = discover.suggest(word)
    assert s.recommended == recommended
    by_spec: dict[str, Any] = {c.spec: c for c in s.candidates}
    assert by_spec[recommended].stable and by_spec[recommended].attachable
    kps = [c for c in s.candidates if c.kind == "kprobe"]
    assert kps and not any(c.stable for c in kps)
    if kprobes().status is FeatureStatus.NO:
        assert not any(c.attachable for c in kps)
    if word == "execve":
        assert "kprobe:__x64_sys_execve" in by_spec  # the syscall wrapper
        assert "tracepoint:syscalls:sys_exit_execve" in by_spec
    if word == "tcp_connect":
        assert "kprobe:tcp_connect" in by_spec
    assert s.to_dict()["recommended"] == recommended


def test_error_suggest_takes_a_word() -> None:
    with pytest.raises(SpecError):
        discover.suggest("exec ve")
    with pytest.raises(SpecError, match="ebpfhooks list"):
        discover.suggest("exec*")


@pytest.mark.live
def test_stable_alternative_and_suggest_agree(live: None) -> None:
    from ebpfhooks.hooks.kprobe import KNOWN_STABLE, stable_alternative

    for word in [*KNOWN_STABLE, "do_sys_openat2"]:  # words whose answer is a tracepoint
        assert stable_alternative(word) == discover.suggest(word).recommended, word
    assert stable_alternative("do_exit") == "tracepoint:sched:sched_process_exit"


@pytest.mark.live
def test_return_probes_get_return_alternatives(live: None) -> None:
    """A kretprobe's stable alternative is the syscall's exit, never its entry."""
    from ebpfhooks import Kretprobe, NotSupportedError
    from ebpfhooks.hooks.kprobe import stable_alternative

    assert stable_alternative("do_sys_openat2", ret=True) == \
        "tracepoint:syscalls:sys_exit_openat"
    s = discover.suggest("openat", ret=True)
    assert s.recommended == "tracepoint:syscalls:sys_exit_openat"
    chain = s.chain()
    assert chain is not None and chain.startswith("tracepoint:syscalls:sys_exit_openat")
    assert "kprobe:" not in chain.replace("kretprobe:", "")
    assert s.to_dict()["return"] is True
    if kprobes().status is FeatureStatus.NO:
        with pytest.raises(NotSupportedError) as err:
            Kretprobe("do_sys_openat2").check_supported()
        assert err.value.alternative == "tracepoint:syscalls:sys_exit_openat"
        with pytest.raises(NotSupportedError) as err:
            discover.expand("kretprobe:do_sys_openat2*")
        assert err.value.alternative == "tracepoint:syscalls:sys_exit_openat"
    else:  # a kernel with kprobes: a pattern that matches nothing is not "no kprobes"
        with pytest.raises(HookNotFoundError):
            discover.expand("kretprobe:ehk_no_such_function_*")
