"""Smoke tests of the examples: each runs a few seconds on this kernel; its output is checked."""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from conftest import (
    mac_of,
    not_possible,
    send_frames,
    type_into_bash,
    uprobe_events,
    xdp_prog_on,
)

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "tests" / "targets"
pytestmark = pytest.mark.live


_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_example_outlives_its_test() -> Iterator[None]:
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:   # a test failed half-way: SIGTERM detaches, then reap
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Run:
    """An example started in the background; its stdout is collected line by line."""

    def __init__(self, name: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / name), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        )
        _started.append(self.proc)
        self.lines: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, match: Callable[[str], bool], timeout: float = 60.0) -> str:
        """Wait until a line matches (the first wait covers bcc's compile)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match(line):
                    return line
            if self.proc.poll() is not None and not self._readers[0].is_alive():
                break
            time.sleep(0.05)
        self.finish(kill=True)
        pytest.fail(f"no matching line; stdout:\n{self.stdout}\nstderr:\n{self.stderr}")

    def attached(self) -> str:
        return self.wait_for(lambda line: line.startswith("attached "))

    def finish(self, timeout: float = 60.0, kill: bool = False) -> int:
        """Wait for the example to exit (kill it after ``timeout``); return its exit code."""
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        return self.proc.returncode

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines)

    @property
    def stderr(self) -> str:
        return "\n".join(self._err)


def _open_files_for(seconds: float, marker: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        subprocess.run(["cat", str(marker)], capture_output=True, check=False)
        time.sleep(0.1)


def test_hello_world_reports_opens(live: None, tmp_path: Path) -> None:
    from ebpfhooks.kernel import features

    marker = tmp_path / "ebpfhooks-hello-marker"
    marker.write_text("hi")
    opener = threading.Thread(target=_open_files_for, args=(8.0, marker))
    opener.start()
    try:
        out = subprocess.run(
            [sys.executable, str(ROOT / "examples/hello_world.py"), "--duration", "4"],
            capture_output=True, text=True, timeout=120, env=dict(os.environ),
        )
    finally:
        opener.join()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    if features.kprobes():
        assert lines[0] == "attached kprobe:do_sys_openat2: reporting opens for 4 s"
    else:
        assert lines[0].startswith("kprobe:do_sys_openat2 cannot attach: this kernel has no "
                                   "kprobe support")
        assert lines[0].endswith("; falling back to the stable tracepoint "
                                 "tracepoint:syscalls:sys_enter_openat")
        assert lines[1] == ("attached tracepoint:syscalls:sys_enter_openat: "
                            "reporting opens for 4 s")
    assert any(line.split()[1:3] == ["cat", str(marker)] for line in lines
               if len(line.split()) >= 3), out.stdout
    assert lines[-1].endswith("opens seen")


def test_execsnoop_reports_pid_filename_and_argv(live: None) -> None:
    marker = f"ehk-exec-{os.getpid()}"
    run = Run("execsnoop.py", "--duration", "3")
    assert run.attached() == ("attached tracepoint:syscalls:sys_enter_execve (stable: True): "
                              "tracing exec for 3 s")
    pids = []
    for _ in range(3):
        child = subprocess.run(["/bin/sh", "-c", 'echo "$$"', marker, "two words"],
                               capture_output=True, text=True, check=True)
        pids.append(int(child.stdout))
    many = [f"{marker}-{i}" for i in range(12)]
    subprocess.run(["/bin/true", *many], check=True)
    assert run.finish() == 0, run.stderr
    for pid in pids:
        # the child's pid; argv as the program received it (a space inside an argument
        # cannot be told from a separator in this simple output)
        assert any(line.split()[0] == str(pid) and line.split()[2:] == [
            "/bin/sh", "/bin/sh", "-c", 'echo', '"$$"', marker, "two", "words"]
            for line in run.lines[2:-1]), run.stdout
    # more than 8 arguments: the first 8 are shown, then "..."
    assert any(line.split()[2:] == ["/bin/true", "/bin/true", *many[:7], "..."]
               for line in run.lines[2:-1]), run.stdout
    assert run.lines[1].split() == ["PID", "COMM", "FILENAME", "ARGV"]
    assert run.lines[-1].endswith(" execs seen")


def test_bashreadline_prints_the_typed_command(live: None) -> None:
    marker = f"ehk-readline-{os.getpid()}"
    run = Run("bashreadline.py", "--duration", "30")
    first = run.attached()
    assert first.startswith("attached uretprobe:/bin/bash:readline -> "), first
    assert "bash:readline (vaddr 0x" in first
    typed = f"echo {marker} one two"
    shown = type_into_bash([typed, "true"])
    assert marker in shown   # bash really ran it
    line = run.wait_for(lambda text: text.endswith(" " + typed), timeout=10)
    pid, comm = line.split()[1:3]
    assert int(pid) > 0 and comm == "bash"
    run.wait_for(lambda text: text.endswith(" bash     true"), timeout=10)
    run.signal(signal.SIGINT)
    assert run.finish() == 0, run.stderr
    assert run.lines[-1].endswith(" lines read")
    assert f"bcc_{run.proc.pid}" not in uprobe_events()   # nothing left in tracefs either


def _histogram(lines: list[str]) -> dict[tuple[int, int], int]:
    rows = {}
    for line in lines:
        match = re.fullmatch(r"\s*(\d+) -> (\d+)\s+: (\d+)\s+\|\**\s*\|", line)
        if match:
            low, high, count = map(int, match.groups())
            rows[low, high] = count
    return rows


def test_mallocsize_histogram_of_known_sizes(live: None, build_dir: Path) -> None:
    if shutil.which("gcc") is None:
        not_possible("gcc is needed to build the malloc target")
    target = build_dir / "malloc_target"
    subprocess.run(["gcc", "-O2", "-o", str(target), str(TARGETS / "malloc_target.c")],
                   check=True)
    proc = subprocess.Popen([str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        run = Run("mallocsize.py", "--pid", str(proc.pid), "--duration", "30")
        first = run.attached()
        assert first.startswith(f"attached uprobe:libc:malloc[pid={proc.pid}] -> "), first
        assert "libc.so.6:malloc" in first
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "done 118\n"
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert run.finish() == 0, run.stderr   # it stops by itself when the process exits
    assert f"bcc_{run.proc.pid}" not in uprobe_events()
    assert f"process {proc.pid} exited" in run.lines
    rows = _histogram(run.lines)
    # malloc_target.c: 100 x 24 bytes, 11 x 12000, 7 x 300000, nothing else after the line
    assert rows[16, 31] == 100, run.stdout
    assert rows[8192, 16383] == 11, run.stdout
    assert rows[262144, 524287] == 7, run.stdout
    assert sum(rows.values()) == 118, run.stdout
    assert run.lines[-1] == f"118 calls, {100 * 24 + 11 * 12000 + 7 * 300000} bytes asked for"


def test_mallocsize_refuses_a_bad_pid() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples/mallocsize.py"), "--pid", "1x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "argument --pid: not a process id: '1x'" in out.stderr


PYGC_CHILD = """
import gc, os, sys
gc.disable()
class C:
    pass
