"""Live: nothing leaks, whatever ends the process (docs/lifetimes.md).

* Many attach/detach cycles of every kind the kernel supports leave no tracefs
  event lines, no XDP program, no extra loaded program and no extra fd.
  ``EBPFHOOKS_LIFETIME_CYCLES`` sets the number (1,000 by default; the VM tier
  may lower it under software emulation).
* A process holding links of every kind, ended by an exception inside ``with``,
  SIGINT, SIGTERM or SIGKILL, leaves nothing (after SIGKILL the kernel cleans up:
  XDP is a bpf_link, probes and sockets are fds).
* Two processes attaching the same hooks at once both count their events and both
  clean up (XDP: exactly one wins, the other gets the typed refusal).
* A netlink XDP program left by a SIGKILLed process is found and removed by
  :func:`ebpfhooks.cleanup.clean`, and a stale bcc-named tracefs event too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import bpf_progs_named, mac_of, send_frames, uprobe_events, xdp_prog_on

from ebpfhooks import Hook, Link, NotSupportedError, Program, Xdp, cleanup
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import FeatureStatus
from ebpfhooks.kernel.tracefs import tracefs_root

pytestmark = pytest.mark.live

CYCLES = int(os.environ.get("EBPFHOOKS_LIFETIME_CYCLES", "1000"))
HERE = Path(__file__).parent
WORKER = HERE / "lifetime_worker.py"
PFX = f"ehl{os.getpid() % 10000}"  # program names: unique per run, under 16 chars


def kprobe_events() -> str:
    path = tracefs_root() / "kprobe_events"
    return path.read_text() if path.exists() else ""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


CYCLE_SOURCE = """
int PFX_tp(void *ctx) { return 0; }
int PFX_rt(struct bpf_raw_tracepoint_args *ctx) { return 0; }
int PFX_up(struct pt_regs *ctx) { return 0; }
int PFX_ur(struct pt_regs *ctx) { return 0; }
int PFX_kp(struct pt_regs *ctx) { return 0; }
int PFX_kr(struct pt_regs *ctx) { return 0; }
int PFX_sock(struct __sk_buff *skb) { return 0; }
int PFX_xdp(struct xdp_md *ctx) { return XDP_PASS; }
int PFX_xdn(struct xdp_md *ctx) { return XDP_PASS; }
int PFX_pe(void *ctx) { return 0; }
"""
#: Each detach of a perf-event hook waits for an RCU grace period in the kernel (tens of
#: ms), so the cycles of one kind run in WORKERS threads, each with its own BPF object
#: (bcc allows one attach per hook per object), and all kinds run at the same time.
WORKERS = 4
CPFX = f"ehc{os.getpid() % 10000}"


@pytest.fixture(scope="module")
def cycle_bpfs(live: None) -> Iterator[list[Any]]:
    from bcc import BPF

    modules = [BPF(text=CYCLE_SOURCE.replace("PFX", f"{CPFX}{i}")) for i in range(WORKERS)]
    yield modules
    for module in modules:
        module.cleanup()
    assert bpf_progs_named(CPFX) == []


def _cycle_specs(a: str, b: str, target: Path) -> dict[str, tuple[str, str | None]]:
    """kind -> (spec, XDP attach mechanism)."""
    specs: dict[str, tuple[str, str | None]] = {
        "tp": ("tracepoint:syscalls:sys_enter_getppid", None),
        "rt": ("rawtracepoint:sys_enter", None),
        "up": (f"uprobe:{target}:ehk_target", None),
        "ur": (f"uretprobe:{target}:ehk_ret", None),
        "sock": (f"raw_socket:{a}", None),
        "xdp": (f"xdp:{a}:skb", "link"),
        "xdn": (f"xdp:{b}:skb", "netlink"),
        "pe": ("profile:hz:49", None),
    }
    if features.kprobes().status is FeatureStatus.YES:
        specs["kp"] = ("kprobe:vfs_read", None)
        specs["kr"] = ("kretprobe:vfs_read", None)
    return specs


def test_attach_detach_cycles_leave_nothing(
    cycle_bpfs: list[Any], veth: tuple[str, str], uprobe_target: Path,
) -> None:
    a, b = veth
    specs = _cycle_specs(a, b, uprobe_target)
    if "kp" not in specs:  # no kprobes on this kernel: the clear error, and nothing left
        for spec in ("kprobe:vfs_read", "kretprobe:vfs_read"):
            with pytest.raises(NotSupportedError, match="no kprobe support"):
                Hook.from_spec(spec).attach(cycle_bpfs[0], f"{CPFX}0_kp")
    jobs: list[tuple[str, Hook, Program, str | None, int]] = []
    for kind, (spec, via) in specs.items():
        hook = Hook.from_spec(spec)
        # one interface takes one XDP program: XDP kinds cycle in a single thread
        workers = 1 if kind.startswith("xd") else WORKERS
        for w in range(workers):
            n = CYCLES // workers + (1 if w < CYCLES % workers else 0)
            jobs.append((kind, hook, Program(cycle_bpfs[w], f"{CPFX}{w}_{kind}"), via, n))
    for _kind, hook, prog, via, _n in jobs:  # load each function once (bcc caches it)
        (hook.attach(prog) if via is None else _attach_xdp(hook, prog, via)).detach()
    before = (uprobe_events(), kprobe_events(), open_fds(), len(bpf_progs_named(CPFX, 0)))
    done: dict[str, int] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def cycle(kind: str, hook: Hook, prog: Program, via: str | None, n: int) -> None:
        try:
            for _ in range(n):
                link = hook.attach(prog) if via is None else _attach_xdp(hook, prog, via)
                with link:
                    assert link.attached
            with lock:
                done[kind] = done.get(kind, 0) + n
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=cycle, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    assert done == {kind: CYCLES for kind in specs}
    assert not xdp_prog_on(a) and not xdp_prog_on(b)
    after = (uprobe_events(), kprobe_events(), open_fds(), len(bpf_progs_named(CPFX, 0)))
    assert after == before


def _attach_xdp(hook: Hook, prog: Program, via: str) -> Link:
    """Attach an XDP hook with the given mechanism (what EBPFHOOKS_XDP_ATTACH selects)."""
    from ebpfhooks import _bcc

    assert isinstance(hook, Xdp)
    resolution = hook.resolve()
    attachment = _bcc.attach_xdp(prog.bpf, prog.fn_name, hook.interface, hook.mode.value,
                                 what=str(hook), via=via)
    return Link(hook, resolution, prog, attachment)


def _worker(prefix: str, a: str, target: Path, ending: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), prefix, a, str(target), ending, *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )


def _wait_attached(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("attached"):
        proc.kill()
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"worker did not attach: {line!r}\n{err}")
    return line


def _assert_nothing_left(prefix: str, a: str, events: tuple[str, str]) -> None:
    assert not xdp_prog_on(a)
    assert (uprobe_events(), kprobe_events()) == events
    assert bpf_progs_named(prefix) == []
    leftovers = [x for x in cleanup.find().stale if prefix in str(x)]
    assert leftovers == []


@pytest.mark.parametrize("ending", ["exception", "SIGINT", "SIGTERM", "SIGKILL"])
def test_process_ended_any_way_leaves_nothing(
    live: None, veth: tuple[str, str], uprobe_target: Path, ending: str
) -> None:
    a, _ = veth
    prefix = f"{PFX}{ending[-4:].lower()}"
    events = (uprobe_events(), kprobe_events())
    proc = _worker(prefix, a, uprobe_target, "exception" if ending == "exception" else "wait")
    _wait_attached(proc)
    if ending != "exception":
        assert xdp_prog_on(a)
        assert len(bpf_progs_named(prefix, 0)) >= 6
        proc.send_signal(getattr(signal, ending))
    _, err = proc.communicate(timeout=60)
    expected = {"exception": 1, "SIGINT": -signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM,
                "SIGKILL": -signal.SIGKILL}[ending]
    assert proc.returncode == expected, err
    if ending == "exception":
        assert "boom inside with" in err
    if ending == "SIGINT":
        assert "KeyboardInterrupt" in err
    _assert_nothing_left(prefix, a, events)


def test_two_processes_attach_the_same_hooks(
    live: None, veth: tuple[str, str], uprobe_target: Path
) -> None:
    a, b = veth
    events = (uprobe_events(), kprobe_events())
    prefix = f"{PFX}two"
    procs = [_worker(prefix, a, uprobe_target, "count") for _ in range(2)]
    lines = [_wait_attached(p) for p in procs]
    # XDP: exactly one wins; the other got the typed refusal and went on
    assert sorted("xdp-refused" in line for line in lines) == [False, True]
    for p in procs:
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "triggered"
    send_frames(b, mac_of(a), 20)
    time.sleep(0.3)
    results = []
    for p in procs:
        out, err = p.communicate("report\n", timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    for counts in results:
        assert counts["tp"] == 20 and counts["rt"] == 20  # pid-filtered: each its own
        assert counts["up"] == 40 and counts["ur"] == 40  # both targets seen by both
        assert counts["sock"] == 20
        if features.kprobes().status is FeatureStatus.YES:
            assert counts["kp"] == 20 and counts["kr"] == 20
    assert sorted(c["xdp"] >= 20 for c in results) == [False, True]
    _assert_nothing_left(prefix, a, events)


def test_cleanup_removes_netlink_xdp_left_by_sigkill(
    live: None, veth: tuple[str, str], uprobe_target: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = veth
    monkeypatch.setenv("EBPFHOOKS_RUN_DIR", str(tmp_path))
    prefix = f"{PFX}nl"
    proc = _worker(prefix, a, uprobe_target, "wait", "netlink")
    _wait_attached(proc)
    alive = [x for x in cleanup.find().xdp if x.interface == a]
    assert len(alive) == 1 and not alive[0].stale and proc.pid in alive[0].holders
    assert cleanup.clean().removed == ()  # its owner is alive: never removed
    proc.kill()
    proc.communicate(timeout=30)
    assert xdp_prog_on(a)  # netlink XDP outlives SIGKILL: that is why bpf_link is the default
    stale = [x for x in cleanup.find().xdp if x.interface == a]
    assert len(stale) == 1 and stale[0].stale and stale[0].recorded_by is not None
    assert "which is gone" in str(stale[0])
    report = cleanup.clean()
    assert any(a in r for r in report.removed)
    assert not xdp_prog_on(a)
    assert bpf_progs_named(prefix) == []
    assert list((tmp_path / "xdp").glob("*.json")) == []


def test_cleanup_xdp_without_record_needs_the_interface_named(
    live: None, veth: tuple[str, str], uprobe_target: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = veth
    monkeypatch.setenv("EBPFHOOKS_RUN_DIR", str(tmp_path / "run"))
    proc = _worker(f"{PFX}nr", a, uprobe_target, "wait", "netlink")
    _wait_attached(proc)
    proc.kill()
    proc.communicate(timeout=30)
    for rec in (tmp_path / "run" / "xdp").glob("*.json"):
        rec.unlink()  # as if bcc (not ebpfhooks) had attached it
    found = [x for x in cleanup.find().xdp if x.interface == a]
    assert len(found) == 1 and not found[0].stale
    assert "name the interface" in found[0].why()
    assert cleanup.clean().removed == ()
    assert xdp_prog_on(a)
    report = cleanup.clean([a])
    assert any(a in r for r in report.removed)
    assert not xdp_prog_on(a)


def test_cleanup_never_touches_xdp_held_by_a_bpf_link(
    cycle_bpfs: list[Any], veth: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = veth
    monkeypatch.setenv("EBPFHOOKS_XDP_ATTACH", "link")
    with Hook.from_spec(f"xdp:{a}:skb").attach(cycle_bpfs[0], f"{CPFX}0_xdp") as link:
        assert link.fd is not None
        found = [x for x in cleanup.find([a]).xdp if x.interface == a]
        assert len(found) == 1 and found[0].via_link and not found[0].stale
        # scoped to this interface: records other runs left elsewhere are not ours to judge
        assert cleanup.clean([a], interfaces=[a]).removed == ()
        assert xdp_prog_on(a)
    assert not xdp_prog_on(a)


def test_cleanup_removes_stale_bcc_uprobe_events(live: None, uprobe_target: Path) -> None:
    pid = 9_999_999  # beyond PID_MAX_LIMIT (4194304): never alive
    offset = 0x1000

    def write(line: str) -> None:  # open(..., "a") seeks, which tracefs refuses
        fd = os.open(tracefs_root() / "uprobe_events", os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)

    stale = f"p_{PFX}_stale_bcc_{pid}"
    alive = f"p_{PFX}_alive_bcc_{os.getpid()}"
    write(f"p:uprobes/{stale} {uprobe_target}:{offset:#x}")
    write(f"p:uprobes/{alive} {uprobe_target}:{offset:#x}")
    try:
        found = {e.event: e for e in cleanup.find().events}
        assert found[stale].stale and found[stale].owner_pid == pid
        assert not found[alive].stale
        report = cleanup.clean()
        assert any(stale in r for r in report.removed)
        assert stale not in uprobe_events()
        assert alive in uprobe_events()  # its owner (this process) is alive
    finally:
        for name in (stale, alive):
            if name in uprobe_events():
                write(f"-:uprobes/{name}")


def test_cli_cleanup_and_doctor_report_leftovers(live: None) -> None:
    out = subprocess.run([sys.executable, "-m", "ebpfhooks", "cleanup", "--dry-run", "--json"],
                         capture_output=True, text=True, check=True, cwd=HERE.parent).stdout
    data = json.loads(out)
    assert set(data) == {"events", "xdp", "records", "removed", "kept", "problems", "scope"}
    assert data["removed"] == []
    out = subprocess.run([sys.executable, "-m", "ebpfhooks", "doctor", "--json"],
                         capture_output=True, text=True, check=True, cwd=HERE.parent).stdout
    assert "no_leftovers" in json.loads(out)["checks"]
