"""``hook.attach(bpf)`` without fn_name: which function of a plain bcc module is chosen.

The design's own line, ``Hook.from_spec("uprobe:/bin/bash:readline").attach(prog)`` with
``prog = BPF(text=SOURCE)``, runs as written; every naming rule and every ambiguity is
checked here against real programs, and bcc's own compile-time attachments
(``tracepoint__*``, ``raw_tracepoint__*``) are adopted by the link of their event.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import NR_GETPPID, type_into_bash

import ebpfhooks
from ebpfhooks import Hook, ProgramError

pytestmark = pytest.mark.live

COUNTER = """
BPF_ARRAY(hits, u64, 4);
static inline int hit(int i) {
    u64 *n = hits.lookup(&i);
    if (n) __sync_fetch_and_add(n, 1);
    return 0;
}
"""


def _hits(bpf: Any, i: int = 0) -> int:
    return int(bpf["hits"][ctypes.c_int(i)].value)


def _module(body: str) -> Any:
    from bcc import BPF

    return BPF(text=COUNTER + body)


def _getppid(n: int) -> None:
    for _ in range(n):
        os.getppid()


def test_the_design_line_runs_as_written(live: None) -> None:
    """``prog = BPF(text=SOURCE)`` and ``...attach(prog)``: the module's one function."""
    from bcc import BPF

    source = """
    BPF_ARRAY(hits, u64, 1);
    int count_lines(struct pt_regs *ctx) {
        int zero = 0;
        u64 *n = hits.lookup(&zero);
        if (n) __sync_fetch_and_add(n, 1);
        return 0;
    }
    """
    prog = BPF(text=source)
    try:
        with ebpfhooks.Hook.from_spec("uprobe:/bin/bash:readline").attach(prog) as link:
            assert link.program.fn_name == "count_lines"
            type_into_bash(["true", "true"])
            assert _hits(prog) >= 3  # two commands and the exit, each read by readline
        assert not link.attached
    finally:
        prog.cleanup()


@pytest.mark.parametrize(("name", "other"), [
    ("uprobe__ehk_target", "on_something_else"),   # bcc's naming
    ("ehk_target", "on_something_else"),           # the target's own name
    ("on_ehk_target", "helper_fn"),                # on_TARGET
])
def test_each_naming_rule_chooses_the_function(live: None, uprobe_target: Path, name: str,
                                              other: str) -> None:
    bpf = _module(f"int {name}(struct pt_regs *ctx) {{ return hit(0); }}\n"
                  f"int {other}(struct pt_regs *ctx) {{ return hit(1); }}\n")
    try:
        with Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target").attach(bpf) as link:
            assert link.program.fn_name == name
            os.system(f"{uprobe_target} 5 > /dev/null")
            assert (_hits(bpf, 0), _hits(bpf, 1)) == (5, 0)
    finally:
        bpf.cleanup()


def test_error_two_functions_named_for_the_hook(live: None, uprobe_target: Path) -> None:
    bpf = _module("int ehk_target(struct pt_regs *ctx) { return hit(0); }\n"
                  "int on_ehk_target(struct pt_regs *ctx) { return hit(1); }\n")
    try:
        with pytest.raises(ProgramError) as err:
            Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target").attach(bpf)
        text = str(err.value)
        assert "cannot choose its function: it defines ehk_target, on_ehk_target" in text
        assert "2 of them are named for uprobe:" in text
        assert "attach(bpf, fn_name='ehk_target')" in text
    finally:
        bpf.cleanup()


def test_error_no_function_named_for_the_hook(live: None, uprobe_target: Path) -> None:
    bpf = _module("int first(struct pt_regs *ctx) { return hit(0); }\n"
                  "int second(struct pt_regs *ctx) { return hit(1); }\n")
    try:
        with pytest.raises(ProgramError) as err:
            Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target").attach(bpf)
        text = str(err.value)
        assert "it defines first, second; none is named for uprobe:" in text
        assert "(uprobe__ehk_target or ehk_target or on_ehk_target)" in text
        assert "attach(bpf, fn_name='first')" in text
    finally:
        bpf.cleanup()


def test_a_group_chooses_each_hooks_function(live: None, uprobe_target: Path) -> None:
    """attach_all without fn_name: every hook gets the function named for it."""
    bpf = _module("int on_sys_enter_getppid(void *ctx) { return hit(0); }\n"
                  "int uprobe__ehk_target(struct pt_regs *ctx) { return hit(1); }\n")
    try:
        with ebpfhooks.attach_all(["tracepoint:syscalls:sys_enter_getppid",
                                   f"uprobe:{uprobe_target}:ehk_target"], bpf) as group:
            assert [link.program.fn_name for link in group] == [
                "on_sys_enter_getppid", "uprobe__ehk_target"]
            _getppid(4)
            os.system(f"{uprobe_target} 3 > /dev/null")
            assert _hits(bpf, 1) == 3 and _hits(bpf, 0) >= 4
    finally:
        bpf.cleanup()


@pytest.mark.guest
def test_bcc_autoloaded_tracepoints_are_adopted(live: None) -> None:
    """``tracepoint__CAT__EVENT`` / ``raw_tracepoint__EVENT`` (and TRACEPOINT_PROBE) are
    attached by bcc at compile time; the link of that event adopts and detaches them."""
    me = os.getpid()
    bpf = _module(f"""
    TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {{
        if ((bpf_get_current_pid_tgid() >> 32) == {me}) hit(0);
        return 0;
    }}
    int raw_tracepoint__sys_enter(struct bpf_raw_tracepoint_args *ctx) {{
        if ((bpf_get_current_pid_tgid() >> 32) == {me} && ctx->args[1] == {NR_GETPPID})
            hit(1);
        return 0;
    }}
    """)
    try:
        _getppid(3)  # bcc attached both at compile time
        assert (_hits(bpf, 0), _hits(bpf, 1)) == (3, 3)
        tp = Hook.from_spec("tracepoint:syscalls:sys_enter_getppid").attach(
            bpf, "tracepoint__syscalls__sys_enter_getppid")
        raw = Hook.from_spec("rawtracepoint:sys_enter").attach(bpf)  # chosen by its name
        assert raw.program.fn_name == "raw_tracepoint__sys_enter"
        assert tp.via == raw.via == "bcc autoload"
        _getppid(2)
        assert (_hits(bpf, 0), _hits(bpf, 1)) == (5, 5)
        tp.detach()
        raw.detach()
        _getppid(4)
        assert (_hits(bpf, 0), _hits(bpf, 1)) == (5, 5)  # the links detached them
    finally:
        bpf.cleanup()


@pytest.mark.guest
def test_error_an_autoloaded_function_on_another_event(live: None) -> None:
    """bcc attached both functions to their own events; one of them asked for the other's
    event is refused, by name, and nothing is left attached by the refusal."""
    from bcc import BPF

    bpf = BPF(text="int tracepoint__syscalls__sys_enter_getpid(void *ctx) { return 0; }\n"
                   "int tracepoint__syscalls__sys_enter_getppid(void *ctx) { return 0; }\n")
    try:
        with pytest.raises(ebpfhooks.AttachError, match="is named for another event"):
            Hook.from_spec("tracepoint:syscalls:sys_enter_getppid").attach(
                bpf, "tracepoint__syscalls__sys_enter_getpid")
    finally:
        bpf.cleanup()