def cycles(n):
    for _ in range(n):
        a, b = C(), C()
        a.b, b.a = b, a
print("ready", flush=True)
sys.stdin.readline()
found = [0, 0, 0]
for gen, garbage in ((0, 0), (1, 7), (1, 0), (2, 10)):
    cycles(garbage)
    found[gen] += gc.collect(gen)
print("done", *found, flush=True)
os._exit(0)  # no collections at exit
"""


def test_pygc_counts_collections_and_objects_per_generation(live: None) -> None:
    python = Path("/usr/bin/python3.11")
    if not python.exists():
        not_possible(f"{python} (Debian's, with USDT probes) is what pygc traces")
    proc = subprocess.Popen([str(python), "-c", PYGC_CHILD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        run = Run("pygc.py", "--pid", str(proc.pid), "--duration", "60")
        first = run.attached()
        assert first.startswith(
            f"attached usdt:{python}:python:gc__start[pid={proc.pid}] -> {python} "
            "python:gc__start (file offset 0x"), first
        run.wait_for(lambda line: line.startswith("tracing the garbage collections"))
        proc.stdin.write("go\n")
        proc.stdin.flush()
        done = proc.stdout.readline().split()
        assert done[0] == "done", done
        found = [int(n) for n in done[1:]]
        assert found[1] >= 14 and found[2] >= 20   # the cycles made (2 objects each)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert run.finish() == 0, run.stderr   # it stops by itself when the process exits
    assert f"process {proc.pid} exited" in run.lines
    rows = {}
    for line in run.lines[run.lines.index(f"process {proc.pid} exited") + 2:]:
        gen, count, objects, total, peak = line.split()
        rows[gen] = (int(count), int(objects))
        assert float(total) >= float(peak) > 0
    assert rows == {"0": (1, found[0]), "1": (2, found[1]), "2": (1, found[2])}, run.stdout


def test_pygc_refuses_a_file_without_the_probes() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples/pygc.py"), "--binary",
                          "/bin/true"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith("pygc: USDT probe 'python:gc__start' not found in "
                                 "the USDT probes of /usr/bin/true (.note.stapsdt)")


@pytest.mark.parametrize("parsed", [False, True], ids=["raw", "parsed"])
def test_syscount_counts_a_known_process(live: None, uprobe_target: Path, parsed: bool) -> None:
    n = 5000
    proc = subprocess.Popen([str(uprobe_target), str(n), "wait", "getppid"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        run = Run("syscount.py", "--duration", "2", "--top", "1000",
                  *(["--parsed"] if parsed else []))
        first = run.attached()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        proc.stdout.read()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert run.finish() == 0, run.stderr
    if parsed:
        assert first == ("attached tracepoint:raw_syscalls:sys_enter (parsed record; its "
                         "overhead is rated 'moderate'): counting for 2 s")
    else:
        assert first == ("attached rawtracepoint:sys_enter (raw: arguments not parsed; its "
                         "overhead is rated 'low'): counting for 2 s")
    assert run.lines[1].split() == ["PID", "COMM", "SYSCALLS", "TOP", "SYSCALL"]
    rows = {line.split()[0]: line.split()[1:] for line in run.lines[2:-1]}
    comm, total, top, top_count = rows[str(proc.pid)]
    # after the line: n getppid calls, then the write of the result and exit_group
    assert comm == "uprobe_target"
    assert (top, top_count) == ("getppid", f"({n})")
    assert n < int(total) < n + 10
    assert re.fullmatch(r"\d+ syscalls by \d+ processes", run.lines[-1])


BUSY = """
import ctypes, sys
ctypes.CDLL(None).prctl(15, b"ehk-busy", 0, 0, 0)   # PR_SET_NAME: the comm to look for
print("busy", flush=True)
while True:
    pass
