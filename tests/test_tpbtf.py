"""tp_btf without attaching: spellings, round trip, errors, resolution against the
kernel's BTF, listing, info, and what the adapter loads (a stand-in kernel)."""

from __future__ import annotations

import pytest
from btfprog_fake import FakeBpf, FakeKernel, install, no

import ebpfhooks
from ebpfhooks import Hook, TpBtf, bpfsys, discover
from ebpfhooks.errors import NotSupportedError, SpecError, TracepointNotFoundError
from ebpfhooks.kernel import btf, features, rawtp


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    return install(monkeypatch)


@pytest.mark.parametrize(("spec", "hook"), [
    ("tp_btf:sched_process_exec", TpBtf("sched_process_exec")),
    ("TP_BTF:sched_switch", TpBtf("sched_switch")),
    ("tp_btf/sched_switch", TpBtf("sched_switch")),  # libbpf
    ("tp_btf:xfs:xfs_read_extent", TpBtf("xfs_read_extent", module="xfs")),
])
def test_spellings(spec: str, hook: Hook) -> None:
    assert Hook.from_spec(spec) == hook
    assert Hook.from_spec(str(hook)) == hook


def test_canonical_spelling_and_facts() -> None:
    assert str(TpBtf("sched_switch")) == "tp_btf:sched_switch"
    assert str(TpBtf("a", module="m")) == "tp_btf:m:a"
    assert TpBtf("sched_switch").function_names() == (
        "tp_btf__sched_switch", "sched_switch", "on_sched_switch")
    assert (TpBtf.kind, TpBtf.program_type, TpBtf.feature, TpBtf.min_kernel, TpBtf.stable,
            TpBtf.overhead) == ("tp_btf", "TRACING", "btf", (5, 5), True, "low")
    assert TpBtf in ebpfhooks.KINDS


def _error(spec: str) -> str:
    with pytest.raises(SpecError) as err:
        Hook.from_spec(spec)
    return str(err.value)


def test_error_spec() -> None:
    assert _error("tp_btf/xfs:xfs_read_extent") == (
        "invalid hook spec: libbpf's tp_btf/ form takes no module\n"
        "    tp_btf/xfs:xfs_read_extent\n"
        "              ^\n"
        "write tp_btf:MODULE:EVENT")
    assert _error("tp_btf:a:b:c") == (
        "invalid hook spec: too many ':' parts\n"
        "    tp_btf:a:b:c\n"
        "              ^\n"
        "expected tp_btf:[module:]event (no category: tp_btf:sched_switch)")
    assert "character '.' cannot be in a tracepoint name" in _error("tp_btf:sched.switch")
    assert "missing target after 'tp_btf:'" in _error("tp_btf:")


def test_resolves_to_the_btf_trace_typedef() -> None:
    res = TpBtf("sched_process_exec").resolve()
    assert (res.name, res.kind, res.btf) == ("btf_trace_sched_process_exec", "TYPEDEF",
                                             "vmlinux")
    assert res.type_id == btf.tp_btf_id("sched_process_exec").type_id  # type: ignore[union-attr]


def test_error_not_found_lists_close_names() -> None:
    with pytest.raises(TracepointNotFoundError) as err:
        TpBtf("sched_proces_exec").resolve()
    assert str(err.value).startswith(
        "tracepoint 'sched_proces_exec' not found in the tracepoints of the kernel's BTF "
        "(btf_trace_* types in /sys/kernel/btf/vmlinux and /sys/kernel/btf/MODULE); closest: "
        "tp_btf:sched_process_exec")
    assert str(err.value).endswith("\nlist them with: ebpfhooks list 'tp_btf:*PART*'")


def test_error_per_syscall_event() -> None:
    with pytest.raises(TracepointNotFoundError) as err:
        TpBtf("sys_enter_openat").resolve()
    assert str(err.value).splitlines()[1] == (
        "per-syscall events are not raw tracepoints: use tp_btf:sys_enter (ctx[1] is the "
        "syscall number) or tracepoint:syscalls:sys_enter_openat")


def test_error_wrong_module() -> None:
    with pytest.raises(TracepointNotFoundError) as err:
        TpBtf("sched_switch", module="ehk_nomod").resolve()
    assert "closest: tp_btf:sched_switch\n'sched_switch' is in vmlinux, not in module " \
           "'ehk_nomod'" in str(err.value)


