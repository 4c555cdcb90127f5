"""Tests of ebpfhooks.kernel.features: pure parsers, probe logic on fakes, live answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ebpfhooks.kernel import features as F
from ebpfhooks.kernel.features import Feature, FeatureStatus


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
    monkeypatch.setattr(F, "PMU_DIR", pmu_dir)

    def tracefs_file(name):
        if tracefs_files is None:
            return None, f"{name} not checked (tracefs is not mounted)", "tracefs is not mounted"
        if tracefs_files == "unreadable":
            why = "/t is readable by root only"
            return None, f"{name} not checked ({why})", why
        found = name in tracefs_files
        return found, f"/t/{name}" if found else f"no /t/{name}", None

    monkeypatch.setattr(F, "_tracefs_file", tracefs_file)
    monkeypatch.setattr(F, "kernel_config", lambda: config)
    monkeypatch.setattr(F, "kernel_version", lambda: version)


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
    monkeypatch.setattr(F, "kernel_version", lambda: (5, 9, 0))
    assert F.bpf_link()
    monkeypatch.setattr(F, "kernel_version", lambda: (4, 7, 0))
    assert F.xdp().status is FeatureStatus.NO


def test_raw_tracepoints_old_kernel_uses_kallsyms(monkeypatch, tmp_path):
    _fake_machine(monkeypatch, tmp_path, version=(4, 14, 0))
    monkeypatch.setattr(F, "_has_symbol", lambda *n: (True, "bpf_get_raw_tracepoint is in x"))
    assert F.raw_tracepoints()
    F.clear_cache()
    monkeypatch.setattr(F, "_has_symbol", lambda *n: (False, "none"))
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
