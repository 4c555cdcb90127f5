"""Hooks without the live kernel attach: dispatch through a fake bcc, resolution, errors.

The fake bcc records which ``attach_*`` entry each kind calls and with what, so
the table of docs/hooks.md (kind -> bcc entry) is checked exactly; the live tests in
test_live.py prove the same paths against the real kernel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

import ebpfhooks
from ebpfhooks import Hook, Kprobe, Program
from ebpfhooks import _bcc as adapter
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import Feature, FeatureStatus


class FakeFunction:
    def __init__(self, name: bytes, prog_type: int) -> None:
        self.name = name
        self.fd = 100 + prog_type
        self.sock = -1


class FakeLib:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def bpf_attach_uprobe(self, fd: int, ret: int, ev: bytes, path: bytes, off: int,
                          pid: int, ref_ctr_offset: int) -> int:
        assert ref_ctr_offset == 0  # libbcc's 7th argument, never left to chance
        self.calls.append(("bpf_attach_uprobe", ret, path.decode(), off, pid))
        return 7

    def bpf_function_start(self, module: Any, name: bytes) -> int:
        return 1 if name != b"missing" else 0

    def bpf_num_functions(self, module: Any) -> int:
        return 1

    def bpf_function_name(self, module: Any, i: int) -> bytes:
        return b"fn"


class FakeBPFClass:
    """Stands in for bcc.BPF: instance methods record, static ones too."""

    SOCKET_FILTER, KPROBE, TRACEPOINT, XDP, RAW_TRACEPOINT = 1, 2, 5, 6, 17
    calls: ClassVar[list[tuple[Any, ...]]] = []
    fail_with: ClassVar[Exception | None] = None

    def __init__(self) -> None:
        self.module = object()
        self.funcs: dict[bytes, FakeFunction] = {}
        self.kprobe_fds: dict[bytes, dict[bytes, int]] = {}
        self.uprobe_fds: dict[bytes, int] = {}
        self.tracepoint_fds: dict[bytes, int] = {}
        self.raw_tracepoint_fds: dict[bytes, int] = {}

    def load_func(self, name: bytes, prog_type: int) -> FakeFunction:
        fn = FakeFunction(name, prog_type)
        self.funcs[name] = fn
        return fn

    def _maybe_fail(self) -> None:
        if FakeBPFClass.fail_with is not None:
            raise FakeBPFClass.fail_with

    def attach_kprobe(self, event: bytes, event_off: int, fn_name: bytes) -> None:
        self._maybe_fail()
        self.calls.append(("attach_kprobe", event.decode(), event_off, fn_name.decode()))
        self.kprobe_fds.setdefault(b"p_" + event, {})[fn_name] = 3

    def attach_kretprobe(self, event: bytes, fn_name: bytes, maxactive: int) -> None:
        self.calls.append(("attach_kretprobe", event.decode(), maxactive, fn_name.decode()))
        self.kprobe_fds.setdefault(b"r_" + event, {})[fn_name] = 3

    def detach_kprobe_event_by_fn(self, ev: bytes, fn_name: bytes) -> None:
        self.calls.append(("detach_kprobe", ev.decode(), fn_name.decode()))
        del self.kprobe_fds[ev][fn_name]

    def attach_tracepoint(self, tp: bytes, fn_name: bytes) -> None:
        self._maybe_fail()
        self.calls.append(("attach_tracepoint", tp.decode(), fn_name.decode()))
        self.tracepoint_fds[tp] = 3

    def detach_tracepoint(self, tp: bytes) -> None:
        self.calls.append(("detach_tracepoint", tp.decode()))
        del self.tracepoint_fds[tp]

    def attach_raw_tracepoint(self, tp: bytes, fn_name: bytes) -> None:
        self.calls.append(("attach_raw_tracepoint", tp.decode(), fn_name.decode()))
        self.raw_tracepoint_fds[tp] = 3

    def detach_raw_tracepoint(self, tp: bytes) -> None:
        self.calls.append(("detach_raw_tracepoint", tp.decode()))
        del self.raw_tracepoint_fds[tp]

    def _get_uprobe_evname(self, prefix: bytes, path: bytes, addr: int, pid: int) -> bytes:
        return b"%s_%x_%d" % (prefix, addr, pid)

    def _check_probe_quota(self, n: int) -> None:
        pass

    def _add_uprobe_fd(self, ev: bytes, fd: int) -> None:
        self.uprobe_fds[ev] = fd

    def detach_uprobe_event(self, ev: bytes) -> None:
        self.calls.append(("detach_uprobe", ev.decode()))
        del self.uprobe_fds[ev]

    @staticmethod
    def attach_xdp(dev: bytes, fn: FakeFunction, flags: int) -> None:
        FakeBPFClass.calls.append(("attach_xdp", dev.decode(), flags))

    @staticmethod
    def remove_xdp(dev: bytes, flags: int) -> None:
        FakeBPFClass.calls.append(("remove_xdp", dev.decode(), flags))

    @staticmethod
    def attach_raw_socket(fn: FakeFunction, dev: bytes) -> None:
        FakeBPFClass.calls.append(("attach_raw_socket", dev.decode()))
        fn.sock = os.open(os.devnull, os.O_RDONLY)


@pytest.fixture
def fake_bcc(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    FakeBPFClass.calls = calls
    FakeBPFClass.fail_with = None
    module = types.SimpleNamespace(BPF=FakeBPFClass, __version__="fake",
                                   libbcc=types.SimpleNamespace(lib=FakeLib(calls)))
    monkeypatch.setattr(adapter.core, "_bcc", module)
    monkeypatch.setattr(adapter.core, "_errno_now", lambda: 0)
    monkeypatch.setattr(features, "capabilities", lambda: frozenset({"CAP_SYS_ADMIN",
                                                                    "CAP_NET_RAW"}))
    return calls


@pytest.fixture
def with_kprobes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "kprobes",
                        lambda: Feature("kprobes", FeatureStatus.YES, "pretend", None))


def test_dispatch_tracepoint(fake_bcc: list[Any]) -> None:
    bpf = FakeBPFClass()
    link = Hook.from_spec("t:syscalls:sys_enter_openat").attach(bpf, fn_name="on_open")
    assert fake_bcc == [("attach_tracepoint", "syscalls:sys_enter_openat", "on_open")]
    link.detach()
    link.detach()
    assert fake_bcc[-1] == ("detach_tracepoint", "syscalls:sys_enter_openat")
    assert len(fake_bcc) == 2


def test_dispatch_raw_tracepoint(fake_bcc: list[Any]) -> None:
    bpf = FakeBPFClass()
    with Hook.from_spec("rt:sched_switch").attach(Program(bpf, "on_switch")):
        assert fake_bcc == [("attach_raw_tracepoint", "sched_switch", "on_switch")]
    assert fake_bcc[-1] == ("detach_raw_tracepoint", "sched_switch")


def test_dispatch_kprobe_and_kretprobe(fake_bcc: list[Any], with_kprobes: None) -> None:
    bpf = FakeBPFClass()
    with Hook.from_spec("kprobe:sys_openat+0x4").attach(bpf, fn_name="on_k") as link:
        # the syscall name resolves to this kernel's wrapper, and that is what bcc gets
        assert fake_bcc[0][:3] == ("attach_kprobe", link.resolution.symbol, 4)  # type: ignore[attr-defined]
        assert link.resolution.symbol.endswith("_sys_openat")  # type: ignore[attr-defined]
    assert fake_bcc[-1][0] == "detach_kprobe"
    with Hook.from_spec("kretprobe:vfs_read[maxactive=32]").attach(bpf, fn_name="on_kr"):
        assert fake_bcc[-1] == ("attach_kretprobe", "vfs_read", 32, "on_kr")
    assert fake_bcc[-1] == ("detach_kprobe", "r_vfs_read", "on_kr")


def test_dispatch_uprobe_passes_the_resolved_file_offset(fake_bcc: list[Any]) -> None:
    bpf = FakeBPFClass()
    pid = os.getpid()
    # a path: with [pid=N] a bare name must be a file process N maps (pytest maps no bash)
    hook = Hook.from_spec(f"uretprobe:/bin/bash:readline[pid={pid}]")
    res = hook.resolve()
    with hook.attach(bpf, fn_name="on_rl") as link:
        assert link.resolution == res
        assert fake_bcc == [("bpf_attach_uprobe", 1, str(res.path), res.file_offset, pid)]  # type: ignore[attr-defined]
    assert fake_bcc[-1][0] == "detach_uprobe"


def test_dispatch_xdp_and_raw_socket(
    fake_bcc: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EBPFHOOKS_XDP_ATTACH", "netlink")  # bpf_link XDP: test_lifetimes_unit
    bpf = FakeBPFClass()
    with Hook.from_spec("xdp:lo:skb").attach(bpf, fn_name="on_xdp"):
        assert fake_bcc == [("attach_xdp", "lo", 2 | 1)]  # SKB mode, never replace
    assert fake_bcc[-1] == ("remove_xdp", "lo", 2)
    with Hook.from_spec("raw_socket:lo").attach(bpf, fn_name="on_sock") as link:
        assert fake_bcc[-1] == ("attach_raw_socket", "lo")
        fd = link.fd
        assert fd is not None
        os.fstat(fd)
    with pytest.raises(OSError):
        os.fstat(fd)


def test_out_of_file_descriptors_says_how_to_raise_the_limit(
        fake_bcc: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    monkeypatch.setattr(adapter.core, "_errno_now", lambda: errno.EMFILE)
    FakeBPFClass.fail_with = Exception("Failed to attach BPF program b'x' to tracepoint")
    with pytest.raises(ebpfhooks.AttachError) as err:
        Hook.from_spec("t:syscalls:sys_enter_openat").attach(FakeBPFClass(), fn_name="x")
    assert err.value.errno == errno.EMFILE
    assert "Too many open files" in str(err.value) and "ulimit -n" in str(err.value)


def test_bcc_failure_becomes_attach_error(fake_bcc: list[Any]) -> None:
    FakeBPFClass.fail_with = Exception("Failed to attach BPF program b'x' to tracepoint")
    with pytest.raises(ebpfhooks.AttachError) as err:
        Hook.from_spec("t:syscalls:sys_enter_openat").attach(FakeBPFClass(), fn_name="x")
    assert isinstance(err.value, OSError)
    assert "the kernel refused to attach tracepoint:syscalls:sys_enter_openat" in str(err.value)
    assert isinstance(err.value.__cause__, Exception)


def test_error_unknown_program_function(fake_bcc: list[Any]) -> None:
    with pytest.raises(ebpfhooks.ProgramError,
                       match="defines no function 'missing'; it defines: fn"):
        Hook.from_spec("t:syscalls:sys_enter_openat").attach(FakeBPFClass(), fn_name="missing")


class _FailingLoad(FakeBPFClass):
    """load_func fails the way bcc's does: a bare Exception, errno saved by ctypes."""

    load_errno = 0

    def load_func(self, name: bytes, prog_type: int) -> FakeFunction:
        import ctypes

        ctypes.set_errno(self.load_errno)
        raise Exception(f"Failed to load BPF program {name!r}")


