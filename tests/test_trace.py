"""ebpfhooks.trace and `ebpfhooks trace`: generated C, and live counting on every kind here."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_ETHERTYPE, mac_of, not_possible, send_frames, xdp_prog_on

from ebpfhooks.errors import SpecError
from ebpfhooks.hooks import RawSocket, RawTracepoint, Tracepoint, Uprobe, Xdp
from ebpfhooks.kernel.features import FeatureStatus, kprobes
from ebpfhooks.trace import generate, protocol_name

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- generated C


def test_generate_one_function_per_hook_with_its_context() -> None:
    src = generate([Tracepoint("sched", "sched_switch"), RawTracepoint("sys_enter"),
                    Uprobe("/bin/bash", "readline"), Xdp("eth0"), RawSocket("eth0")])
    assert "int ehk_h0(void *ctx)" in src
    assert "int ehk_h1(struct bpf_raw_tracepoint_args *ctx)" in src
    assert "int ehk_h2(struct pt_regs *ctx)" in src
    assert "int ehk_h3(struct xdp_md *ctx)" in src and "return XDP_PASS;" in src
    assert "int ehk_h4(struct __sk_buff *skb)" in src
    assert "tgid !=" not in src


def test_generate_contains_no_user_text() -> None:
    hooks = [Uprobe("/tmp/evil\"; system(1); //", "readline"), Xdp("ev1l-if")]
    src = generate(hooks, pid=4242)
    for text in ("evil", "system", "ev1l", "readline", "/tmp"):
        assert text not in src
    assert "if (tgid != 4242) return 0;" in src


def test_generate_with_cookies_counts_uprobes_in_one_function() -> None:
    """One function reads the hook index from the cookie; others keep their own."""
    from ebpfhooks.hooks import Uretprobe
    from ebpfhooks.trace import COOKIE_FUNCTION, function_name

    hooks = [Uprobe("/bin/bash", "readline"), Tracepoint("sched", "sched_switch"),
             Uretprobe("/bin/bash", "readline"), Uprobe("/bin/sh", "main")]
    src = generate(hooks, cookies=True)
    assert src.count(f"int {COOKIE_FUNCTION}(struct pt_regs *ctx)") == 1
    assert "return ehk_count((u32)bpf_get_attach_cookie(ctx));" in src
    assert "int ehk_h1(void *ctx)" in src
    for i in (0, 2, 3):
        assert f"ehk_h{i}(" not in src
    assert [function_name(hooks, i, True) for i in range(4)] == [
        COOKIE_FUNCTION, "ehk_h1", COOKIE_FUNCTION, COOKIE_FUNCTION]
    assert [function_name(hooks, i, False) for i in range(4)] == [f"ehk_h{i}" for i in range(4)]
    assert COOKIE_FUNCTION not in generate(hooks[1:2], cookies=True)  # no uprobe: no function


def test_error_generate_pid_must_be_an_int() -> None:
    for bad in ("1; drop", 0, -1, True, 1 << 22):
        with pytest.raises(SpecError, match="pid must be an int"):
            generate([Tracepoint("sched", "sched_switch")], pid=bad)  # type: ignore[arg-type]


def test_protocol_names() -> None:
    assert protocol_name(0x0800, 17) == "IPv4/UDP"
    assert protocol_name(TEST_ETHERTYPE, 0) == "ethertype 0x88b5"
    assert protocol_name(0x0806, 0) == "ARP"


# --------------------------------------------------------------------------- live


@pytest.fixture
def trace_veth(live: None) -> Iterator[tuple[str, str]]:
    """A veth pair of this test's own (unique names), removed afterwards."""
    from conftest import veth_pair

    with veth_pair("ehkt") as pair:
        yield pair