"""


def test_profile_top_finds_a_busy_process(live: None) -> None:
    busy = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True)
    _started.append(busy)
    try:
        assert busy.stdout is not None and busy.stdout.readline() == "busy\n"
        run = Run("profile_top.py", "--duration", "3", "--top", "20")
        from ebpfhooks.kernel.pmu import online_cpus

        assert run.attached() == (f"attached profile:hz:49 on {len(online_cpus())} CPUs: "
                                  "sampling for 3 s")
        assert run.finish() == 0, run.stderr
    finally:
        busy.kill()
        busy.wait()
    assert run.lines[1].split() == ["PID", "COMM", "SAMPLES", "CPU%"]
    rows = {int(line.split()[0]): line.split()[1:] for line in run.lines[2:-1]}
    assert 0 < len(rows) <= 20
    comm, samples, share = rows[busy.pid]
    # it ran all along: a good part of 3 s x 49 Hz, however busy the machine is
    assert comm == "ehk-busy" and 10 <= int(samples) <= 3 * 49 * 1.5, rows[busy.pid]
    assert 0 < float(share) <= 150
    m = re.fullmatch(r"(\d+) samples on (\d+) CPUs in ([\d.]+) s \(49 Hz\)", run.lines[-1])
    assert m is not None, run.lines[-1]
    assert sum(int(r[1]) for r in rows.values()) <= int(m.group(1))


def _ipv4_frame(dst_mac: str, src_mac: str, proto: int, payload: bytes) -> bytes:
    """An Ethernet frame carrying an IPv4 packet of protocol ``proto`` (checksum left 0)."""
    total = 20 + len(payload)
    ip = bytes([0x45, 0, total >> 8, total & 0xFF, 0, 1, 0, 0, 64, proto, 0, 0,
                10, 200, 0, 2, 10, 200, 0, 1])
    return (bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
            + b"\x08\x00" + ip + payload)


def _send(iface: str, frames: list[bytes]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((iface, 0))
        for frame in frames:
            sock.send(frame.ljust(60, b"\0"))


def _udp(sport: int, dport: int, data: bytes) -> bytes:
    n = 8 + len(data)
    return (sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + n.to_bytes(2, "big")
            + b"\0\0" + data)


def _is_row(row: str, line: str) -> bool:
    return line.strip() == row


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_xdp_count_counts_per_protocol_and_detaches(
    live: None, veth: tuple[str, str], stop: str
) -> None:
    a, b = veth
    assert not xdp_prog_on(a)
    run = Run("xdp_count.py", a, "--duration", "60", "--interval", "0.2")
    first = run.attached()
    assert first.startswith(f"attached xdp:{a} -> ifindex "), first
    assert xdp_prog_on(a)
    send_frames(b, mac_of(a), 7)   # EtherType 0x88b5
    _send(b, [_ipv4_frame(mac_of(a), mac_of(b), 253, b"ehk") for _ in range(5)])
    _send(b, [_ipv4_frame(mac_of(a), mac_of(b), 17, _udp(4000, 5000, b"ehk"))
              for _ in range(3)])
    for row in ("7  0x88b5", "5  IPv4/253", "3  IPv4/UDP"):
        run.wait_for(functools.partial(_is_row, row), timeout=10)
    run.signal(getattr(signal, stop))
    assert run.finish() == 0, run.stderr
    assert not xdp_prog_on(a)
    final = run.lines[run.lines.index(f"detached from {a}") + 1:]
    assert final[0].split() == ["PACKETS", "PROTOCOL"]
    rows = {line.split()[1]: int(line.split()[0]) for line in final[1:]}
    assert rows["0x88b5"] == 7 and rows["IPv4/253"] == 5 and rows["IPv4/UDP"] == 3, run.stdout
    assert rows["total"] == sum(n for name, n in rows.items() if name != "total")


def test_xdp_count_refuses_a_bad_interface_name() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples/xdp_count.py"), "eth0;x"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith("xdp_count: invalid hook spec: interface: character ';' "
                                 "cannot be in a network interface name"), out.stderr


def test_sniff_prints_packet_summaries(live: None, veth: tuple[str, str]) -> None:
    a, b = veth
    run = Run("sniff.py", a, "--duration", "30", "--count", "5")
    assert run.attached() == f"attached raw_socket:{a} -> ifindex {_ifindex(a)}: every packet " \
                             "for 30 s"
    send_frames(b, mac_of(a), 3)
    _send(b, [_ipv4_frame(mac_of(a), mac_of(b), 17, _udp(4000, 5000, b"ehk"))
              for _ in range(2)])
    assert run.finish() == 0, run.stderr   # stops by itself after --count packets
    lines = [line.split(None, 3) for line in run.lines[1:-1]]
    assert [(direction, size) for _, direction, size, _ in lines] == [("in", "60")] * 5
    summaries = [summary for *_, summary in lines]
    assert summaries == [f"{mac_of(b)} > {mac_of(a)} 0x88b5"] * 3 + [
        f"{mac_of(b)} > {mac_of(a)} IPv4 10.200.0.2:4000 > 10.200.0.1:5000 UDP"] * 2, run.stdout
    assert run.lines[-1] == "5 packets printed; the filter saw 5 and passed 5"


def test_sniff_filters_by_ethertype_in_the_kernel(live: None, veth: tuple[str, str]) -> None:
    a, b = veth
    run = Run("sniff.py", a, "--duration", "30", "--count", "2", "--ethertype", "0x0800")
    assert run.attached().endswith(": EtherType 0x0800 for 30 s")
    send_frames(b, mac_of(a), 4)   # not IPv4: the program drops them before the socket
    _send(b, [_ipv4_frame(mac_of(a), mac_of(b), 253, b"ehk") for _ in range(2)])
    assert run.finish() == 0, run.stderr
    assert [line.split(None, 3)[3] for line in run.lines[1:-1]] == [
        f"{mac_of(b)} > {mac_of(a)} IPv4 10.200.0.2 > 10.200.0.1 proto 253"] * 2, run.stdout
    assert run.lines[-1] == "2 packets printed; the filter saw 6 and passed 2"


def test_sniff_refuses_a_bad_ethertype() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples/sniff.py"), "lo",
                          "--ethertype", "0x800);"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "argument --ethertype: not an EtherType: '0x800);'" in out.stderr


def _ifindex(iface: str) -> int:
    return int(Path(f"/sys/class/net/{iface}/ifindex").read_text())


OPENER = """
import os, sys
sys.stdin.readline()
for _ in range(int(sys.argv[1])):
    os.close(os.open("/dev/null", os.O_RDONLY))
