"""Fallback chains and optional groups: choice, reasons, per-kind function names, live."""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import Counters

import ebpfhooks
from ebpfhooks import Hook
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import FeatureStatus


def test_chain_spellings_are_equal() -> None:
    a = ebpfhooks.first_of("kprobe:do_sys_openat2 | tracepoint:syscalls:sys_enter_openat")
    b = ebpfhooks.first_of("kprobe:do_sys_openat2", "tracepoint:syscalls:sys_enter_openat")
    c = ebpfhooks.first_of(Hook.from_spec("k:do_sys_openat2"),
                           ebpfhooks.Tracepoint("syscalls", "sys_enter_openat"))
    assert a == b == c
    assert str(a) == "kprobe:do_sys_openat2 | tracepoint:syscalls:sys_enter_openat"
    assert ebpfhooks.first_of(str(a)) == a


def test_error_chain_spec() -> None:
    with pytest.raises(ebpfhooks.SpecError, match="empty alternative"):
        ebpfhooks.first_of("kprobe:a || tracepoint:b:c")
    with pytest.raises(ebpfhooks.SpecError, match="unknown hook kind"):
        ebpfhooks.first_of("kprob:a | tracepoint:b:c")
    with pytest.raises(ebpfhooks.SpecError, match="at least one"):
        ebpfhooks.first_of()
    with pytest.raises(ebpfhooks.ProgramError, match="not a C identifier"):
        ebpfhooks.first_of(("kprobe:a", "bad-name"))


def _missing_kernel_function() -> str:
    from ebpfhooks.kernel.kallsyms import index

    name = "ebpfhooks_no_such_function"
    assert name not in index()
    return name


def test_chain_picks_the_first_that_exists_here() -> None:
    missing = _missing_kernel_function()
    chain = ebpfhooks.first_of(f"tracepoint:syscalls:sys_enter_{missing}",
                               "tracepoint:syscalls:sys_enter_getppid")
    choice = chain.choose()
    assert str(choice.hook) == "tracepoint:syscalls:sys_enter_getppid"
    [(hook, why)] = choice.passed_over
    assert str(hook) == f"tracepoint:syscalls:sys_enter_{missing}"
    assert isinstance(why, ebpfhooks.TracepointNotFoundError)


@pytest.mark.guest  # in the VM kernel (kprobes) the kprobe is chosen
def test_chain_of_kprobe_names_picks_the_existing_one() -> None:
    missing = _missing_kernel_function()
    chain = ebpfhooks.first_of(f"kprobe:{missing}", "kprobe:do_sys_openat2",
                               "tracepoint:syscalls:sys_enter_openat")
    choice = chain.choose()
    reasons = dict((str(h), e) for h, e in choice.passed_over)
    if features.kprobes().status is FeatureStatus.YES:
        assert str(choice.hook) == "kprobe:do_sys_openat2"
        assert isinstance(reasons[f"kprobe:{missing}"], ebpfhooks.SymbolNotFoundError)
    else:
        assert str(choice.hook) == "tracepoint:syscalls:sys_enter_openat"
        assert all(isinstance(e, ebpfhooks.NotSupportedError) for e in reasons.values())


def test_error_no_alternative_lists_every_reason() -> None:
    missing = _missing_kernel_function()
    chain = ebpfhooks.first_of(f"tracepoint:syscalls:sys_enter_{missing}",
                               "rawtracepoint:" + missing)
    with pytest.raises(ebpfhooks.NoAlternativeError) as err:
        chain.choose()
    assert isinstance(err.value, LookupError)
    msg = str(err.value)
    assert msg.splitlines()[0] == "no alternative of the chain can attach on this kernel:"
    assert f"  tracepoint:syscalls:sys_enter_{missing}: tracepoint " in msg
    assert f"  rawtracepoint:{missing}: tracepoint " in msg
    assert len(err.value.reasons) == 2


def _getppid_n(n: int) -> None:
    libc = ctypes.CDLL(None)
    for _ in range(n):
        libc.getppid()


@pytest.mark.live
@pytest.mark.guest
def test_live_chain_kprobe_or_tracepoint(bpf: Any, counters: Counters) -> None:
    """The issue's chain; each alternative with its own function (no glue)."""
    chain = ebpfhooks.first_of(("kprobe:__x64_sys_getppid", "on_kprobe"),
                               ("tracepoint:syscalls:sys_enter_getppid", "on_getppid"))
    with chain.attach(bpf) as link:
        _getppid_n(11)
        if features.kprobes().status is FeatureStatus.YES:
            assert str(link.hook) == "kprobe:__x64_sys_getppid"
            assert link.passed_over == ()
            assert counters[Counters.KPROBE] == 11
        else:
            assert str(link.hook) == "tracepoint:syscalls:sys_enter_getppid"
            [(skipped, why)] = link.passed_over
            assert str(skipped) == "kprobe:__x64_sys_getppid"
            assert isinstance(why, ebpfhooks.NotSupportedError)
            assert counters[Counters.TP] == 11


