"""ebpfhooks.cleanup: XDP records reconciled with the kernel, and a scope (--iface, --pid).

Live tests make their own veth pairs (names carry this pid), their own netlink XDP
programs (worker processes they SIGKILL) and their own bcc-named tracefs events, and
assert exactly what is removed and what is kept. Every ``clean`` here is scoped, so
nothing another engineer's run left is touched. The unit tests at the end check the
same rules without the kernel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import uprobe_events, veth_pair, xdp_prog_on

from ebpfhooks import cleanup
from ebpfhooks.cleanup import XdpProgram, XdpRecord
from ebpfhooks.records import start_time

HERE = Path(__file__).parent
TAG = f"ehs{os.getpid() % 10000}"  # program and event names of this run (< 16 chars)

WORKER = """
import os, sys, time
from bcc import BPF
from ebpfhooks import Hook
iface, fn = sys.argv[1:3]
bpf = BPF(text="int %s(struct xdp_md *ctx) { return XDP_PASS; }" % fn)
link = Hook.from_spec(f"xdp:{iface}:skb").attach(bpf, fn)
print("attached", flush=True)
while True:
    time.sleep(1)
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Worker:
    """A process holding a netlink XDP program that ebpfhooks recorded."""

    def __init__(self, iface: str, fn: str, run: Path) -> None:
        env = {**os.environ, "EBPFHOOKS_XDP_ATTACH": "netlink", "EBPFHOOKS_RUN_DIR": str(run),
               "PYTHONPATH": str(HERE.parent)}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, iface, fn], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "attached":
            self.proc.kill()
            raise AssertionError(f"worker did not attach: {line} {self.proc.stderr.read()}")
        self.pid = self.proc.pid

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=30)


def _write_event(line: str) -> None:
    from ebpfhooks.kernel.tracefs import tracefs_root

    fd = os.open(tracefs_root() / "uprobe_events", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    run = tmp_path / "run"
    monkeypatch.setenv("EBPFHOOKS_RUN_DIR", str(run))
    return run


@pytest.fixture
def two_veths(live: None) -> Iterator[tuple[str, str]]:
    with veth_pair("ehs") as (a, _), veth_pair("eht") as (b, _):
        yield a, b


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((run / "xdp").glob("*.json"))]


@pytest.mark.live
def test_record_of_a_program_removed_by_hand_is_found_and_dropped(
    two_veths: tuple[str, str], run_dir: Path
) -> None:
    a, _ = two_veths
    worker = Worker(a, f"{TAG}r", run_dir)
    try:
        assert [r["pid"] for r in _records(run_dir)] == [worker.pid]
        # while the program is attached, its living owner's record is not stale
        report = cleanup.clean(interfaces=[a])
        assert report.removed == () and report.complete
        assert [(r.attached, r.recorder_alive, r.stale) for r in report.records] == [
            (True, True, False)]
        assert xdp_prog_on(a) and len(_records(run_dir)) == 1
        _ip("link", "set", "dev", a, "xdpgeneric", "off")  # removed by hand
        assert not xdp_prog_on(a)
        lines = cleanup.find().lines()
        stale = [ln for ln in lines if ln.startswith("stale:   xdp record") and a in ln]
        assert len(stale) == 1, lines
        assert f"recorded by pid {worker.pid} alive" in stale[0]
        assert "no longer attached there" in stale[0]
        out = subprocess.run([sys.executable, "-m", "ebpfhooks", "cleanup", "--iface", a,
                              "--dry-run", "--json"], capture_output=True, text=True,
                             cwd=HERE.parent, env={**os.environ})
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert [(r["prog_id"], r["stale"]) for r in data["records"]] == [
            (_records(run_dir)[0]["prog_id"], True)]
        assert data["events"] == [] and data["scope"] == f"on {a}"
        report = cleanup.clean(interfaces=[a])
        assert len(report.removed) == 1 and report.removed[0].startswith("xdp record")
        assert _records(run_dir) == []
        assert worker.proc.poll() is None  # the living worker was left alone
        assert cleanup.find(interfaces=[a]).lines() == [f"nothing left behind (on {a})"]
    finally:
        worker.kill()