print("done", flush=True)
"""


def test_kprobe_fallback_chooses_a_hook_and_says_why(live: None) -> None:
    from ebpfhooks.kernel import features

    n = 300
    opener = subprocess.Popen([sys.executable, "-c", OPENER, str(n)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run = Run("kprobe_fallback.py", "--duration", "2", "--top", "1000")
        attached = run.attached()
        assert opener.stdin is not None and opener.stdout is not None
        opener.stdin.write("go\n")
        opener.stdin.flush()
        assert opener.stdout.readline() == "done\n"
        assert opener.wait(timeout=10) == 0
    finally:
        if opener.poll() is None:
            opener.kill()
            opener.wait()
    assert run.finish() == 0, run.stderr
    assert run.lines[0] == ("ebpfhooks.suggest('do_sys_openat2') -> "
                            "tracepoint:syscalls:sys_enter_openat: a stable tracepoint that "
                            "observes the same thing")
    assert run.lines[1] == "chain: kprobe:do_sys_openat2 | tracepoint:syscalls:sys_enter_openat"
    if features.kprobes():
        assert attached == ("attached kprobe:do_sys_openat2 (unstable) -> on_kprobe: counting "
                            "events per process for 2 s")
        assert run.lines[2] == attached   # nothing passed over
    else:
        assert run.lines[2].startswith("passed over kprobe:do_sys_openat2: "
                                       "kprobe:do_sys_openat2 cannot attach: this kernel has "
                                       "no kprobe support"), run.lines[2]
        assert attached == ("attached tracepoint:syscalls:sys_enter_openat (stable) -> on_tp: "
                            "counting events per process for 2 s")
    rows = {line.split()[0]: line.split()[1:] for line in run.lines
            if line.split() and line.split()[0].isdigit() and len(line.split()) == 3}
    _comm, events = rows[str(opener.pid)]
    # after its line the opener opens /dev/null n times (and nothing else, or very little)
    assert n <= int(events) <= n + 5, run.stdout
    assert re.fullmatch(r"\d+ events from \d+ processes", run.lines[-1])


def test_kprobe_fallback_keeps_a_suggested_raw_tracepoint(live: None) -> None:
    """The example keys its functions by kind word: a suggested raw tracepoint (as tp_btf,
    typed, where the kernel has BTF) joins the chain."""
    import importlib.util

    import ebpfhooks

    if ebpfhooks.suggest("sched_entry_tp").recommended != "tp_btf:sched_entry_tp":
        not_possible("this kernel has no raw tracepoint sched_entry_tp to suggest")
    spec = importlib.util.spec_from_file_location("kprobe_fallback",
                                                  ROOT / "examples/kprobe_fallback.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    chain, _note = module.build_chain("sched_entry_tp")
    assert str(chain) == "kprobe:sched_entry_tp | tp_btf:sched_entry_tp"
    assert [a.fn_name for a in chain] == ["on_kprobe", "on_tp_btf"]


def test_kprobe_fallback_lists_every_reason_when_nothing_fits(live: None) -> None:
    from ebpfhooks.kernel import features

    out = subprocess.run([sys.executable, str(ROOT / "examples/kprobe_fallback.py"),
                          "--kprobe", "ehk_no_such_function_x"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stdout.splitlines()[1] == "chain: kprobe:ehk_no_such_function_x"
    assert out.stderr.splitlines()[:2] == [
        "kprobe_fallback: no alternative of the chain can attach on this kernel:",
        out.stderr.splitlines()[1]]
    reason = ("symbol 'ehk_no_such_function_x' not found in /proc/kallsyms" if features.kprobes()
              else "cannot attach: this kernel has no kprobe support")
    assert out.stderr.splitlines()[1].startswith(f"  kprobe:ehk_no_such_function_x: {reason}")


OPENS = """
import os, sys
sys.stdin.readline()
for _ in range(int(sys.argv[1])):
    os.close(os.open("/dev/null", os.O_RDONLY))
