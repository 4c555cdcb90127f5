"""Live: every hook kind attached to the real kernel through ``Hook.from_spec(...).attach``.

Each test triggers a known number of events and asserts the program counted
exactly that many, then detaches and asserts nothing is left. kprobe and
kretprobe run live where the kernel has kprobes (the VM tier) and assert the
clear NotSupportedError where it does not (this machine's kernel).
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    Counters,
    bpf_progs_named,
    mac_of,
    send_frames,
    uprobe_events,
    xdp_prog_on,
)

import ebpfhooks
from ebpfhooks import Hook, Program
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import FeatureStatus

pytestmark = pytest.mark.live

N = 25


def kprobes_available() -> bool:
    return features.kprobes().status is FeatureStatus.YES


def _getppid_n(n: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(n):
        libc.getppid()


def test_tracepoint_counts_exactly(bpf: Any, counters: Counters) -> None:
    hook = Hook.from_spec("tracepoint:syscalls:sys_enter_getppid")
    with hook.attach(Program(bpf, "on_getppid")) as link:
        assert link.attached
        assert "events/syscalls/sys_enter_getppid" in str(link.resolution)
        _getppid_n(N)
        assert counters[Counters.TP] == N
    assert not link.attached
    _getppid_n(3)
    assert counters[Counters.TP] == N


def test_raw_tracepoint_counts_exactly(bpf: Any, counters: Counters) -> None:
    hook = Hook.from_spec("rawtracepoint:sys_enter")
    with hook.attach(bpf, fn_name="on_raw_sys_enter"):
        _getppid_n(N)
        assert counters[Counters.RAWTP] == N
    _getppid_n(3)
    assert counters[Counters.RAWTP] == N


@pytest.mark.parametrize("mode", ["skb", "auto"])
def test_xdp_counts_exactly_and_leaves_nothing(
    bpf: Any, counters: Counters, veth: tuple[str, str], mode: str
) -> None:
    a, b = veth
    spec = f"xdp:{a}:{mode}" if mode != "auto" else f"xdp:{a}"
    with Hook.from_spec(spec).attach(bpf, fn_name="on_xdp") as link:
        assert xdp_prog_on(a)
        assert link.resolution.ifindex == int(Path(f"/sys/class/net/{a}/ifindex").read_text())  # type: ignore[attr-defined]
        send_frames(b, mac_of(a), N)
        assert counters.wait_for(Counters.XDP, N) == N
    assert not xdp_prog_on(a)
    send_frames(b, mac_of(a), 3)
    assert counters.wait_for(Counters.XDP, N + 3, timeout=0.3) == N


def test_xdp_refuses_to_replace_a_program_it_does_not_own(
    bpf: Any, veth: tuple[str, str]
) -> None:
    a, _ = veth
    with Hook.from_spec(f"xdp:{a}:skb").attach(bpf, fn_name="on_xdp"):
        with pytest.raises(ebpfhooks.AttachError, match="already has an XDP program"):
            Hook.from_spec(f"xdp:{a}:skb").attach(bpf, fn_name="on_xdp")
        assert xdp_prog_on(a)
    assert not xdp_prog_on(a)


def test_netlink_xdp_detach_leaves_a_program_that_replaced_it(
    bpf: Any, veth: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A netlink attach detaches only its own program: another one put there stays."""
    from bcc import BPF

    a, _ = veth
    monkeypatch.setenv("EBPFHOOKS_XDP_ATTACH", "netlink")
    other = BPF(text="int theirs(struct xdp_md *ctx) { return XDP_PASS; }")
    try:
        with Hook.from_spec(f"xdp:{a}:skb").attach(bpf, fn_name="on_xdp") as link:
            assert link.via == "netlink"
            BPF.remove_xdp(a, 1 << 1)  # XDP_FLAGS_SKB_MODE: someone removes ours...
            BPF.attach_xdp(a, other.load_func("theirs", BPF.XDP), 1 << 1)  # ...puts theirs
        assert xdp_prog_on(a)  # theirs is still there
    finally:
        BPF.remove_xdp(a, 1 << 1)
        other.cleanup()
    assert not xdp_prog_on(a)


