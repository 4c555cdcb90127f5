"""fentry/fexit without attaching: spellings, round trip, errors, resolution against the
kernel's BTF, listing, info, and what the adapter loads (a stand-in kernel)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from btfprog_fake import FakeBpf, FakeKernel, install, no, yes

import ebpfhooks
from ebpfhooks import Fentry, Fexit, Hook, bpfsys
from ebpfhooks.errors import AttachError, NotSupportedError, SpecError, SymbolNotFoundError
from ebpfhooks.hooks import fentry as fentry_module
from ebpfhooks.kernel import btf, features


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    return install(monkeypatch)


# --------------------------------------------------------------------------- spellings


@pytest.mark.parametrize(("spec", "hook"), [
    ("fentry:vfs_read", Fentry("vfs_read")),
    ("kfunc:vfs_read", Fentry("vfs_read")),
    ("f:vfs_read", Fentry("vfs_read")),
    ("FENTRY:vfs_read", Fentry("vfs_read")),
    ("fentry/vfs_read", Fentry("vfs_read")),  # libbpf
    ("fentry:veth:veth_xmit", Fentry("veth_xmit", module="veth")),
    ("kfunc:vmlinux:vfs_read", Fentry("vfs_read")),  # bpftrace 0.17 lists them so
    ("fentry/veth:veth_xmit", Fentry("veth_xmit", module="veth")),  # libbpf 1.0+
    ("fexit:vfs_read", Fexit("vfs_read")),
    ("kretfunc:vfs_read", Fexit("vfs_read")),
    ("fr:vfs_read", Fexit("vfs_read")),
    ("fexit/do_sys_openat2", Fexit("do_sys_openat2")),
    ("kretfunc:vmlinux:vfs_read", Fexit("vfs_read")),
])
def test_spellings(spec: str, hook: Hook) -> None:
    assert Hook.from_spec(spec) == hook
    assert Hook.from_spec(str(hook)) == hook


def test_canonical_spelling_and_value() -> None:
    assert str(Fentry("vfs_read")) == "fentry:vfs_read"
    assert str(Fexit("veth_xmit", module="veth")) == "fexit:veth:veth_xmit"
    assert Fentry("vfs_read") != Fexit("vfs_read")
    assert len({Fentry("vfs_read"), Hook.from_spec("kfunc:vfs_read")}) == 1
    with pytest.raises(AttributeError):
        Fentry("vfs_read").symbol = "x"  # type: ignore[misc]
    assert Fentry("vfs_read").function_names() == ("kfunc__vfs_read", "vfs_read",
                                                   "on_vfs_read")
    assert Fexit("vfs_read").function_names()[0] == "kretfunc__vfs_read"


def test_facts_are_class_data() -> None:
    assert (Fentry.kind, Fentry.bcc_entry, Fentry.program_type, Fentry.feature) == (
        "fentry", "attach_kfunc", "TRACING", "trampolines")
    assert (Fexit.kind, Fexit.bcc_entry, Fexit.min_kernel) == ("fexit", "attach_kretfunc",
                                                               (5, 5))
    assert not Fentry.stable and Fentry.overhead == "very low"
    assert Fentry in ebpfhooks.KINDS and Fexit in ebpfhooks.KINDS


def _error(spec: str) -> str:
    with pytest.raises(SpecError) as err:
        Hook.from_spec(spec)
    return str(err.value)


def test_error_offset() -> None:
    assert _error("fentry:vfs_read+4") == (
        "invalid hook spec: offset not allowed on a fentry hook\n"
        "    fentry:vfs_read+4\n"
        "                   ^~\n"
        "a trampoline runs at the function's entry or return; use kprobe:vfs_read+4 for an "
        "offset")


def test_error_spec_parts() -> None:
    assert _error("fexit:a:b:c") == (
        "invalid hook spec: too many ':' parts\n"
        "    fexit:a:b:c\n"
        "             ^\n"
        "expected fexit:[module:]function")
    assert "missing function name after the module" in _error("fentry:veth:")
    assert "fentry hooks take no options" in _error("fentry:vfs_read[maxactive=2]")
    assert "character '-' cannot be in a kernel symbol" in _error("fentry:vfs-read")


def test_error_bad_field() -> None:
    with pytest.raises(SpecError, match="kernel symbol must be a str, got int 3"):
        Fentry(3)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="kernel module"):
        Fexit("vfs_read", module="a/b")


# --------------------------------------------------------------------------- resolution


def test_resolves_to_the_btf_func() -> None:
    res = Fentry("do_sys_openat2").resolve()
    assert (res.name, res.kind, res.btf) == ("do_sys_openat2", "FUNC", "vmlinux")
    assert res.type_id == btf.tracing_function_id("do_sys_openat2").type_id  # type: ignore[union-attr]
    assert str(res).startswith(f"fentry:do_sys_openat2 -> FUNC do_sys_openat2 (BTF type id "
                               f"{res.type_id} in vmlinux)")


def test_error_not_found_lists_close_btf_functions() -> None:
    with pytest.raises(SymbolNotFoundError) as err:
        Fentry("vfs_reed").resolve()
    msg = str(err.value)
    assert msg.startswith("symbol 'vfs_reed' not found in the FUNC types of the kernel's BTF "
                          "(/sys/kernel/btf/vmlinux and /sys/kernel/btf/MODULE); closest: "
                          "vfs_read")
    assert msg.endswith("\nlist kernel functions with: ebpfhooks list --all 'fentry:*PART*'")
    assert isinstance(err.value, LookupError)


def test_error_function_in_another_btf_object() -> None:
    with pytest.raises(SymbolNotFoundError) as err:
        Fexit("vfs_read", module="ehk_nomod").resolve()
    assert str(err.value) == (
        "symbol 'vfs_read' not found in the FUNC types of module ehk_nomod's BTF "
        "(/sys/kernel/btf/ehk_nomod); closest: fexit:vfs_read\n"
        "vfs_read is in vmlinux, not in module ehk_nomod")


def test_error_denied_and_noreturn_functions() -> None:
    with pytest.raises(NotSupportedError) as err:
        Fentry("migrate_disable").resolve()
    assert str(err.value) == (
        "fentry:migrate_disable cannot attach: the kernel's verifier refuses tracing programs "
        "on it (btf_id_deny: the trampoline itself calls it)")
    with pytest.raises(NotSupportedError) as err:
        Fexit("do_exit").resolve()
    assert str(err.value) == (
        "fexit:do_exit cannot attach: it never returns, so a fexit program would never run "
        "(kernels since 6.4 refuse it)\n"
        "use the stable alternative instead: tracepoint:sched:sched_process_exit")
    assert Fentry("do_exit").resolve().name == "do_exit"  # its entry is fine


def test_error_too_many_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fentry_module, "max_trampoline_args", lambda: 2)
    with pytest.raises(NotSupportedError) as err:
        Fentry("do_sys_openat2").resolve()
    assert str(err.value) == (
        "fentry:do_sys_openat2 cannot attach: it takes 3 arguments and a BPF trampoline "
        "passes at most 2 on this machine and kernel\n"
        "use the stable alternative instead: tracepoint:syscalls:sys_enter_openat")


def test_max_trampoline_args_by_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(features, "kernel_version", lambda: (6, 1, 0))
    assert fentry_module.max_trampoline_args() == 6
    monkeypatch.setattr(features, "kernel_version", lambda: (6, 6, 0))
    assert fentry_module.max_trampoline_args() == 12
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert fentry_module.max_trampoline_args() == 8


def test_error_no_trampolines_names_the_alternatives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "trampolines", no(
        "trampolines", "kernel 6.18.44 refused a fentry program on bpf_fentry_test1: EPERM "
        "although this process is privileged: ..."))
    from ebpfhooks.hooks import kprobe

    monkeypatch.setattr(kprobe, "kprobes_supported", lambda: False)
    with pytest.raises(NotSupportedError) as err:
        Fentry("do_sys_openat2").attach(FakeBpf(), fn_name="on_open")
    assert str(err.value) == (
        "fentry:do_sys_openat2 cannot attach: this kernel has no BPF trampolines, which "
        "fentry and fexit programs run from (kernel 6.18.44 refused a fentry program on "
        "bpf_fentry_test1: EPERM); this kernel has no kprobes either\n"
        "use the stable alternative instead: tracepoint:syscalls:sys_enter_openat")
    assert err.value.missing.startswith("BPF trampolines")
    monkeypatch.setattr(kprobe, "kprobes_supported", lambda: True)
    with pytest.raises(NotSupportedError) as err:
        Fexit("do_sys_openat2").check_supported()
    assert str(err.value).splitlines()[0].endswith(
        "; kretprobe:do_sys_openat2 probes the same function (this kernel has kprobes)")
    assert err.value.alternative == "tracepoint:syscalls:sys_exit_openat"


# --------------------------------------------------------------------------- attach


def test_dispatch_fentry_loads_a_tracing_program(kernel: FakeKernel) -> None:
    target = btf.tracing_function_id("do_sys_openat2")
    assert target is not None
    link = Fentry("do_sys_openat2").attach(FakeBpf(), fn_name="on_open")
    assert kernel.loads == [{"prog_type": bpfsys.BPF_PROG_TYPE_TRACING,
                             "attach_type": bpfsys.BPF_TRACE_FENTRY,
                             "btf_id": target.type_id, "btf_obj_fd": 0, "name": "on_open"}]
    prog, link_fd = kernel.fds
    assert kernel.opens == [prog] and link.fd == link_fd and link.via == "bpf_link"
    link.detach()
    link.detach()
    assert kernel.open_fds() == [] and link.fd is None


def test_dispatch_fexit(kernel: FakeKernel) -> None:
    with Hook.from_spec("kretfunc:vfs_read").attach(FakeBpf(), fn_name="on_read_ret"):
        assert kernel.loads[0]["attach_type"] == bpfsys.BPF_TRACE_FEXIT
        assert kernel.loads[0]["name"] == "on_read_ret"
    assert kernel.open_fds() == []


def test_dispatch_module_function_passes_its_btf_object(
        kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    from ebpfhooks.kernel.btf import BtfId

    monkeypatch.setattr(btf, "tracing_function_id", lambda f, m=None: BtfId(123456, "veth"))
    obj = os.open(os.devnull, os.O_RDONLY)
    asked: list[str] = []
    monkeypatch.setattr(bpfsys, "btf_obj_fd", lambda name: asked.append(name) or obj)
    monkeypatch.setattr(fentry_module.Fentry, "_check_arity", lambda self, b: None)
    with Fentry("veth_xmit", module="veth").attach(FakeBpf(), fn_name="on_xmit") as link:
        assert asked == ["veth"]
        assert kernel.loads[0]["btf_id"] == 123456 and kernel.loads[0]["btf_obj_fd"] == obj
        assert link.resolution.btf == "veth"  # type: ignore[attr-defined]
    with pytest.raises(OSError):
        os.fstat(obj)  # closed once the program was loaded
    assert kernel.open_fds() == []


def test_adopts_what_bcc_attached_itself(kernel: FakeKernel) -> None:
    """bcc attaches KFUNC_PROBE(vfs_read) (kfunc__vfs_read) when it compiles: adopted."""
    bpf = FakeBpf()
    fd = os.open(os.devnull, os.O_RDONLY)
    bpf.kfunc_entry_fds[b"kfunc__vfs_read"] = fd
    link = Fentry("vfs_read").attach(bpf, fn_name="kfunc__vfs_read")
    assert link.via == "bcc autoload" and kernel.loads == []
    link.detach()
    assert bpf.kfunc_entry_fds == {}
    with pytest.raises(OSError):
        os.fstat(fd)


def test_error_function_bcc_attached_elsewhere(kernel: FakeKernel) -> None:
    bpf = FakeBpf()
    with pytest.raises(AttachError) as err:
        Fexit("vfs_write").attach(bpf, fn_name="kfunc__vfs_read")
    assert str(err.value).startswith("fexit:vfs_write: 'kfunc__vfs_read' is named for another "
                                     "event, where bcc attached it itself")
    assert kernel.loads == []


def test_error_attach_refused_unloads_the_program(kernel: FakeKernel) -> None:
    import errno

    kernel.fail[bpfsys.BPF_RAW_TRACEPOINT_OPEN] = errno.EBUSY
    with pytest.raises(AttachError) as err:
        Fentry("vfs_read").attach(FakeBpf(), fn_name="on_read")
    assert str(err.value) == ("the kernel refused attaching fentry:vfs_read: EBUSY (Device or "
                              "resource busy); something is already attached there")
    assert len(kernel.loads) == 1 and kernel.open_fds() == []


def test_error_verifier_rejects_is_a_program_error(kernel: FakeKernel) -> None:
    import errno

    kernel.fail[bpfsys.BPF_PROG_LOAD] = errno.EACCES
    kernel.log = ("func 'vfs_read' doesn't have 6-th argument\n"
                  "invalid bpf_context access off=40 size=8\n")
    with pytest.raises(ebpfhooks.ProgramError) as err:
        Fentry("vfs_read").attach(FakeBpf(), fn_name="on_read")
    assert str(err.value) == (
        "loading 'on_read' for fentry:vfs_read: the verifier rejected a TRACING program with "
        "expected attach type BPF_TRACE_FENTRY (EACCES (Permission denied))\n"
        "verifier log (last lines):\n"
        "func 'vfs_read' doesn't have 6-th argument\n"
        "invalid bpf_context access off=40 size=8")
    assert kernel.open_fds() == []


# --------------------------------------------------------------------------- list, info


def test_listing_without_trampolines_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from ebpfhooks import discover

    monkeypatch.setattr(features, "trampolines", no("trampolines", "no"))
    listing = discover.search("fentry:vfs_rea*")
    assert listing.hooks == [] and listing.sources == {
        "fentry": "none (BPF trampolines not supported)"}
    assert listing.notes == [
        "fentry/fexit hooks not listed: this kernel cannot attach BPF trampolines (see "
        "`ebpfhooks doctor`); `ebpfhooks list --all` (include_unsupported=True) lists the "
        "functions of its BTF"]
    assert discover.list_hooks("kfunc:vmlinux:vfs_read", include_unsupported=True) == [
        "fentry:vfs_read"]  # bpftrace 0.17 lists kfunc:vmlinux:vfs_read
    every = discover.search("f*:vfs_read*", include_unsupported=True)
    assert {"fentry:vfs_read", "fexit:vfs_read", "fentry:vfs_readv"} <= set(every.hooks)
    assert "listed although this kernel cannot attach BPF trampolines" in every.sources["fexit"]
    assert all(isinstance(h, (Fentry, Fexit)) for h in discover.expand(
        "fentry:vfs_read*", include_unsupported=True))


def test_listing_follows_ftrace_arity_and_the_deny_list(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """available_filter_functions decides (vmlinux's lines, no [module]); the deny list and
    functions with too many arguments are left out, as bpftrace does."""
    from ebpfhooks import discover
    from ebpfhooks.kernel import tracefs

    monkeypatch.setattr(features, "trampolines", yes("trampolines"))
    (tmp_path / "available_filter_functions").write_text(
        "vfs_read\nvfs_readv\nmigrate_disable\ndo_sys_openat2\nveth_xmit [veth]\n")
    monkeypatch.setattr(tracefs, "tracefs_root", lambda: tmp_path)
    monkeypatch.setattr(fentry_module, "max_trampoline_args", lambda: 3)
    listing = discover.search("fentry:*")
    # vfs_read takes 4 arguments, vfs_readv 5; migrate_disable is denied; veth_xmit is a
    # module's (and this kernel has no module BTF for it: its BTF is never read)
    assert listing.hooks == ["fentry:do_sys_openat2"]
    assert listing.sources["fentry"] == (
        "/sys/kernel/btf/vmlinux and /sys/kernel/btf/MODULE (FUNC types), at most 3 "
        "arguments, not variadic, in available_filter_functions")


def test_info_shows_signature_and_how_to_read_arguments() -> None:
    from ebpfhooks import info

    entry = info("fentry:do_sys_openat2")
    sig = btf.vmlinux_btf().function_signature("do_sys_openat2")  # type: ignore[union-attr]
    ret = btf.vmlinux_btf().function_return_type("do_sys_openat2")  # type: ignore[union-attr]
    assert entry.facts["btf_signature"] == sig
    assert [a["read"] for a in entry.facts["args"]] == ["ctx[0]", "ctx[1]", "ctx[2]"]
    assert entry.facts["args"][1] == {"index": 1, "type": "const char *", "name": "filename",
                                      "read": "ctx[1]"}
    assert "return" not in entry.facts
    assert "        ctx[1]: const char * filename" in entry.text
    leave = info("fexit:do_sys_openat2")
    assert leave.facts["return"] == {"type": ret, "read": "ctx[3]"}
    assert f"        ctx[3]: {ret} (the return value)" in leave.text
    assert leave.facts["bpf_prog"] == (
        "BPF_PROG(on_do_sys_openat2, int dfd, const char * filename, struct open_how * how, "
        f"{ret} ret)")
    assert leave.facts["stable_alternative"] == "tracepoint:syscalls:sys_exit_openat"
    assert leave.to_dict()["btf"]["type_id"] == Fexit("do_sys_openat2").resolve().type_id


# --------------------------------------------------------------------------- suggest


@pytest.mark.live
def test_suggest_prefers_fentry_where_trampolines_work(
        live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """vfs_read has no tracepoint: fentry where trampolines work (lower overhead than a
    kprobe), else the kprobe; fexit/kretprobe for the return; fentry first in chains."""
    from ebpfhooks import discover

    monkeypatch.setattr(features, "trampolines", yes("trampolines"))
    monkeypatch.setattr(features, "kprobes", yes("kprobes"))
    s = discover.suggest("vfs_read")
    assert s.recommended == "fentry:vfs_read"
    assert s.reason == ("no tracepoint covers it: fentry on the kernel function (a BPF "
                        "trampoline: lower overhead than a kprobe; unstable across kernels)")
    by = {c.spec: c for c in s.candidates}
    assert by["fentry:vfs_read"].attachable and not by["fentry:vfs_read"].stable
    assert "lower overhead than a kprobe" in by["fentry:vfs_read"].why
    assert s.chain() == "fentry:vfs_read | kprobe:vfs_read"
    back = discover.suggest("vfs_read", ret=True)
    assert back.recommended == "fexit:vfs_read" and back.chain() == "fexit:vfs_read | " \
                                                                    "kretprobe:vfs_read"
    monkeypatch.setattr(features, "trampolines", no("trampolines", "refused"))
    s = discover.suggest("vfs_read")
    assert s.recommended == "kprobe:vfs_read"
    assert "not attachable here: this kernel has no BPF trampolines" in \
        {c.spec: c for c in s.candidates}["fentry:vfs_read"].why
    monkeypatch.setattr(features, "kprobes", no("kprobes", "none"))
    s = discover.suggest("vfs_read")
    assert s.recommended is None
    assert s.reason == ("nothing on this kernel observes 'vfs_read': no tracepoint covers it, "
                        "and this kernel has no kprobes and no BPF trampolines")