for _ in range(int(sys.argv[2])):
    try:
        os.open("/ehk-no-such-file", os.O_RDONLY)
    except FileNotFoundError:
        pass
print("done", flush=True)
"""


@pytest.mark.guest
def test_fentry_opens_counts_opens_and_failures(live: None) -> None:
    """fentry/fexit where the kernel has BPF trampolines (the VM tier), else the fallback
    tracepoints (this machine), each saying what it passed over."""
    from ebpfhooks.kernel import features

    n, missing = 200, 30
    opener = subprocess.Popen([sys.executable, "-c", OPENS, str(n), str(missing)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run = Run("fentry_opens.py", "--duration", "3", "--top", "1000")
        run.wait_for(lambda line: line.startswith("counting opens for 3 s"), timeout=120)
        assert opener.stdin is not None and opener.stdout is not None
        opener.stdin.write("go\n")
        opener.stdin.flush()
        assert opener.stdout.readline() == "done\n"
        assert opener.wait(timeout=10) == 0
    finally:
        if opener.poll() is None:
            opener.kill()
            opener.wait()
    assert run.finish() == 0, run.stderr
    if features.trampolines():
        assert run.lines[:2] == ["attached fentry:do_sys_openat2 -> on_fentry",
                                 "attached fexit:do_sys_openat2 -> on_fexit"]
    else:
        assert run.lines[0].startswith(
            "passed over fentry:do_sys_openat2: fentry:do_sys_openat2 cannot attach: this "
            "kernel has no BPF trampolines"), run.lines[0]
        assert run.lines[1] == "attached tracepoint:syscalls:sys_enter_openat -> on_enter"
        assert run.lines[2].startswith("passed over fexit:do_sys_openat2: ")
        assert run.lines[3] == "attached tracepoint:syscalls:sys_exit_openat -> on_exit"
    rows = {line.split()[0]: line.split()[1:] for line in run.lines
            if line.split() and line.split()[0].isdigit() and len(line.split()) == 4}
    _comm, opens, failed = rows[str(opener.pid)]
    assert n + missing <= int(opens) <= n + missing + 5, run.stdout
    assert int(failed) == missing, run.stdout
    assert re.fullmatch(r"\d+ opens \(\d+ failed\) from \d+ processes", run.lines[-1])


@pytest.mark.guest
def test_exec_tpbtf_shows_each_exec_with_its_typed_argument(live: None) -> None:
    run = Run("exec_tpbtf.py", "--duration", "120")   # Ctrl-C ends it (the VM tier is slow)
    assert run.attached() == ("attached tp_btf:sched_process_exec -> on_exec via bpf_link: "
                              "tracing exec for 120 s")
    child = subprocess.run(["/bin/sh", "-c", 'echo "$$"; exec /usr/bin/env true'],
                           capture_output=True, text=True, check=True)
    pid = child.stdout.strip()
    run.wait_for(lambda line: line.split()[:1] == [pid] and line.endswith(" true"))
    run.signal(signal.SIGINT)
    assert run.finish() == 0, run.stderr
    assert run.lines[1].split() == ["PID", "OLD", "PID", "COMM"]
    mine = [line.split() for line in run.lines[2:-1] if line.split()[0] == pid]
    # the fork's exec of sh, sh's exec of env, env's exec of true: old pid is the pid
    assert mine == [[pid, pid, "sh"], [pid, pid, "env"], [pid, pid, "true"]], run.stdout
    assert run.lines[-1].endswith(" execs seen")


DENIED_CHILD = """
import ctypes, os, sys
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)   # PR_SET_NAME: the comm
sys.stdin.readline()
try:
    os.close(os.open("/dev/null", os.O_RDONLY))
    print("allowed", flush=True)