class Tracer:
    """`python -m ebpfhooks trace ... --json` in a child; waits until it has attached."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ebpfhooks", "trace", *args, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 1)
            if ready:
                line = self.proc.stderr.readline()
                if line.startswith("ebpfhooks: tracing") or not line:
                    break
        if not line.startswith("ebpfhooks: tracing"):
            self.proc.kill()
            _out, err = self.proc.communicate()
            pytest.fail(f"trace did not attach: {line}{err}")

    def result(self) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        data: dict[str, Any] = json.loads(out)
        return {h["spec"]: h for h in data["hooks"]}


def _run_target(target: Path, n: int) -> int:
    proc = subprocess.run([str(target), str(n)], capture_output=True, check=True)
    return proc.returncode


@pytest.mark.live
def test_trace_every_attachable_kind_counts(live: None, uprobe_target: Path,
                                            trace_veth: tuple[str, str]) -> None:
    a, b = trace_veth
    n = 7
    specs = [
        "tracepoint:syscalls:sys_enter_getppid",
        "rawtracepoint:sys_enter",
        f"uprobe:{uprobe_target}:ehk_target",
        f"uretprobe:{uprobe_target}:ehk_ret",
        f"xdp:{a}",
        f"raw_socket:{a}",
    ]
    tracer = Tracer(*specs, "--duration", "4")
    for _ in range(n):
        os.getppid()
    _run_target(uprobe_target, n)
    send_frames(b, mac_of(a), n)
    rows = tracer.result()
    me = os.getpid()

    tp = rows[specs[0]]
    mine = [p for p in tp["processes"] if p["pid"] == me]
    assert mine and mine[0]["hits"] == n
    assert tp["hits"] >= n
    raw = rows[specs[1]]
    assert any(p["pid"] == me and p["hits"] >= n for p in raw["processes"])
    for spec in specs[2:4]:
        procs = rows[spec]["processes"]
        assert [(p["comm"], p["hits"]) for p in procs] == [("uprobe_target", n)], spec
    for spec in specs[4:]:
        protos = {p["protocol"]: p["packets"] for p in rows[spec]["protocols"]}
        assert protos.get("ethertype 0x88b5") == n, (spec, protos)
    # nothing left behind
    assert not xdp_prog_on(a)


@pytest.mark.live
def test_trace_pid_filter_and_wildcards(live: None, uprobe_target: Path) -> None:
    target = subprocess.Popen([str(uprobe_target), "5", "wait"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout is not None and target.stdout.readline() == "ready\n"
        tracer = Tracer(f"uprobe:{uprobe_target}:ehk_*", "--pid", str(target.pid),
                        "--duration", "3")
        _run_target(uprobe_target, 3)  # another process: filtered out
        assert target.stdin is not None
        target.stdin.write("go\n")
        target.stdin.flush()
        target.wait(timeout=10)
        rows = tracer.result()
    finally:
        target.kill()
        target.wait()
    assert set(rows) == {f"uprobe:{uprobe_target}:ehk_target",
                         f"uprobe:{uprobe_target}:ehk_ret"}
    for row in rows.values():
        assert [(p["pid"], p["hits"]) for p in row["processes"]] == [(target.pid, 5)]


@pytest.mark.live
@pytest.mark.guest  # the VM tier's kernel has kprobes: there the probe must count
def test_trace_kprobe_counts_or_says_why(live: None) -> None:
    """With kprobes, `trace kprobe:...` counts this process's opens; without, it says why."""
    feature = kprobes()
    if feature.status is FeatureStatus.YES:
        n = 9
        tracer = Tracer("kprobe:do_sys_openat2", "--pid", str(os.getpid()), "--duration", "3")
        for _ in range(n):
            os.close(os.open("/dev/null", os.O_RDONLY))
        rows = tracer.result()
        assert [(p["pid"], p["hits"]) for p in rows["kprobe:do_sys_openat2"]["processes"]] \
            == [(os.getpid(), n)]
        return
    if feature.status is not FeatureStatus.NO:
        not_possible(f"cannot tell whether this kernel has kprobes: {feature.reason}")
    proc = subprocess.run(
        [sys.executable, "-m", "ebpfhooks", "trace", "kprobe:do_sys_openat2", "-d", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("ebpfhooks: error: kprobe:do_sys_openat2 cannot attach: "
                               "this kernel has no kprobe support")
    assert lines[1] == ("ebpfhooks: use the stable alternative instead: "
                        "tracepoint:syscalls:sys_enter_openat")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.live
def test_error_trace_missing_targets(live: None) -> None:
    for spec, text in (("tracepoint:sched:sched_swich", "closest: tracepoint:sched:sched_switch"),
                       ("xdp:nosuchif0", "network interface 'nosuchif0' not found")):
        proc = subprocess.run([sys.executable, "-m", "ebpfhooks", "trace", spec, "-d", "1"],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
        assert proc.returncode == 1 and text in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