@pytest.mark.live
@pytest.mark.guest
def test_live_hooks_md_chain_counts_opens(bpf: Any, tmp_path: Path) -> None:
    from bcc import BPF

    module = BPF(text="""
    BPF_ARRAY(n, u64, 1);
    static inline void hit(void) { int k = 0; u64 *v = n.lookup(&k); if (v &&
        (bpf_get_current_pid_tgid() >> 32) == FILTER_PID) __sync_fetch_and_add(v, 1); }
    int on_k(struct pt_regs *ctx) { hit(); return 0; }
    int on_tp(struct tracepoint__syscalls__sys_enter_openat *args) { hit(); return 0; }
    """, cflags=[f"-DFILTER_PID={os.getpid()}"])
    try:
        chain = ebpfhooks.first_of(("kprobe:do_sys_openat2", "on_k"),
                                   ("tracepoint:syscalls:sys_enter_openat", "on_tp"))
        path = tmp_path / "f"
        path.write_text("x")
        with chain.attach(module) as link:
            for _ in range(9):
                os.close(os.open(path, os.O_RDONLY))
            assert module["n"][ctypes.c_int(0)].value == 9
            expected = ("kprobe:do_sys_openat2" if features.kprobes().status is FeatureStatus.YES
                        else "tracepoint:syscalls:sys_enter_openat")
            assert str(link.hook) == expected
    finally:
        module.cleanup()


@pytest.mark.live
def test_live_optional_group_skips_missing_hooks(bpf: Any, counters: Counters) -> None:
    missing = _missing_kernel_function()
    group = ebpfhooks.attach_all(
        ["tracepoint:syscalls:sys_enter_getppid", f"tracepoint:syscalls:sys_enter_{missing}"],
        bpf, "on_getppid", optional=True)
    with group:
        assert [str(h) for h, _ in group.skipped] == [f"tracepoint:syscalls:sys_enter_{missing}"]
        _getppid_n(5)
        assert counters[Counters.TP] == 5
    assert not group.attached
    with pytest.raises(ebpfhooks.TracepointNotFoundError):
        ebpfhooks.attach_all(["tracepoint:syscalls:sys_enter_getppid",
                              f"tracepoint:syscalls:sys_enter_{missing}"], bpf, "on_getppid")


@pytest.mark.live
def test_error_strict_group_reports_the_first_failing_hook_in_order(bpf: Any) -> None:
    """Hooks are checked in bulk per kind, but the error raised is the first hook's."""
    hooks = ["tracepoint:syscalls:sys_enter_getppid", "rawtracepoint:ehk_no_such_tp",
             "tracepoint:ehk_no_such:event"]
    with pytest.raises(ebpfhooks.TracepointNotFoundError) as err:
        ebpfhooks.attach_all(hooks, bpf, "on_getppid")
    assert err.value.name == "ehk_no_such_tp"
    with pytest.raises(ebpfhooks.TracepointNotFoundError) as err:
        ebpfhooks.attach_all(list(reversed(hooks)), bpf, "on_getppid")
    assert err.value.name == "ehk_no_such:event"


def test_error_attach_wrong_program_is_a_type_error() -> None:
    """None, a C source or any other object as the program: ProgramTypeError, never a
    bcc AttributeError; checked before anything else (no privileges, kernel or target)."""
    hook = Hook.from_spec("tracepoint:ehk_no_such:event")
    for prog in (None, "int fn(void *ctx) { return 0; }", 42):
        for attach in (lambda p: hook.attach(p, "fn"),
                       lambda p: ebpfhooks.first_of(hook).attach(p, "fn"),
                       lambda p: ebpfhooks.attach_all([hook], p, "fn"),
                       lambda p: ebpfhooks.Program(p, "fn")):
            with pytest.raises(ebpfhooks.ProgramTypeError) as err:
                attach(prog)
            assert isinstance(err.value, TypeError)
            assert isinstance(err.value, ebpfhooks.ProgramError)
            text = str(err.value)
            assert f"got {type(prog).__name__}" in text
            assert "BPF(text=SOURCE)" in text
    with pytest.raises(ebpfhooks.ProgramTypeError, match="a C source is compiled by bcc first"):
        hook.attach("int x;", "fn")


def test_suggest_chain_orders_stable_first() -> None:
    from ebpfhooks.discover import suggest

    chain = suggest("execve").chain()
    assert chain is not None
    parts = [p.strip() for p in chain.split("|")]
    assert parts[0] == "tracepoint:syscalls:sys_enter_execve"
    assert any(p.startswith("kprobe:") and p.endswith("sys_execve") for p in parts[1:])
    assert ebpfhooks.first_of(chain).choose().hook == Hook.from_spec(parts[0])


def test_cli_suggest_chain_is_ready_to_paste() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ebpfhooks", "suggest", "openat", "--chain"],
                         capture_output=True, text=True, check=True)
    line = out.stdout.strip()
    # each kernel function as fentry (a BPF trampoline, where BTF has it), then as kprobe
    assert re.match(r"tracepoint:syscalls:sys_enter_openat \| fentry:(\w+) \| kprobe:\1( |$)",
                    line), line
    assert str(ebpfhooks.first_of(line)) == line


@pytest.mark.live
def test_cli_trace_takes_a_chain(live: None) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "ebpfhooks", "trace", "--duration", "1",
         "kprobe:do_sys_openat2 | tracepoint:syscalls:sys_enter_openat"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    expected = ("kprobe:do_sys_openat2" if features.kprobes().status is FeatureStatus.YES
                else "tracepoint:syscalls:sys_enter_openat")
    assert f"using {expected}" in out.stderr
    assert expected in out.stdout