@pytest.mark.parametrize(("code", "says", "not_says"), [
    (7, "too large for the kernel", "verifier log above"),  # E2BIG
    (22, "bcc prints the verifier log above", "too large"),  # EINVAL
])
def test_error_program_load_says_what_happened(fake_bcc: list[Any], code: int, says: str,
                                               not_says: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    monkeypatch.setattr(adapter.core, "_errno_now", ctypes.get_errno)  # the fake sets it
    bpf = _FailingLoad()
    bpf.load_errno = code
    with pytest.raises(ebpfhooks.ProgramError) as err:
        Hook.from_spec("t:syscalls:sys_enter_openat").attach(bpf, fn_name="fn")
    assert says in str(err.value) and not_says not in str(err.value)
    assert os.strerror(code) in str(err.value)


def test_error_program_of_a_closed_module(fake_bcc: list[Any]) -> None:
    bpf = FakeBPFClass()
    bpf.module = None  # what bcc's cleanup()/close() leave
    with pytest.raises(ebpfhooks.ProgramError, match=r"is closed \(bpf.cleanup\(\) or "
                       r"bpf.close\(\) ran\)") as err:
        Hook.from_spec("t:syscalls:sys_enter_openat").attach(bpf, fn_name="fn")
    assert "verifier" not in str(err.value)


def test_error_program_arguments() -> None:
    with pytest.raises(ebpfhooks.ProgramError, match="not a C identifier"):
        Program(FakeBPFClass(), "on-open")
    with pytest.raises(ebpfhooks.ProgramError, match="without fn_name"):
        Program.coerce(FakeBPFClass(), None)  # no hook to choose a function for
    with pytest.raises(ebpfhooks.ProgramError, match="pass one or the other"):
        Hook.from_spec("t:syscalls:sys_enter_openat").attach(Program(FakeBPFClass(), "a"), "b")


def test_error_kprobe_not_supported_names_the_alternative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "kprobes", lambda: Feature(
        "kprobes", FeatureStatus.NO, "no kprobe PMU, no kprobe_events", "CONFIG_KPROBES=y"))
    with pytest.raises(ebpfhooks.NotSupportedError) as err:
        Kprobe("do_sys_openat2").attach(FakeBPFClass(), fn_name="f")
    assert str(err.value) == (
        "kprobe:do_sys_openat2 cannot attach: this kernel has no kprobe support "
        "(no kprobe PMU, no kprobe_events)\n"
        "use the stable alternative instead: tracepoint:syscalls:sys_enter_openat"
    )
    assert err.value.missing == "CONFIG_KPROBES"