@pytest.mark.parametrize("kernel_57", [True, False])
def test_netlink_xdp_detach_is_one_step_on_57(
    bpf: Any, veth: tuple[str, str], monkeypatch: pytest.MonkeyPatch, kernel_57: bool
) -> None:
    """Replaced between a check and the removal, theirs still stays: on 5.7+ the kernel
    removes only our program (XDP_FLAGS_REPLACE + IFLA_XDP_EXPECTED_FD); before 5.7
    (simulated: EINVAL) ebpfhooks checks, then removes."""
    from bcc import BPF

    from ebpfhooks._bcc import net
    from ebpfhooks.bpfsys import netlink

    a, _ = veth
    monkeypatch.setenv("EBPFHOOKS_XDP_ATTACH", "netlink")
    if kernel_57:  # the check is made before the replacement: only the kernel can tell
        monkeypatch.setattr(net, "_still_ours", lambda interface, prog_id: True)
    else:
        monkeypatch.setattr(netlink, "xdp_remove_expected", lambda *a: errno.EINVAL)
    other = BPF(text="int theirs(struct xdp_md *ctx) { return XDP_PASS; }")
    theirs = other.load_func("theirs", BPF.XDP)
    bpf.load_func("on_xdp", BPF.XDP)  # bcc keeps each loaded function's fd: load it first
    fds = len(os.listdir("/proc/self/fd"))
    try:
        with Hook.from_spec(f"xdp:{a}:skb").attach(bpf, fn_name="on_xdp") as link:
            assert link.via == "netlink"
            BPF.remove_xdp(a, 1 << 1)
            BPF.attach_xdp(a, theirs, 1 << 1)
        assert xdp_prog_on(a)  # theirs
        assert len(os.listdir("/proc/self/fd")) == fds  # our reference to the program closed
    finally:
        BPF.remove_xdp(a, 1 << 1)
        other.cleanup()
    assert not xdp_prog_on(a)