except PermissionError as err:
    print("denied", err.errno, flush=True)
"""


def _open_as(comm: str) -> str:
    out = subprocess.run([sys.executable, "-c", DENIED_CHILD, comm], input="go\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.guest
def test_lsm_deny_denies_one_command_until_it_exits(live: None) -> None:
    from ebpfhooks.kernel import features

    comm = f"ehkdeny{os.getpid() % 100000}"
    run = Run("lsm_deny.py", "--comm", comm, "--duration", "120")   # Ctrl-C ends it
    if not features.trampolines():   # this machine: the BPF LSM is on, trampolines are not
        assert run.finish() == 1
        assert run.stderr.startswith("lsm_deny: lsm:file_open cannot attach: this kernel has "
                                     "no BPF trampolines, which LSM programs run from ("), \
            run.stderr
        assert run.stderr.rstrip().endswith("; the BPF LSM itself is active")
        assert _open_as(comm) == "allowed"
        return
    assert run.attached() == (f"attached lsm:file_open -> deny_open: denying file opens by "
                              f"{comm!r} for 120 s")
    child = subprocess.Popen([sys.executable, "-c", DENIED_CHILD, comm], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate("go\n", timeout=60)
    assert out.strip() == f"denied {errno.EPERM}"
    assert _open_as(f"ehkother{os.getpid() % 100000}") == "allowed"   # other commands
    run.signal(signal.SIGINT)
    assert run.finish() == 0, run.stderr
    assert [child.pid, 1] in [[int(x) for x in line.split()] for line in run.lines[2:-1]]
    assert run.lines[-1] == f"detached: 1 opens denied to {comm!r} in 1 processes"
    assert _open_as(comm) == "allowed"   # detached


def test_lsm_deny_refuses_a_bad_command_name() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples/lsm_deny.py"), "--comm",
                          "x" * 16], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr == (f"lsm_deny: --comm {'x' * 16!r}: a command name is 1 to 15 bytes "
                          "(what ps -o comm shows)\n")


EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_has_help_and_duration(name: str) -> None:
    text = (ROOT / "examples" / name).read_text()
    summary = text.split('"""', 2)[1].splitlines()[0]
    assert summary.endswith(".") and len(summary) < 100
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--duration" in out.stdout
    assert " ".join(summary.split()) in " ".join(out.stdout.split())
    # functions bcc would attach by itself at compile time (no Link would own them)
    assert not re.search(r"TRACEPOINT_PROBE\(|RAW_TRACEPOINT_PROBE\(|"
                         r"\bint\s+(kprobe|kretprobe|tracepoint|raw_tracepoint)__", text)
    assert ".attach_" not in text   # ebpfhooks attaches, never bcc's attach_* directly


def test_every_example_has_a_smoke_test() -> None:
    tests = Path(__file__).read_text()
    missing = [name for name in EXAMPLES if f'"{name}"' not in tests and
               f"examples/{name}" not in tests]
    assert not missing