def test_error_bcc_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapter.core, "_bcc", None)
    monkeypatch.setitem(sys.modules, "bcc", None)
    with pytest.raises(ebpfhooks.BccNotFoundError, match="apt-get install python3-bpfcc") as err:
        Hook.from_spec("t:syscalls:sys_enter_openat").attach(FakeBPFClass(), fn_name="f")
    assert isinstance(err.value, ImportError)


def test_import_does_not_import_bcc() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, ebpfhooks; print('bcc' in sys.modules)"],
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- resolution against this machine's kernel ---------------------------------------------


def test_kprobe_resolves_syscall_wrapper() -> None:
    res = Kprobe("sys_openat").resolve()
    assert res.symbol in ("__x64_sys_openat", "__arm64_sys_openat", "__s390x_sys_openat")
    assert res.note is not None and "syscall entry" in res.note
    assert res.type in "Tt"


def test_kprobe_resolves_plain_function() -> None:
    res = Kprobe("do_sys_openat2").resolve()
    assert res.symbol == "do_sys_openat2" and res.note is None
    assert res.address and res.address > 0


def test_kprobe_resolves_a_unique_clone() -> None:
    from ebpfhooks.kernel.kallsyms import index as kallsyms

    ks = kallsyms()
    # find, in this kernel's own kallsyms, a function present only as one clone
    base, clone = next(
        (f.name.split(".", 1)[0], f.name) for f in ks.functions()
        if f.name.endswith((".isra.0", ".constprop.0", ".part.0"))
        and not ks.lookup(f.name.split(".", 1)[0])
        and ks.variants(f.name.split(".", 1)[0]) == [f.name]
    )
    res = Kprobe(base).resolve()
    assert res.symbol == clone
    assert res.note and "compiled as" in res.note