def test_error_no_btf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "btf", no("btf", "/sys/kernel/btf/vmlinux does not exist"))
    with pytest.raises(NotSupportedError) as err:
        TpBtf("sched_switch").attach(FakeBpf(), fn_name="f")
    assert str(err.value) == (
        "tp_btf:sched_switch cannot attach: this kernel has no BTF (/sys/kernel/btf/vmlinux), "
        "which tp_btf programs are typed by (/sys/kernel/btf/vmlinux does not exist)\n"
        "use the stable alternative instead: rawtracepoint:sched_switch")


def test_dispatch_loads_a_tracing_program_at_the_typedef(kernel: FakeKernel) -> None:
    target = btf.tp_btf_id("sched_process_exec")
    assert target is not None
    with Hook.from_spec("tp_btf/sched_process_exec").attach(FakeBpf(), fn_name="on_exec") as link:
        assert kernel.loads == [{"prog_type": bpfsys.BPF_PROG_TYPE_TRACING,
                                 "attach_type": bpfsys.BPF_TRACE_RAW_TP,
                                 "btf_id": target.type_id, "btf_obj_fd": 0,
                                 "name": "on_exec"}]
        assert link.via == "bpf_link" and link.fd == kernel.fds[1]
    assert kernel.open_fds() == []


def test_listing_equals_the_raw_tracepoints() -> None:
    got = discover.list_hooks("tp_btf:sched_*")
    raws = discover.list_hooks("rawtracepoint:sched_*")
    assert got == [r.replace("rawtracepoint:", "tp_btf:") for r in raws]
    assert "tp_btf:sched_switch" in got
    listing = discover.search("tp_btf:sched_switch")
    assert listing.sources == {"tp_btf": "/sys/kernel/btf/vmlinux and /sys/kernel/btf/MODULE "
                                         "(btf_trace_* types)"}


def test_listing_without_btf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rawtp, "raw_tracepoints", lambda reload=False, btf_dir=None: None)
    listing = discover.search("tp_btf:sched_*")
    assert listing.hooks == []
    assert listing.notes == ["tp_btf hooks not listed: the kernel publishes no BTF "
                             "(/sys/kernel/btf/vmlinux); rawtracepoint: hooks need none"]


def test_info_lists_the_typed_arguments() -> None:
    report = discover.info("tp_btf:sched_process_exec")
    types = btf.vmlinux_btf().raw_tracepoint_args("sched_process_exec")  # type: ignore[union-attr]
    assert types is not None and types[0] == "struct task_struct *"
    assert [a["type"] for a in report.facts["args"]] == types
    assert report.facts["args"][1] == {"index": 1, "type": "pid_t", "read": "ctx[1]"}
    assert "        ctx[1]: pid_t" in report.text
    assert report.facts["tracepoint_events"] == ["tracepoint:sched:sched_process_exec"]
    assert report.facts["bpf_prog"] == (
        "BPF_PROG(on_sched_process_exec, struct task_struct *arg0, pid_t arg1, "
        "struct linux_binprm *arg2)")
    assert report.attachable is True


@pytest.mark.live
def test_suggest_tp_btf_where_typed_arguments_matter(live: None) -> None:
    s = discover.suggest("sched_process_exec")
    assert s.recommended == "tracepoint:sched:sched_process_exec"  # parsed fields by default
    twin = {c.spec: c for c in s.candidates}["tp_btf:sched_process_exec"]
    assert twin.stable and twin.attachable and "typed by BTF" in twin.why
    typed = discover.suggest("sched_process_exec", typed=True)
    assert typed.recommended == "tp_btf:sched_process_exec"
    assert typed.reason.startswith("typed arguments asked for: "
                                   "tracepoint:sched:sched_process_exec's events as tp_btf")
    assert typed.chain() == "tp_btf:sched_process_exec"
    assert typed.to_dict()["typed"] is True
    # no tracepoint of that name as a raw tracepoint: the syscall's stays
    assert discover.suggest("execve", typed=True).recommended == (
        "tracepoint:syscalls:sys_enter_execve")
