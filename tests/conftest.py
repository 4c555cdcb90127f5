"""Shared fixtures: the live-kernel gate, compiled targets, a veth pair, one BPF module.

Live tests attach real programs to the running kernel. Where they cannot run
(no root, no bcc, no tracefs) they skip on a developer's machine but FAIL in
CI (``CI=true``), so a green CI always means the kernel was really exercised.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
# A run started as a background job (`make test &`, nohup) inherits SIGINT ignored, and an
# ignored signal stays ignored across exec: the tests that end a child with SIGINT (Ctrl-C)
# would then wait on a child that never stops. A handler here is reset to the default in
# every child at exec, so children see Ctrl-C as a user's process does.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_ETHERTYPE = 0x88B5
NR_GETPPID = 110  # x86_64


def not_possible(reason: str) -> None:
    """Skip a live test locally; fail it in CI."""
    if IN_CI:
        pytest.fail(f"live test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def live() -> None:
    """Gate for live tests: root, bcc importable, tracefs mounted."""
    if os.geteuid() != 0:
        not_possible("needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)")
    try:
        import bcc  # noqa: F401
    except ImportError:
        not_possible("bcc is not importable (apt-get install python3-bpfcc; use make test)")
    from ebpfhooks.errors import TracefsNotMountedError
    from ebpfhooks.kernel.tracefs import tracefs_root

    try:
        tracefs_root()
    except TracefsNotMountedError as err:
        not_possible(str(err))


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="session")
def uprobe_target(build_dir: Path) -> Path:
    """The C target program for uprobe tests, compiled as a PIE."""
    if shutil.which("gcc") is None:
        not_possible("gcc is needed to build the uprobe target")
    out = build_dir / "uprobe_target"
    subprocess.run(
        ["gcc", "-O2", "-g", "-fPIE", "-pie", "-o", str(out),
         str(HERE / "targets/uprobe_target.c")],
        check=True,
    )
    return out


@pytest.fixture(scope="session")
def uprobe_lib_target(build_dir: Path) -> tuple[Path, Path]:
    """(program, library): the uprobe target linked against libehklib.so (rpath set)."""
    if shutil.which("gcc") is None:
        not_possible("gcc is needed to build the uprobe target")
    libdir = build_dir / "lib"
    libdir.mkdir(exist_ok=True)
    lib = libdir / "libehklib.so"
    subprocess.run(["gcc", "-O2", "-g", "-shared", "-fPIC", "-o", str(lib),
                    str(HERE / "targets/ehklib.c")], check=True)
    prog = build_dir / "uprobe_target_lib"
    subprocess.run(["gcc", "-O2", "-g", "-DWITH_LIB", "-o", str(prog),
                    str(HERE / "targets/uprobe_target.c"), f"-L{libdir}", "-lehklib",
                    f"-Wl,-rpath,{libdir}"], check=True)
    return prog, lib


@pytest.fixture(scope="session")
def usdt_target(build_dir: Path) -> Path:
    """The USDT target program (tests/targets/usdt_target.c: probes ehk:tick, ehk:multi)."""
    if shutil.which("gcc") is None:
        not_possible("gcc is needed to build the USDT target")
    out = build_dir / "usdt_target"
    subprocess.run(["gcc", "-O2", "-g", "-fPIE", "-pie", "-o", str(out),
                    str(HERE / "targets/usdt_target.c")], check=True)
    return out


@pytest.fixture(scope="session")
def bpf(live: None) -> Iterator[Any]:
    """One compiled module with every live test program (one bcc compile per session)."""
    from bcc import BPF

    text = (HERE / "live_programs.c").read_text()
    module = BPF(text=text, cflags=[f"-DFILTER_PID={os.getpid()}", f"-DNR_GETPPID={NR_GETPPID}"])
    yield module
    module.cleanup()


class Counters:
    """Read and reset the ``counts`` array of the live programs."""

    KPROBE, KRETPROBE, TP, RAWTP, XDP, UPROBE, URETPROBE, RAWSOCK = range(8)

    def __init__(self, bpf: Any) -> None:
        self.bpf = bpf

    def reset(self) -> None:
        self.bpf["counts"].clear()
        self.bpf["retsum"].clear()

    def __getitem__(self, idx: int) -> int:
        return int(self.bpf["counts"][ctypes.c_int(idx)].value)

    def retsum(self) -> int:
        return int(self.bpf["retsum"][ctypes.c_int(0)].value)

    def wait_for(self, idx: int, expected: int, timeout: float = 3.0) -> int:
        """Poll until the counter reaches ``expected`` (packets are delivered in softirq)."""
        deadline = time.monotonic() + timeout
        while self[idx] < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # let stragglers land, so too many hits are seen too
        return self[idx]


@pytest.fixture
def counters(bpf: Any) -> Counters:
    c = Counters(bpf)
    c.reset()
    return c


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _drop_orphan_veths(prefix: str) -> None:
    """Delete ``<prefix><pid>a`` pairs whose test process is gone (a run killed by a signal
    cannot delete its own), so a later run sees no XDP records or programs on them."""
    for name in os.listdir("/sys/class/net"):
        m = re.fullmatch(re.escape(prefix) + r"(\d+)a", name)
        if m and not any(Path(f"/proc/{pid}").exists()
                         for pid in range(int(m.group(1)), 4_194_304, 100_000)):
            subprocess.run(["ip", "link", "del", name], capture_output=True)


@contextlib.contextmanager
def veth_pair(prefix: str) -> Iterator[tuple[str, str]]:
    """Make a veth pair (A, B) named ``<prefix><pid>a/b``, up, IPv6 off; delete it after.

    Frames sent on B arrive on A. Names carry the pid so concurrent runs never collide.
    """
    _drop_orphan_veths(prefix)
    base = f"{prefix}{os.getpid() % 100000}"
    a, b = base + "a", base + "b"
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    try:
        for name in (a, b):
            Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1")
            _ip("link", "set", name, "up")
        yield a, b
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True)


@pytest.fixture(scope="session")
def veth(live: None) -> Iterator[tuple[str, str]]:
    """A veth pair (A, B) made for this run; frames sent on B arrive on A."""
    with veth_pair("ehk") as pair:
        yield pair


def send_frames(iface: str, peer_mac: str, count: int) -> None:
    """Send ``count`` Ethernet frames of the test EtherType out of ``iface``."""
    dst = bytes.fromhex(peer_mac.replace(":", ""))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((iface, 0))
        src = sock.getsockname()[4]
        frame = dst + src + TEST_ETHERTYPE.to_bytes(2, "big") + b"ebpfhooks-test".ljust(46, b"\0")
        for _ in range(count):
            sock.send(frame)


def mac_of(iface: str) -> str:
    return Path(f"/sys/class/net/{iface}/address").read_text().strip()


def xdp_prog_on(iface: str) -> bool:
    out = subprocess.run(["ip", "-details", "link", "show", "dev", iface],
                         capture_output=True, text=True, check=True).stdout
    return "prog/xdp" in out or " xdp" in out.split("\n", 1)[0]


def uprobe_events() -> str:
    from ebpfhooks.kernel.tracefs import tracefs_root

    path = tracefs_root() / "uprobe_events"
    return path.read_text() if path.exists() else ""


def bpf_prog_names() -> list[str]:
    """Names of every loaded BPF program (bpftool prints up to 15 characters)."""
    out = subprocess.run(["bpftool", "prog", "list", "--json"], capture_output=True, text=True,
                         check=True).stdout
    import json

    return [str(p.get("name", "")) for p in json.loads(out)]


def bpf_progs_named(prefix: str, settle: float = 3.0) -> list[str]:
    """Loaded programs whose name starts with ``prefix``, once the kernel has settled.

    The kernel frees a program after an RCU grace period, so a program just
    released can still be listed for a moment: poll up to ``settle`` seconds
    for the list to become empty, then return what is left.
    """
    deadline = time.monotonic() + settle
    while True:
        left = [n for n in bpf_prog_names() if n.startswith(prefix)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def type_into_bash(lines: list[str]) -> str:
    """Run an interactive bash on a pseudo-terminal, type ``lines``, return what it printed."""
    import pty
    import select

    master, slave = pty.openpty()
    env = {"PATH": "/usr/bin:/bin", "TERM": "dumb", "INPUTRC": "/dev/null", "PS1": "$ "}
    bash = subprocess.Popen(["/bin/bash", "--norc", "--noprofile", "-i"], stdin=slave,
                            stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out = b""
    try:
        for line in [*lines, "exit"]:
            os.write(master, line.encode() + b"\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if bash.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)   # drain, or bash blocks on a full pty
            except OSError:   # EIO: bash exited and closed the terminal
                break
            if not chunk:
                break
            out += chunk
        bash.wait(timeout=10)
    finally:
        if bash.poll() is None:
            bash.kill()
            bash.wait()
        os.close(master)
    return out.decode(errors="replace")


Trigger = Callable[[int], None]


# The VM tier (tests/vmtier.py): every live test again inside a second kernel under qemu.
pytest_plugins = ["vmtier", "pytester"]