def test_error_kprobe_symbol_not_found_lists_close_names() -> None:
    with pytest.raises(ebpfhooks.SymbolNotFoundError) as err:
        Kprobe("do_sys_openat3").resolve()
    assert isinstance(err.value, LookupError)
    assert "do_sys_openat2" in err.value.candidates
    assert str(err.value).startswith("symbol 'do_sys_openat3' not found in /proc/kallsyms; "
                                     "closest: ")


def test_error_tracepoint_not_found_lists_close_names() -> None:
    with pytest.raises(ebpfhooks.TracepointNotFoundError) as err:
        Hook.from_spec("tracepoint:syscalls:sys_enter_opnat").resolve()
    assert "tracepoint:syscalls:sys_enter_openat" in err.value.candidates


def test_error_interface_not_found() -> None:
    with pytest.raises(ebpfhooks.InterfaceNotFoundError, match="'lo0' not found"):
        Hook.from_spec("xdp:lo0").resolve()


def test_raw_tracepoint_resolves() -> None:
    assert Hook.from_spec("rawtracepoint:sched_switch").resolve()
    with pytest.raises(ebpfhooks.TracepointNotFoundError, match="not raw tracepoints"):
        Hook.from_spec("rawtracepoint:sys_enter_openat").resolve()


def test_uprobe_resolution_shows_the_file(tmp_path: Path) -> None:
    res = Hook.from_spec("uprobe:bash:readline").resolve()
    assert "bash" in str(res) and "readline" in str(res)
    with pytest.raises(ebpfhooks.BinaryNotFoundError):
        Hook.from_spec(f"uprobe:{tmp_path}/nope:main").resolve()


_UNPRIVILEGED = """
import ebpfhooks
try:
    ebpfhooks.from_spec("tracepoint:syscalls:sys_enter_openat").attach(
        type("BPF", (), {"load_func": print, "funcs": {}})(), fn_name="f")
except ebpfhooks.HookPermissionError as err:
    print("capability=" + err.capability)
    print(err)
"""