@pytest.mark.live
def test_scope_pid_and_iface_remove_exactly_their_part(
    two_veths: tuple[str, str], run_dir: Path, uprobe_target: Path
) -> None:
    a, b = two_veths
    w1 = Worker(a, f"{TAG}a", run_dir)
    try:
        w2 = Worker(b, f"{TAG}b", run_dir)
    except BaseException:
        w1.kill()
        raise
    events = {"w1": f"p_{TAG}_one_bcc_{w1.pid}", "w2": f"p_{TAG}_two_bcc_{w2.pid}",
              "me": f"p_{TAG}_me_bcc_{os.getpid()}"}
    for name in events.values():  # as bcc names them; w1/w2 are the "bcc processes"
        _write_event(f"p:uprobes/{name} {uprobe_target}:0x1000")
    try:
        w1.kill()
        w2.kill()
        assert xdp_prog_on(a) and xdp_prog_on(b)  # netlink XDP outlives SIGKILL

        # --pid of a running process (this test): nothing of it, and exit status 1
        report = cleanup.clean(pids=[os.getpid()])
        assert report.removed == () and report.events == () and report.xdp == ()
        comm = Path("/proc/self/comm").read_text().strip()
        assert report.kept == (f"pid {os.getpid()} ({comm}) is running: what a living "
                               "process attached is never removed; stop it first",)
        out = subprocess.run([sys.executable, "-m", "ebpfhooks", "cleanup", "--pid",
                              str(os.getpid())], capture_output=True, text=True,
                             cwd=HERE.parent)
        assert out.returncode == 1 and "is running" in out.stdout, out

        # --pid W1: its event and its XDP program (and record), nothing else
        found = cleanup.find(pids=[w1.pid])
        assert [e.event for e in found.events] == [events["w1"]]
        assert [x.interface for x in found.xdp] == [a]
        assert [r.interface for r in found.records] == [a]
        report = cleanup.clean(pids=[w1.pid])
        assert len(report.removed) == 2, report.removed
        assert events["w1"] in report.removed[0] and a in report.removed[1]
        text = uprobe_events()
        assert events["w1"] not in text and events["w2"] in text and events["me"] in text
        assert not xdp_prog_on(a) and xdp_prog_on(b)
        assert [r["pid"] for r in _records(run_dir)] == [w2.pid]

        # --iface B: W2's XDP program, but not W2's tracefs event
        found = cleanup.find(interfaces=[b])
        assert found.events == () and [x.interface for x in found.xdp] == [b]
        out = subprocess.run([sys.executable, "-m", "ebpfhooks", "cleanup", "--iface", b],
                             capture_output=True, text=True, cwd=HERE.parent)
        assert out.returncode == 0, out
        assert out.stdout.startswith(f"removed: xdp on {b} (generic)"), out.stdout
        assert not xdp_prog_on(b) and _records(run_dir) == []
        assert events["w2"] in uprobe_events()

        # --pid W2: now its event
        report = cleanup.clean(pids=[w2.pid])
        assert len(report.removed) == 1 and events["w2"] in report.removed[0]
        assert events["me"] in uprobe_events()  # ours: alive, never stale
    finally:
        for proc in (w1, w2):
            if proc.proc.poll() is None:
                proc.kill()
        text = uprobe_events()
        for name in events.values():
            if name in text:
                _write_event(f"-:uprobes/{name}")


@pytest.mark.live
def test_error_scope_names_a_missing_interface(live: None) -> None:
    from ebpfhooks import InterfaceNotFoundError

    with pytest.raises(InterfaceNotFoundError, match="network interface 'ehsnosuch0' not"):
        cleanup.find(interfaces=["ehsnosuch0"])


# --------------------------------------------------------------------------- unit


def test_unrecorded_program_is_never_stale_outside_the_initial_pid_namespace() -> None:
    named = XdpProgram("v0", 5, 9, "f", "generic", explicit=True)
    assert named.stale
    blind = XdpProgram("v0", 5, 9, "f", "generic", explicit=True, blind=True)
    assert not blind.stale and "other pid namespaces cannot be seen" in blind.why()
    recorded = XdpProgram("v0", 5, 9, "f", "generic", recorded_by=(1, 2), blind=True)
    assert recorded.stale  # ebpfhooks recorded it and its recorder is gone