@pytest.mark.parametrize("via", ["link", "netlink"])
def test_error_xdp_hw_mode_says_what_offload_needs(
    bpf: Any, veth: tuple[str, str], via: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused hw (offload) attach explains offload, not native mode, and leaves nothing."""
    a, _ = veth
    monkeypatch.setenv("EBPFHOOKS_XDP_ATTACH", via)
    with pytest.raises(ebpfhooks.AttachError) as err:
        Hook.from_spec(f"xdp:{a}:hw").attach(bpf, fn_name="on_xdp")
    text = str(err.value)
    assert "hw (offload) mode runs the program on the NIC" in text
    assert f"use xdp:{a}:drv (native) or xdp:{a}:skb (generic)" in text
    assert "native (drv) mode needs" not in text
    assert not xdp_prog_on(a)


def test_raw_socket_counts_exactly(bpf: Any, counters: Counters, veth: tuple[str, str]) -> None:
    a, b = veth
    with Hook.from_spec(f"raw_socket:{a}").attach(bpf, fn_name="on_socket") as link:
        assert isinstance(link.fd, int)
        fd = link.fd
        send_frames(b, mac_of(a), N)
        assert counters.wait_for(Counters.RAWSOCK, N) == N
    assert link.fd is None
    with pytest.raises(OSError):
        os.fstat(fd)  # the socket is closed
    send_frames(b, mac_of(a), 3)
    assert counters.wait_for(Counters.RAWSOCK, N + 3, timeout=0.3) == N


def _run_target(target: Path, n: int) -> int:
    out = subprocess.run([str(target), str(n)], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_uprobe_counts_exactly(bpf: Any, counters: Counters, uprobe_target: Path) -> None:
    before = uprobe_events()
    hook = Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target")
    with hook.attach(bpf, fn_name="on_uprobe") as link:
        assert link.resolution.path == uprobe_target.resolve()  # type: ignore[attr-defined]
        _run_target(uprobe_target, N)
        assert counters[Counters.UPROBE] == N
    _run_target(uprobe_target, 3)
    assert counters[Counters.UPROBE] == N
    assert uprobe_events() == before


def test_uretprobe_reads_return_values(
    bpf: Any, counters: Counters, uprobe_target: Path
) -> None:
    hook = Hook.from_spec(f"uretprobe:{uprobe_target}:ehk_ret")
    with hook.attach(bpf, fn_name="on_uretprobe"):
        _run_target(uprobe_target, N)
        assert counters[Counters.URETPROBE] == N
        assert counters.retsum() == sum(2 * i for i in range(N))
    _run_target(uprobe_target, 3)
    assert counters[Counters.URETPROBE] == N


def test_uprobe_by_address_and_pid_filter(
    bpf: Any, counters: Counters, uprobe_target: Path
) -> None:
    resolved = Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target").resolve()
    vaddr = resolved.target.vaddr  # type: ignore[attr-defined]
    waiting = subprocess.Popen([str(uprobe_target), str(N), "wait"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        hook = Hook.from_spec(f"uprobe:{uprobe_target}:{vaddr:#x}[pid={waiting.pid}]")
        with hook.attach(bpf, fn_name="on_uprobe"):
            _run_target(uprobe_target, 7)  # another process, same binary: not counted
            waiting.communicate("go\n", timeout=10)
            assert counters[Counters.UPROBE] == N
    finally:
        waiting.kill()
        waiting.wait()


def test_kprobe(bpf: Any, counters: Counters, tmp_path: Path) -> None:
    hook = Hook.from_spec("kprobe:do_sys_openat2")
    if not kprobes_available():
        with pytest.raises(ebpfhooks.NotSupportedError) as err:
            hook.attach(bpf, fn_name="on_kprobe")
        msg = str(err.value)
        assert msg.startswith("kprobe:do_sys_openat2 cannot attach: this kernel has no kprobe "
                              "support")
        assert "tracepoint:syscalls:sys_enter_openat" in msg
        assert err.value.alternative == "tracepoint:syscalls:sys_enter_openat"
        return
    path = tmp_path / "f"
    path.write_text("x")
    with hook.attach(bpf, fn_name="on_kprobe"):
        for _ in range(N):
            os.close(os.open(path, os.O_RDONLY))
        assert counters[Counters.KPROBE] == N


def test_kretprobe(bpf: Any, counters: Counters, tmp_path: Path) -> None:
    hook = Hook.from_spec("kretprobe:do_sys_openat2")
    if not kprobes_available():
        with pytest.raises(ebpfhooks.NotSupportedError, match="no kprobe support"):
            hook.attach(bpf, fn_name="on_kretprobe")
        return
    path = tmp_path / "f"
    path.write_text("x")
    with hook.attach(bpf, fn_name="on_kretprobe"):
        for _ in range(N):
            os.close(os.open(path, os.O_RDONLY))
        assert counters[Counters.KRETPROBE] == N


def test_link_detaches_when_the_with_block_raises(bpf: Any, counters: Counters) -> None:
    hook = Hook.from_spec("tracepoint:syscalls:sys_enter_getppid")
    link = hook.attach(bpf, fn_name="on_getppid")
    with pytest.raises(RuntimeError, match="boom"), link:
        raise RuntimeError("boom")
    assert not link.attached
    _getppid_n(3)
    assert counters[Counters.TP] == 0
    link.detach()  # twice is harmless


def test_errors_from_attach_are_typed(bpf: Any, veth: tuple[str, str]) -> None:
    with pytest.raises(ebpfhooks.ProgramError, match=r"defines no function 'nope'.*on_xdp"):
        Hook.from_spec("tracepoint:syscalls:sys_enter_getppid").attach(bpf, fn_name="nope")
    with pytest.raises(ebpfhooks.TracepointNotFoundError, match="sys_enter_getppidd"):
        Hook.from_spec("tracepoint:syscalls:sys_enter_getppidd").attach(
            bpf, fn_name="on_getppid")
    with pytest.raises(ebpfhooks.InterfaceNotFoundError, match="nosuchif0"):
        Hook.from_spec("xdp:nosuchif0").attach(bpf, fn_name="on_xdp")
    with pytest.raises(ebpfhooks.TracepointNotFoundError, match="not raw tracepoints"):
        Hook.from_spec("rawtracepoint:sys_enter_openat").attach(bpf, fn_name="on_raw_sys_enter")
    with pytest.raises(ebpfhooks.ProgramError, match="already loaded as a XDP program"):
        Hook.from_spec("raw_socket:lo").attach(bpf, fn_name="on_xdp")


def test_error_attach_after_cleanup_says_the_module_is_closed(live: None) -> None:
    from bcc import BPF

    module = BPF(text="int ehk_closed(void *ctx) { return 0; }")
    module.cleanup()
    with pytest.raises(ebpfhooks.ProgramError) as err:
        Hook.from_spec("tracepoint:syscalls:sys_enter_getppid").attach(module, "ehk_closed")
    assert "is closed (bpf.cleanup() or bpf.close() ran)" in str(err.value)
    assert "verifier" not in str(err.value)


_EXIT_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from bcc import BPF
    import ebpfhooks
    a = sys.argv[1]
    bpf = BPF(text='''
    int ehk_exit_xdp(struct xdp_md *ctx) { return XDP_PASS; }
    int ehk_exit_sock(struct __sk_buff *skb) { return 0; }
    int ehk_exit_up(struct pt_regs *ctx) { return 0; }
    ''')
    ebpfhooks.Hook.from_spec("xdp:" + a + ":skb").attach(bpf, fn_name="ehk_exit_xdp")
    ebpfhooks.Hook.from_spec("raw_socket:" + a).attach(bpf, fn_name="ehk_exit_sock")
    ebpfhooks.Hook.from_spec("uprobe:" + sys.argv[2] + ":ehk_target").attach(
        bpf, fn_name="ehk_exit_up")
    print("attached", flush=True)
    # exit without detaching: the atexit handler must clean up
    """
)


