"""LSM hooks without attaching: spellings, round trip, errors, resolution against the
kernel's BTF, listing, info, and what the adapter loads (a stand-in kernel)."""

from __future__ import annotations

import os

import pytest
from btfprog_fake import FakeBpf, FakeKernel, install, no

import ebpfhooks
from ebpfhooks import Hook, Lsm, bpfsys, discover
from ebpfhooks.errors import HookNotFoundError, NotSupportedError, SpecError
from ebpfhooks.kernel import btf, features


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    return install(monkeypatch)


@pytest.mark.parametrize("spec", ["lsm:file_open", "lsm/file_open", "LSM:file_open"])
def test_spellings(spec: str) -> None:
    assert Hook.from_spec(spec) == Lsm("file_open")
    assert str(Hook.from_spec(spec)) == "lsm:file_open"


def test_facts() -> None:
    assert (Lsm.kind, Lsm.bcc_entry, Lsm.program_type, Lsm.feature, Lsm.min_kernel) == (
        "lsm", "attach_lsm", "LSM", "bpf_lsm", (5, 7))
    assert Lsm("file_open").function_names() == ("lsm__file_open", "file_open",
                                                 "on_file_open")
    assert Lsm in ebpfhooks.KINDS


def test_error_spec() -> None:
    with pytest.raises(SpecError) as err:
        Hook.from_spec("lsm:security:file_open")
    assert str(err.value) == (
        "invalid hook spec: an LSM hook takes no module or category\n"
        "    lsm:security:file_open\n"
        "                ^\n"
        "write lsm:HOOK, e.g. lsm:file_open")
    with pytest.raises(SpecError, match="character '-' cannot be in a LSM hook name"):
        Lsm("file-open")


def test_resolves_to_bpf_lsm_func() -> None:
    res = Lsm("file_open").resolve()
    assert (res.name, res.kind, res.btf) == ("bpf_lsm_file_open", "FUNC", "vmlinux")
    assert res.type_id == btf.lsm_hook_id("file_open").type_id  # type: ignore[union-attr]


def test_error_not_a_hook() -> None:
    with pytest.raises(HookNotFoundError) as err:
        Lsm("file_opn").resolve()
    assert str(err.value).startswith(
        "target 'lsm:file_opn' not found in the BPF LSM hooks of the kernel's BTF (bpf_lsm_* "
        "FUNCs in /sys/kernel/btf/vmlinux); closest: lsm:file_open")
    with pytest.raises(HookNotFoundError) as err:
        Lsm("verify_prog").resolve()
    assert str(err.value).splitlines()[1] == (
        "bpf_lsm_verify_prog is a helper of the BPF LSM, not a hook")


def test_error_says_which_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "bpf_lsm", no(
        "bpf_lsm", "/sys/kernel/security/lsm does not list bpf (lockdown,capability)"))
    with pytest.raises(NotSupportedError) as err:
        Lsm("file_open").attach(FakeBpf(), fn_name="f")
    assert str(err.value) == (
        "lsm:file_open cannot attach: this kernel has no active BPF LSM (bpf is not in its "
        "LSM order) (/sys/kernel/security/lsm does not list bpf (lockdown,capability))")
    assert err.value.missing == "the BPF LSM (CONFIG_BPF_LSM=y and bpf in the lsm= order)"
    monkeypatch.setattr(features, "bpf_lsm", lambda: features.Feature(
        "bpf_lsm", features.FeatureStatus.YES, "lists bpf", None))
    monkeypatch.setattr(features, "trampolines", no("trampolines", "kernel 6.18.44 refused a "
                                                    "fentry program on bpf_fentry_test1: EPERM"))
    with pytest.raises(NotSupportedError) as err:
        Lsm("file_open").check_supported()
    assert str(err.value) == (
        "lsm:file_open cannot attach: this kernel has no BPF trampolines, which LSM programs "
        "run from (kernel 6.18.44 refused a fentry program on bpf_fentry_test1: EPERM); the "
        "BPF LSM itself is active")
    assert err.value.missing.startswith("BPF trampolines")


def test_dispatch_loads_an_lsm_program(kernel: FakeKernel) -> None:
    target = btf.lsm_hook_id("file_open")
    assert target is not None
    with Lsm("file_open").attach(FakeBpf(), fn_name="deny_open") as link:
        assert kernel.loads == [{"prog_type": bpfsys.BPF_PROG_TYPE_LSM,
                                 "attach_type": bpfsys.BPF_LSM_MAC,
                                 "btf_id": target.type_id, "btf_obj_fd": 0,
                                 "name": "deny_open"}]
        assert link.via == "bpf_link"
    assert kernel.open_fds() == []


def test_adopts_lsm_probe(kernel: FakeKernel) -> None:
    bpf = FakeBpf()
    fd = os.open(os.devnull, os.O_RDONLY)
    bpf.lsm_fds[b"lsm__file_open"] = fd
    with Lsm("file_open").attach(bpf, fn_name="lsm__file_open") as link:
        assert link.via == "bcc autoload" and kernel.loads == []
    assert bpf.lsm_fds == {}


def test_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "trampolines", no("trampolines", "no"))
    listing = discover.search("lsm:file_*")
    assert listing.hooks == []
    assert listing.notes == [
        "lsm hooks not listed: this kernel cannot attach BPF trampolines, which LSM programs "
        "run from; `ebpfhooks list --all` (include_unsupported=True) lists them"]
    every = discover.search("lsm:file_*", include_unsupported=True)
    assert {"lsm:file_open", "lsm:file_permission", "lsm:file_ioctl"} <= set(every.hooks)
    assert every.sources["lsm"] == (
        "/sys/kernel/btf/vmlinux (bpf_lsm_* FUNC types), listed although this kernel cannot "
        "attach BPF trampolines, which LSM programs run from")
    everything = discover.list_hooks("lsm:*", include_unsupported=True)
    assert "lsm:verify_prog" not in everything and "lsm:bpf_prog" in everything
    assert all(Lsm(h.split(":")[1]).resolve() for h in everything[:20])


def test_info_says_what_the_return_value_does() -> None:
    report = discover.info("lsm:file_open")
    assert report.facts["args"] == [{"index": 0, "type": "struct file *", "name": "file",
                                     "read": "ctx[0]"}]
    assert report.facts["enforces"] is True
    assert "    return value: 0 allows, a negative errno (-EPERM) denies" in report.text
    assert report.facts["bpf_prog"] == "BPF_PROG(on_file_open, struct file * file)"
    void = discover.info("lsm:bpf_prog_free")
    assert void.facts["enforces"] is False