def test_record_str_and_staleness() -> None:
    rec = XdpRecord(5, 9, "f", 42, 7, interface="v0", attached=False)
    assert rec.stale
    assert str(rec) == ("xdp record 5.9.json: prog 9 f on v0, recorded by pid 42 gone; its "
                        "program is no longer attached there (removed by hand, e.g. ip link "
                        "set dev v0 xdp off)")
    gone = XdpRecord(77, 9, "", 42, 7, interface=None, attached=False)
    assert "on ifindex 77 (interface gone)" in str(gone)
    assert not XdpRecord(5, 9, "f", 42, 7, interface="v0").stale


@pytest.fixture
def fake_kernel(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """lo (ifindex 1) with XDP prog 8 (recorded by a dead pid); a record of prog 7 whose
    program is gone (recorded by this process); bcc events of a dead pid and of us."""
    dead = 4_000_000  # below PID_MAX_LIMIT, far above what this machine hands out
    me, start = os.getpid(), start_time(os.getpid())
    (run_dir / "xdp").mkdir(parents=True)
    for prog, pid, st in ((7, me, start), (8, dead, 1)):
        (run_dir / "xdp" / f"1.{prog}.json").write_text(json.dumps(
            {"ifindex": 1, "prog_id": prog, "name": f"p{prog}", "pid": pid,
             "start_time": st}))
    (run_dir / "xdp" / "garbage.json").write_text("{")
    ip = [{"ifindex": 1, "ifname": "lo", "xdp": {"mode": 2, "prog": {"id": 8, "name": "p8"}}}]
    monkeypatch.setattr(cleanup.xdp, "_ip_link_json", lambda: json.dumps(ip))
    monkeypatch.setattr(cleanup.xdp, "_bpf_fd_holders", lambda: ({}, set(), []))
    text = (f"p:uprobes/p_x_bcc_{dead} /bin/true:0x10\n"
            f"p:uprobes/p_y_bcc_{me} /bin/true:0x10\n")

    def events() -> list[Any]:
        return [attrs.evolve(e, owner_alive=cleanup.events._pid_alive(e.owner_pid))
                for e in cleanup.parse_probe_events(text, "uprobe_events")]

    monkeypatch.setattr(cleanup.report, "probe_events", events)
    return {"dead": dead, "me": me}


def test_find_reconciles_records_with_the_kernel(fake_kernel: dict[str, Any]) -> None:
    report = cleanup.find()
    recs = {r.prog_id: r for r in report.records}
    assert set(recs) == {7, 8}  # the garbage record is skipped
    assert recs[7].stale and recs[7].recorder_alive and recs[7].interface == "lo"
    assert not recs[8].stale and not recs[8].recorder_alive
    assert [x.prog_id for x in report.xdp if x.stale] == [8]
    assert [str(s).split(":")[0] for s in report.stale] == [
        "uprobe_events", "xdp on lo (generic)", "xdp record 1.7.json"]
    check = cleanup.doctor_check()
    assert check.status.value == "no" and "the record of XDP prog 7" in check.reason


def test_find_scopes(fake_kernel: dict[str, Any]) -> None:
    dead, me = fake_kernel["dead"], fake_kernel["me"]
    by_dead = cleanup.find(pids=[dead])
    assert [e.owner_pid for e in by_dead.events] == [dead]
    assert [x.prog_id for x in by_dead.xdp] == [8] and [r.prog_id for r in by_dead.records] == [8]
    assert by_dead.kept == () and by_dead.scope == f"by pid {dead}"
    by_me = cleanup.find(pids=[me])
    assert (by_me.events, by_me.xdp, by_me.records) == ((), (), ())
    assert len(by_me.kept) == 1 and "is running" in by_me.kept[0] and not by_me.complete
    on_lo = cleanup.find(interfaces=["lo"])
    assert on_lo.events == () and {r.prog_id for r in on_lo.records} == {7, 8}
    both = cleanup.find(interfaces=["lo"], pids=[dead])
    assert [r.prog_id for r in both.records] == [8] and both.scope == f"on lo and by pid {dead}"