def test_links_are_detached_at_interpreter_exit(
    live: None, veth: tuple[str, str], uprobe_target: Path
) -> None:
    a, _ = veth
    before_events = uprobe_events()
    out = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, a, str(uprobe_target)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "attached" in out.stdout
    assert not xdp_prog_on(a)
    assert uprobe_events() == before_events
    assert bpf_progs_named("ehk_exit") == []


def test_nothing_left_after_detach_and_cleanup(
    live: None, veth: tuple[str, str], uprobe_target: Path
) -> None:
    from bcc import BPF

    a, _ = veth
    before_events = uprobe_events()
    module = BPF(text="""
    int ehk_leak_xdp(struct xdp_md *ctx) { return XDP_PASS; }
    int ehk_leak_sock(struct __sk_buff *skb) { return 0; }
    int ehk_leak_up(struct pt_regs *ctx) { return 0; }
    int ehk_leak_tp(void *ctx) { return 0; }
    int ehk_leak_rt(struct bpf_raw_tracepoint_args *ctx) { return 0; }
    """)
    links = [
        Hook.from_spec(f"xdp:{a}:skb").attach(module, fn_name="ehk_leak_xdp"),
        Hook.from_spec(f"raw_socket:{a}").attach(module, fn_name="ehk_leak_sock"),
        Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target").attach(module, fn_name="ehk_leak_up"),
        Hook.from_spec("tracepoint:sched:sched_switch").attach(module, fn_name="ehk_leak_tp"),
        Hook.from_spec("rawtracepoint:sched_switch").attach(module, fn_name="ehk_leak_rt"),
    ]
    assert len(bpf_progs_named("ehk_leak", settle=0)) == 5
    for link in links:
        link.detach()
    assert not xdp_prog_on(a)
    assert uprobe_events() == before_events
    module.cleanup()
    assert bpf_progs_named("ehk_leak") == []
