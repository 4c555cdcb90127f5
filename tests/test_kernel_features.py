"""Tests of ebpfhooks.kernel.features: pure parsers, probe logic on fakes, live answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ebpfhooks.kernel import features as F
from ebpfhooks.kernel.features import Feature, FeatureStatus, base, kinds, rawkinds


@pytest.fixture(autouse=True)
def _fresh_cache():
    F.clear_cache()
    yield
    F.clear_cache()


@pytest.mark.parametrize(
    ("release", "version"),
    [
        ("6.18.44-fc-v782", (6, 18, 44)),
        ("5.15.0-91-generic", (5, 15, 0)),
        ("6.1.0-13-amd64", (6, 1, 0)),
        ("6.1", (6, 1, 0)),
        ("4.9.337+", (4, 9, 337)),
    ],
)
def test_parse_kernel_release(release, version):
    assert F.parse_kernel_release(release) == version


def test_error_parse_kernel_release():
    with pytest.raises(ValueError) as info:
        F.parse_kernel_release("linux")
    assert str(info.value) == (
        "kernel release 'linux' does not start with MAJOR.MINOR[.PATCH] "
        "(expected something like '6.1.0-13-amd64')"
    )


def test_parse_kconfig():
    text = '# comment\nCONFIG_KPROBES=y\n# CONFIG_FUNCTION_TRACER is not set\nCONFIG_X="a b"\n'
    assert F.parse_kconfig(text) == {
        "CONFIG_KPROBES": "y", "CONFIG_FUNCTION_TRACER": "n", "CONFIG_X": "a b",
    }


def test_parse_capabilities():
    status = "Name:\tx\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n"
    caps = F.parse_capabilities(status)
    assert len(caps) == 40
    assert {"CAP_SYS_ADMIN", "CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"} <= caps
    assert "CAP_SYS_RESOURCE" not in caps  # bit 24 is clear in that mask
    assert F.parse_capabilities("CapEff:\t0000000000000000\n") == frozenset()
    assert F.parse_capabilities("CapEff:\t0000020000000000\n") == frozenset({"CAP_41"})


def test_error_parse_capabilities_missing():
    with pytest.raises(ValueError, match="no hexadecimal 'CapEff' line"):
        F.parse_capabilities("Name: x\n")


def test_feature_bool_and_str():
    yes = Feature("btf", FeatureStatus.YES, "present")
    no = Feature("kprobes", FeatureStatus.NO, "absent", "boot another kernel")
    unknown = Feature("x", FeatureStatus.UNKNOWN, "cannot tell")
    assert bool(yes) and not no and not unknown
    assert yes.known and no.known and not unknown.known
    assert str(no) == "kprobes: no (absent); fix: boot another kernel"
    assert str(yes) == "btf: yes (present)"


def _fake_machine(monkeypatch, tmp_path, *, pmus=(), tracefs_files=None, config=None,
                  version=(6, 1, 0)):
    pmu_dir = tmp_path / "pmu"
    pmu_dir.mkdir()
    for pmu in pmus:
        (pmu_dir / pmu).mkdir()
    for probes in (kinds, rawkinds):  # each module that reads it
        monkeypatch.setattr(probes, "PMU_DIR", pmu_dir)

    def tracefs_file(name):
        if tracefs_files is None:
            return None, f"{name} not checked (tracefs is not mounted)", "tracefs is not mounted"
        if tracefs_files == "unreadable":
            why = "/t is readable by root only"
            return None, f"{name} not checked ({why})", why
        found = name in tracefs_files
        return found, f"/t/{name}" if found else f"no /t/{name}", None

    monkeypatch.setattr(kinds, "_tracefs_file", tracefs_file)
    for probes in (kinds, rawkinds):
        monkeypatch.setattr(probes, "kernel_config", lambda: config)
        monkeypatch.setattr(probes, "kernel_version", lambda: version)


def test_kprobes_yes_from_pmu(monkeypatch, tmp_path):
    _fake_machine(monkeypatch, tmp_path, pmus=["kprobe"])
    assert F.kprobes().status is FeatureStatus.YES


def test_kprobes_yes_from_tracefs(monkeypatch, tmp_path):
    _fake_machine(monkeypatch, tmp_path, tracefs_files={"kprobe_events"}, version=(4, 9, 0))
    f = F.kprobes()
    assert f.status is FeatureStatus.YES and f.reason == "/t/kprobe_events exists"


def test_kprobes_no_names_both_places_and_config(monkeypatch, tmp_path):
    _fake_machine(monkeypatch, tmp_path, tracefs_files=set(),
                  config={"CONFIG_UPROBES": "y"})
    f = F.kprobes()
    assert f.status is FeatureStatus.NO
    assert f.reason == (
        f"no kprobe PMU in {tmp_path}/pmu, no /t/kprobe_events, "
        "and CONFIG_KPROBES is not set in /proc/config.gz"
    )
    assert f.fix is not None and "CONFIG_KPROBES=y" in f.fix and "tracepoint" in f.fix


def test_kprobes_unknown_is_not_cached(monkeypatch, tmp_path):
    _fake_machine(monkeypatch, tmp_path, tracefs_files=None, version=(4, 9, 0))
    f = F.kprobes()
    assert f.status is FeatureStatus.UNKNOWN
    assert "mount -t tracefs" in (f.fix or "")
    (tmp_path / "pmu" / "kprobe").mkdir()
    assert F.kprobes().status is FeatureStatus.YES  # asked again
    (tmp_path / "pmu" / "kprobe").rmdir()
    assert F.kprobes().status is FeatureStatus.YES  # conclusive answers are cached


def test_kprobes_no_on_new_kernel_without_pmu_even_without_tracefs(monkeypatch, tmp_path):
    _fake_machine(monkeypatch, tmp_path, tracefs_files=None, version=(5, 10, 0))
    assert F.kprobes().status is FeatureStatus.NO


def test_uprobes_from_pmu(monkeypatch, tmp_path):
    _fake_machine(monkeypatch, tmp_path, pmus=["uprobe"])
    assert F.uprobes()
    assert not F.kprobes()


def test_version_based_probes(monkeypatch, tmp_path):
    _fake_machine(monkeypatch, tmp_path, version=(5, 8, 0))
    assert not F.bpf_link()
    F.clear_cache()
    monkeypatch.setattr(kinds, "kernel_version", lambda: (5, 9, 0))
    assert F.bpf_link()
    monkeypatch.setattr(kinds, "kernel_version", lambda: (4, 7, 0))
    assert F.xdp().status is FeatureStatus.NO


def test_raw_tracepoints_old_kernel_uses_kallsyms(monkeypatch, tmp_path):
    _fake_machine(monkeypatch, tmp_path, version=(4, 14, 0))
    monkeypatch.setattr(kinds, "_has_symbol", lambda *n: (True, "bpf_get_raw_tracepoint is in x"))
    assert F.raw_tracepoints()
    F.clear_cache()
    monkeypatch.setattr(kinds, "_has_symbol", lambda *n: (False, "none"))
    f = F.raw_tracepoints()
    assert f.status is FeatureStatus.NO and f.reason == "kernel 4.14.0 < 4.17; none"


# --------------------------------------------------------------------------- live


def test_live_kernel_version_and_caps():
    major, minor, patch = F.kernel_version()
    assert major >= 3 and minor >= 0 and patch >= 0
    assert F.is_root() == (os.geteuid() == 0)
    caps = F.capabilities()
    if F.is_root():
        assert "CAP_SYS_ADMIN" in caps


def test_live_features_agree_with_the_machine():
    found = F.features()
    assert list(found) == ["kprobes", "uprobes", "raw_tracepoints", "btf", "xdp", "bpf_link"]
    assert all(isinstance(f, Feature) and f.name == name for name, f in found.items())
    has_kprobe_pmu = Path("/sys/bus/event_source/devices/kprobe").exists()
    if has_kprobe_pmu:
        assert found["kprobes"]
    elif F.kernel_version() >= (4, 17, 0):
        assert found["kprobes"].status is FeatureStatus.NO
        assert "CONFIG_KPROBES" in found["kprobes"].reason
    assert bool(found["btf"]) == Path("/sys/kernel/btf/vmlinux").exists()
    if Path("/sys/bus/event_source/devices/uprobe").exists():
        assert found["uprobes"]
    if F.kernel_version() >= (4, 17, 0):
        assert found["raw_tracepoints"]
    if F.is_root():
        assert found["xdp"]
    assert F.kprobes() is found["kprobes"]  # cached


def test_live_kernel_config():
    config = F.kernel_config()
    if Path("/proc/config.gz").exists():
        assert config is not None and config.get("CONFIG_BPF") == "y"


# --------------------------------------------------------------------------- raw-syscall kinds

_ROOT = frozenset({"CAP_SYS_ADMIN", "CAP_BPF", "CAP_PERFMON"})


def _fake_bpf(monkeypatch, answers):
    """bpf(2) answering each command with the next of ``answers[cmd]`` (the last repeats)."""
    from ebpfhooks import bpfsys

    calls = []

    def fake(cmd, attr):
        calls.append((cmd, bytes(attr)))
        queue = answers.get(cmd, [0])
        return queue.pop(0) if len(queue) > 1 else queue[0]

    monkeypatch.setattr(bpfsys.bpf, "_sys_bpf", fake)
    monkeypatch.setattr(bpfsys.bpf.os, "close", lambda fd: None)
    monkeypatch.setattr(rawkinds, "capabilities", lambda: _ROOT)
    return calls


@pytest.mark.parametrize(("code", "status", "reason"), [
    (9, FeatureStatus.YES, "EBADF for a directory"),                  # EBADF
    (22, FeatureStatus.NO, "does not know BPF_TRACE_UPROBE_MULTI (EINVAL)"),
    (95, FeatureStatus.NO, "built without CONFIG_UPROBES"),            # EOPNOTSUPP
    (12, FeatureStatus.UNKNOWN, "answered the probe with ENOMEM"),
])
def test_uprobe_multi_probe(monkeypatch, code, status, reason):
    from ebpfhooks import bpfsys

    calls = _fake_bpf(monkeypatch, {bpfsys.BPF_PROG_LOAD: [5], bpfsys.BPF_LINK_CREATE: [-code]})
    found = F.uprobe_multi()
    assert found.status is status and reason in found.reason
    load = bpfsys.ProgLoadAttr.from_buffer_copy(calls[0][1])
    link = bpfsys.LinkCreateAttr.from_buffer_copy(calls[1][1])
    assert (load.prog_type, load.expected_attach_type) == (2, 48)
    assert (link.prog_fd, link.attach_type, link.u.uprobe_multi.cnt) == (5, 48, 1)
    if status is not FeatureStatus.YES:
        assert "6.6" in (found.fix or "")


def test_uprobe_multi_probe_unprivileged_is_unknown_and_not_cached(monkeypatch):
    monkeypatch.setattr(rawkinds, "capabilities", lambda: frozenset())
    monkeypatch.setattr(rawkinds, "kernel_version", lambda: (6, 8, 0))
    found = F.uprobe_multi()
    assert found.status is FeatureStatus.UNKNOWN
    assert found.reason == "probing needs CAP_BPF (kernel 6.8.0 >= 6.6 suggests yes)"
    assert "uprobe_multi" not in base._cache


@pytest.mark.parametrize(("load", "attach", "status"), [
    ([-1], [3], FeatureStatus.NO),        # EPERM at load, privileged: no trampolines
    ([4], [3], FeatureStatus.YES),
    ([4], [-95], FeatureStatus.NO),       # loaded, EOPNOTSUPP at attach
    ([4], [-2], FeatureStatus.UNKNOWN),   # ENOENT at attach: something else
])
def test_trampolines_probe(monkeypatch, load, attach, status):
    from ebpfhooks import bpfsys
    from ebpfhooks.kernel import btf

    if btf.vmlinux_btf() is None:
        pytest.skip("needs /sys/kernel/btf/vmlinux for a target id")
    calls = _fake_bpf(monkeypatch, {bpfsys.BPF_PROG_LOAD: load,
                                    bpfsys.BPF_RAW_TRACEPOINT_OPEN: attach})
    found = F.trampolines()
    assert found.status is status, found
    attr = bpfsys.ProgLoadAttr.from_buffer_copy(calls[0][1])
    assert (attr.prog_type, attr.expected_attach_type) == (26, 24) and attr.attach_btf_id


def test_trampolines_probe_old_kernel(monkeypatch):
    monkeypatch.setattr(rawkinds, "kernel_version", lambda: (5, 4, 0))
    assert F.trampolines().status is FeatureStatus.NO


@pytest.mark.parametrize(("lsm", "config", "cmdline", "status", "reason"), [
    ("lockdown,capability,landlock,bpf", None, "", FeatureStatus.YES, "lsm: lockdown,"),
    ("lockdown,capability,apparmor", None, "", FeatureStatus.NO, "does not list bpf"),
    (None, {"CONFIG_BPF_LSM": "y", "CONFIG_LSM": "landlock,lockdown,yama,bpf"}, "quiet",
     FeatureStatus.YES, "CONFIG_LSM lists bpf"),
    (None, {"CONFIG_BPF_LSM": "y", "CONFIG_LSM": "landlock,bpf"}, "ro lsm=apparmor,yama",
     FeatureStatus.NO, "the lsm= boot parameter does not list bpf (apparmor,yama)"),
    (None, {"CONFIG_BPF_LSM": "y", "CONFIG_LSM": "yama"}, "lsm=yama,bpf",
     FeatureStatus.YES, "lsm= boot parameter lists bpf"),
    (None, {"CONFIG_LSM": "bpf"}, "", FeatureStatus.NO, "CONFIG_BPF_LSM is not set"),
    (None, None, "", FeatureStatus.UNKNOWN, "securityfs not mounted"),
])
def test_bpf_lsm_probe(monkeypatch, tmp_path, lsm, config, cmdline, status, reason):
    lsm_file = tmp_path / "lsm"
    if lsm is not None:
        lsm_file.write_text(lsm)
    (tmp_path / "cmdline").write_text(cmdline + " -- lsm=bpf-not-the-kernels\n")
    monkeypatch.setattr(rawkinds, "LSM_FILE", lsm_file)
    monkeypatch.setattr(rawkinds, "CMDLINE", tmp_path / "cmdline")
    monkeypatch.setattr(rawkinds, "kernel_config", lambda: config)
    monkeypatch.setattr(rawkinds, "kernel_version", lambda: (6, 1, 0))
    found = F.bpf_lsm()
    assert found.status is status and reason in found.reason, found


def test_perf_pmu_probes(monkeypatch, tmp_path):
    from ebpfhooks import bpfsys

    _fake_machine(monkeypatch, tmp_path, pmus=["software", "tracepoint", "msr"],
                  config={"CONFIG_PERF_EVENTS": "y"})
    monkeypatch.setattr(bpfsys.perf, "_perf_event_open", lambda attr, pid, cpu: -2)  # ENOENT
    assert F.perf_software().status is FeatureStatus.YES
    hw = F.perf_hardware()
    assert hw.status is FeatureStatus.NO
    assert "ENOENT" in hw.reason and "msr, software, tracepoint" in hw.reason
    F.clear_cache()
    seen = []
    monkeypatch.setattr(bpfsys.perf, "_perf_event_open",
                        lambda attr, pid, cpu: seen.append((attr.type, attr.config,
                                                            attr.flags, pid, cpu)) or -13)
    assert F.perf_hardware().status is FeatureStatus.UNKNOWN  # EACCES: paranoid
    assert seen == [(0, 0, 0b1100001, 0, -1)]  # cycles, disabled, user space only


def test_perf_software_missing(monkeypatch, tmp_path):
    _fake_machine(monkeypatch, tmp_path, pmus=["uprobe"], config={"CONFIG_PERF_EVENTS": "n"})
    assert F.perf_software().status is FeatureStatus.NO


@pytest.mark.parametrize(("code", "status"), [(9, FeatureStatus.YES), (22, FeatureStatus.NO),
                                              (1, FeatureStatus.UNKNOWN)])
def test_perf_link_probe(monkeypatch, code, status):
    from ebpfhooks import bpfsys

    calls = _fake_bpf(monkeypatch, {bpfsys.BPF_PROG_LOAD: [5], bpfsys.BPF_LINK_CREATE: [-code]})
    assert F.perf_link().status is status
    link = bpfsys.LinkCreateAttr.from_buffer_copy(calls[1][1])
    assert (link.attach_type, link.target_fd) == (bpfsys.BPF_PERF_EVENT, 0xFFFFFFFF)


def test_live_raw_syscall_probes_agree_with_the_machine():
    """On the running kernel: conclusive where privileged, consistent with what is there."""
    if os.geteuid() != 0:
        pytest.skip("the probes need root to be conclusive")
    version = F.kernel_version()
    multi = F.uprobe_multi()
    assert multi.status is (FeatureStatus.YES if version >= (6, 6, 0) else FeatureStatus.NO)
    link = F.perf_link()
    assert link.status is (FeatureStatus.YES if version >= (5, 15, 0) else FeatureStatus.NO)
    assert F.trampolines().known
    assert bool(F.perf_software()) == (F.PMU_DIR / "software").exists()
    assert F.perf_hardware().known
    lsm = F.bpf_lsm()
    if F.LSM_FILE.exists():
        assert bool(lsm) == ("bpf" in F.LSM_FILE.read_text())
    assert lsm.known or F.kernel_config() is None