def test_error_unprivileged_names_the_capability() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to an unprivileged user")
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         sys.executable, "-c", _UNPRIVILEGED],
        capture_output=True, text=True, cwd="/", check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] in ("capability=CAP_BPF", "capability=CAP_PERFMON",
                        "capability=CAP_SYS_ADMIN")
    assert "needs CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON" in lines[1]
    assert "run as root" in lines[1]


def test_link_group_is_all_or_nothing(fake_bcc: list[Any],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bpf = FakeBPFClass()
    hooks = [Hook.from_spec("t:syscalls:sys_enter_openat"), Hook.from_spec("t:sched:sched_switch"),
             Hook.from_spec("t:syscalls:sys_enter_close")]
    real = bpf.attach_tracepoint

    def third_refused(tp: bytes, fn_name: bytes) -> None:
        if sum(c[0] == "attach_tracepoint" for c in fake_bcc) == 2:
            raise Exception("Failed to attach BPF program b'fn' to tracepoint")
        real(tp, fn_name)

    monkeypatch.setattr(bpf, "attach_tracepoint", third_refused)
    with pytest.raises(ebpfhooks.AttachError):
        ebpfhooks.LinkGroup.attach_all(hooks, bpf, "fn")
    # the two that attached were detached again, last first
    assert [c[:2] for c in fake_bcc] == [
        ("attach_tracepoint", "syscalls:sys_enter_openat"),
        ("attach_tracepoint", "sched:sched_switch"),
        ("detach_tracepoint", "sched:sched_switch"),
        ("detach_tracepoint", "syscalls:sys_enter_openat"),
    ]


def test_link_group_checks_every_target_before_attaching(fake_bcc: list[Any]) -> None:
    hooks = [Hook.from_spec("t:syscalls:sys_enter_openat"), Hook.from_spec("t:sched:sched_switch"),
             Hook.from_spec("t:syscalls:sys_enter_nosuch")]
    with pytest.raises(ebpfhooks.TracepointNotFoundError):
        ebpfhooks.LinkGroup.attach_all(hooks, FakeBPFClass(), "fn")
    assert fake_bcc == []  # the kernel was never asked


def test_link_group_optional_records_what_it_skipped(fake_bcc: list[Any]) -> None:
    bpf = FakeBPFClass()
    hooks = [Hook.from_spec("t:syscalls:sys_enter_nosuch"), Hook.from_spec("rt:sched_switch")]
    with ebpfhooks.LinkGroup.attach_all(hooks, bpf, "fn", optional=True) as group:
        assert len(group) == 1 and group.attached
        assert group.skipped[0][0] == hooks[0]
        assert isinstance(group.skipped[0][1], ebpfhooks.TracepointNotFoundError)
    assert not group.attached
    assert fake_bcc[-1][0] == "detach_raw_tracepoint"


def test_import_is_lazy() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, ebpfhooks; "
         "print(sorted(m for m in sys.modules if m.startswith(('attr', 'ebpfhooks.hooks', "
         "'ebpfhooks.kernel', 'elftools'))))"],
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_chain_resolves_the_chosen_hook_once(fake_bcc: list[Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """first_of(...).attach checks and resolves each alternative once, then attaches that."""
    from ebpfhooks.hooks.tracepoint import Tracepoint, TracepointResolution

    calls: list[str] = []

    def resolve(self: Tracepoint) -> TracepointResolution:
        calls.append(str(self))
        return TracepointResolution(self, path="/x")

    monkeypatch.setattr(Tracepoint, "resolve", resolve)
    with ebpfhooks.first_of("tracepoint:syscalls:sys_enter_openat").attach(
            FakeBPFClass(), "on_open") as link:
        assert link.resolution.path == "/x"  # type: ignore[attr-defined]
    assert calls == ["tracepoint:syscalls:sys_enter_openat"]


def test_attach_without_fn_name_takes_the_only_function(fake_bcc: list[Any]) -> None:
    with Hook.from_spec("t:syscalls:sys_enter_openat").attach(FakeBPFClass()) as link:
        assert link.program.fn_name == "fn"  # the fake module's one function
    assert fake_bcc[0] == ("attach_tracepoint", "syscalls:sys_enter_openat", "fn")
