"""Perf-event kinds without attaching: spellings, round trips, errors (exact messages),
numbers, listing, resolution facts, bcc-free fakes of the per-CPU attach, and bpftrace's
acceptance of the same spellings (bpftrace 0.17's dry run)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import not_possible

import ebpfhooks
from ebpfhooks import Hardware, Hook, Interval, Profile, Software, SpecError, bpfsys
from ebpfhooks.bpfsys import perf as perf_mod
from ebpfhooks.errors import (
    AttachError,
    HookNotFoundError,
    NotSupportedError,
    ProcessNotFoundError,
)
from ebpfhooks.hooks import perf as hooks_perf
from ebpfhooks.hooks.perf import HARDWARE_EVENTS, SOFTWARE_EVENTS, parse_count, parse_duration
from ebpfhooks.kernel import pmu

ACCEPTED = [
    ("profile:hz:99", Profile("hz", 99)),
    ("p:hz:99", Profile("hz", 99)),
    ("PROFILE:hz:49", Profile("hz", 49)),
    ("profile:s:1", Profile("s", 1)),
    ("profile:ms:10", Profile("ms", 10)),
    ("profile:us:100", Profile("us", 100)),
    ("profile:1s", Profile("s", 1)),
    ("profile:10ms", Profile("ms", 10)),
    ("profile:1us", Profile("us", 1)),
    ("profile:1000", Profile("us", 1)),  # no unit: nanoseconds
    ("profile:1000000000", Profile("s", 1)),
    ("profile:5m", Profile("s", 300)),
    ("profile:1500us", Profile("us", 1500)),
    ("profile:hz:1e3", Profile("hz", 1000)),
    ("profile:hz:1_000", Profile("hz", 1000)),
    ("profile:hz:0x63", Profile("hz", 99)),
    ("profile:hz:99[pid=42]", Profile("hz", 99, pid=42)),
    ("profile:hz:99[cpu=1]", Profile("hz", 99, cpu=1)),
    ("profile:hz:99[cpu=0,pid=7]", Profile("hz", 99, pid=7, cpu=0)),
    ("interval:s:1", Interval("s", 1)),
    ("i:s:1", Interval("s", 1)),
    ("interval:ms:100", Interval("ms", 100)),
    ("interval:us:500", Interval("us", 500)),
    ("interval:hz:10", Interval("hz", 10)),
    ("interval:1s", Interval("s", 1)),
    ("interval:250ms", Interval("ms", 250)),
    ("interval:1h", Interval("s", 3600)),
    ("interval:s:1[cpu=1]", Interval("s", 1, cpu=1)),
    ("software:page-faults:100", Software("page-faults", 100)),
    ("software:faults:100", Software("page-faults", 100)),
    ("s:faults", Software("page-faults")),
    ("software:faults:", Software("page-faults")),
    ("software:cs", Software("context-switches")),
    ("software:cpu:1000000", Software("cpu-clock", 1_000_000)),
    ("software:task-clock:1", Software("task-clock", 1)),
    ("software:minor-faults:1[pid=9]", Software("minor-faults", 1, pid=9)),
    ("software:bpf-output", Software("bpf-output")),
    ("hardware:cycles", Hardware("cpu-cycles")),
    ("h:cpu-cycles:1e6", Hardware("cpu-cycles", 1_000_000)),
    ("hardware:branches:100000", Hardware("branch-instructions", 100_000)),
    ("hardware:cache-misses:1000000[cpu=0]", Hardware("cache-misses", 1_000_000, cpu=0)),
    ("hardware:frontend-stalls", Hardware("frontend-stalls")),
    ("hardware:ref-cycles:10", Hardware("ref-cycles", 10)),
]

CANONICAL = {
    "profile:1s": "profile:s:1",
    "profile:1000": "profile:us:1",
    "software:faults:100": "software:page-faults:100",
    "s:faults": "software:page-faults",
    "software:cs": "software:context-switches",
    "hardware:cycles": "hardware:cpu-cycles",
    "profile:hz:99[cpu=0,pid=7]": "profile:hz:99[pid=7,cpu=0]",
    "interval:5m": "interval:s:300",
}


@pytest.mark.parametrize(("spec", "hook"), ACCEPTED, ids=[s for s, _ in ACCEPTED])
def test_spec_parses_and_round_trips(spec: str, hook: Hook) -> None:
    parsed = Hook.from_spec(spec)
    assert parsed == hook
    assert Hook.from_spec(str(parsed)) == parsed
    assert str(parsed).split(":", 1)[0] == parsed.kind
    if spec in CANONICAL:
        assert str(parsed) == CANONICAL[spec]


def test_every_event_and_alias_of_bpftrace_parses() -> None:
    for cls, table in ((Software, SOFTWARE_EVENTS), (Hardware, HARDWARE_EVENTS)):
        for name, (_, alias, default) in table.items():
            for word in filter(None, (name, alias)):
                hook = Hook.from_spec(f"{cls.kind}:{word}")
                assert isinstance(hook, cls)
                assert (hook.event, hook.count, hook.period) == (name, None, default)
                assert str(hook) == f"{cls.kind}:{name}"


def test_facts_are_class_data() -> None:
    for cls in (Profile, Interval, Software, Hardware):
        assert cls.program_type == "PERF_EVENT" and cls.bcc_entry == "attach_perf_event"
        assert cls.min_kernel == (4, 9) and cls.stable and cls.capabilities
    assert [c.feature for c in (Profile, Interval, Software, Hardware)] == [
        "perf_software", "perf_software", "perf_software", "perf_hardware"]
    assert [c.aliases for c in (Profile, Interval, Software, Hardware)] == [
        ("p",), ("i",), ("s",), ("h",)]
    assert Interval.options == ("cpu",) and Profile.options == ("pid", "cpu")
    assert {"profile", "interval", "software", "hardware"} & ebpfhooks.hooks.OTHER_KINDS == set()


def test_function_names() -> None:
    assert Profile("hz", 99).function_names() == ("profile__hz_99", "profile", "on_profile")
    assert Interval("s", 1).function_names() == ("interval__s_1", "interval", "on_interval")
    assert Software("faults").function_names() == (
        "software__page_faults", "page_faults", "on_page_faults")
    assert Hardware("cycles", 5).function_names() == (
        "hardware__cpu_cycles", "cpu_cycles", "on_cpu_cycles")


def test_values_and_sampling() -> None:
    assert Profile("ms", 10).period_ns == 10_000_000 and Profile("hz", 9).period_ns is None
    assert Profile("hz", 99)._sampling() == (0, 99)
    assert Interval("s", 2)._sampling() == (2_000_000_000, 0)
    assert Software("faults")._sampling() == (100, 0)
    assert Software("cs", 7)._sampling() == (7, 0)
    assert Hardware("cycles")._event() == (0, "cpu-cycles")
    assert Software("bpf-output")._event() == (10, "bpf-output")
    with pytest.raises(AttributeError):
        Profile("hz", 1).value = 2  # type: ignore[misc]


# --------------------------------------------------------------------------- numbers


def test_parse_count() -> None:
    assert [parse_count(t) for t in ("1", "99", "0x10", "1e6", "9e0", "1_000_000")] == [
        1, 99, 16, 1_000_000, 9, 1_000_000]
    for bad, message in (("", "missing number"), ("0", "0 is not a positive number"),
                         ("-1", "negative number '-1'"),
                         ("10e3", "'10e3' is not a number (decimal, 0x hex or 1e6)"),
                         ("1.5", "'1.5' is not a number (decimal, 0x hex or 1e6)"),
                         ("1e19", "1e19 is out of range (below 2**63 expected)")):
        with pytest.raises(ValueError) as err:
            parse_count(bad)
        assert str(err.value) == message


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("1000", "1us", "2ms", "3s", "1m", "1h", "1d",
                                        "1e9", "1_000ns")] == [
        1000, 1000, 2_000_000, 3_000_000_000, 60_000_000_000, 3_600_000_000_000,
        86_400_000_000_000, 1_000_000_000, 1000]
    for bad, message in (("99hz", "'99hz' is a rate, not a duration"),
                         ("1x", "unknown time suffix 'x' in '1x' (ns, us, ms, s, m, h, d)"),
                         ("s", "'s' is not a number with a time suffix"),
                         ("200000d", "200000d is out of range")):
        with pytest.raises(ValueError) as err:
            parse_duration(bad)
        assert str(err.value) == message


# --------------------------------------------------------------------------- errors


def _error(spec: str) -> str:
    with pytest.raises(SpecError) as info:
        Hook.from_spec(spec)
    return str(info.value)


def test_error_rate_written_as_a_suffix() -> None:
    assert _error("profile:99hz") == (
        "invalid hook spec: profile time: '99hz' is a rate, not a duration\n"
        "    profile:99hz\n"
        "            ^~~~\n"
        "a rate is written profile:hz:99")


def test_error_unknown_unit() -> None:
    assert _error("interval:min:1") == (
        "invalid hook spec: unknown interval unit 'min'\n"
        "    interval:min:1\n"
        "             ^~~\n"
        "expected interval:hz:N, interval:s:N, interval:ms:N or interval:us:N")
    assert _error("profile:ns:1000").endswith(
        "nanoseconds are written without a unit: profile:N (N >= 1000)")


def test_error_duration_below_a_microsecond_or_not_whole() -> None:
    assert _error("profile:999") == (
        "invalid hook spec: profile time '999' is 999 ns: the least is 1 us (1000)\n"
        "    profile:999\n"
        "            ^~~\n"
        "e.g. profile:us:1")
    assert _error("interval:1500ns") == (
        "invalid hook spec: interval time '1500ns' is not a whole number of microseconds "
        "(bpftrace would cut it down)\n"
        "    interval:1500ns\n"
        "             ^~~~~~\n"
        "write interval:us:1 or interval:us:2")


def test_error_rate_not_positive() -> None:
    assert _error("profile:hz:0") == (
        "invalid hook spec: profile rate: 0 is not a positive number\n"
        "    profile:hz:0\n"
        "               ^\n"
        "expected a positive number: 99, 0x63, 1e6, 1_000")
    assert "profile period: 'x' is not a number" in _error("profile:ms:x")
    assert "software count: 0 is not a positive number" in _error("software:faults:0")
    assert "missing target after 'interval:'" in _error("interval:")


def test_error_unknown_event_names_the_closest() -> None:
    assert _error("software:page-fault:100") == (
        "invalid hook spec: 'page-fault' is not a software event; closest: page-faults, "
        "alignment-faults, major-faults, faults (ebpfhooks list 'software:*' lists them)\n"
        "    software:page-fault:100\n"
        "             ^~~~~~~~~~")
    assert "'cycle' is not a hardware event; closest: cycles, cpu-cycles" in _error(
        "hardware:cycle")
    assert "closest" not in _error("software:zzzz")
    with pytest.raises(SpecError, match="'pagefaults' is not a software event"):
        Software("pagefaults")


def test_error_event_characters_and_parts() -> None:
    assert _error("software:page_faults") == (
        "invalid hook spec: character '_' cannot be in an event name (a-z, 0-9, '-')\n"
        "    software:page_faults\n"
        "                 ^")
    assert "too many ':' parts" in _error("software:faults:1:2")
    assert "too many ':' parts" in _error("profile:hz:1:2")
    assert "wildcard '*' in a single-hook spec" in _error("software:*")


def test_error_options() -> None:
    assert _error("interval:s:1[pid=4]") == (
        "invalid hook spec: unknown option 'pid' for interval\n"
        "    interval:s:1[pid=4]\n"
        "                 ^~~\n"
        "options of interval: cpu=N")
    assert "pid 0 is out of range" in _error("profile:hz:99[pid=0]")
    assert "cpu 70000 is out of range" in _error("software:cs[cpu=70000]")
    with pytest.raises(SpecError, match="interval hooks take no pid"):
        Interval("s", 1, pid=3)
    with pytest.raises(SpecError, match=r"cpu must be an int in 0\.\.65535 or None"):
        Profile("hz", 1, cpu=-1)


def test_error_libbpf_spelling() -> None:
    assert _error("software/faults") == (
        "invalid hook spec: libbpf has no SEC() form for software hooks (its "
        "SEC(\"perf_event\") names no event)\n"
        "    software/faults\n"
        "            ^\n"
        "write software:page-faults:100")


def test_error_constructor_fields() -> None:
    with pytest.raises(SpecError, match="profile unit must be one of hz, s, ms, us, got 'min'"):
        Profile("min", 1)
    with pytest.raises(SpecError, match="profile rate must be a positive int"):
        Profile("hz", 0)
    with pytest.raises(SpecError, match="interval period must be a positive int"):
        Interval("s", 10**12)  # 10**21 ns
    with pytest.raises(SpecError, match="software count must be a positive int"):
        Software("faults", True)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="hardware event must be a str"):
        Hardware(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- listing


def test_list_software_lists_bpftraces_events_by_name() -> None:
    assert ebpfhooks.list_hooks("software:*") == sorted(
        f"software:{n}" for n in SOFTWARE_EVENTS)
    assert ebpfhooks.list_hooks("software:cs") == ["software:context-switches"]
    assert ebpfhooks.list_hooks("s:*faults") == [
        "software:alignment-faults", "software:emulation-faults", "software:major-faults",
        "software:minor-faults", "software:page-faults"]
    assert ebpfhooks.list_hooks("software:cpu*:5") == [
        "software:cpu-clock:5", "software:cpu-migrations:5"]
    hooks = ebpfhooks.expand("software:c*")
    assert [h.event for h in hooks] == ["context-switches", "cpu-clock", "cpu-migrations"]


def test_list_hardware_only_with_a_cpu_pmu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pmu, "cpu_pmu", lambda: None)
    found = ebpfhooks.search("hardware:*")
    assert found.hooks == []
    assert found.notes == ["hardware hooks not listed: no CPU PMU in "
                           "/sys/bus/event_source/devices (no hardware counters here); "
                           "`ebpfhooks list --all` (include_unsupported=True) lists them"]
    assert ebpfhooks.list_hooks("hardware:*", include_unsupported=True) == sorted(
        f"hardware:{n}" for n in HARDWARE_EVENTS)
    monkeypatch.setattr(pmu, "cpu_pmu", lambda: "cpu")
    assert ebpfhooks.list_hooks("hardware:branch*") == [
        "hardware:branch-instructions", "hardware:branch-misses"]


def test_list_timers() -> None:
    found = ebpfhooks.search("profile:*")
    assert found.hooks == []
    assert found.notes == ["profile hooks are not listed: give the rate, profile:hz:N, or "
                           "the period, profile:s|ms|us:N or profile:1s"]
    assert ebpfhooks.list_hooks("interval:1s") == ["interval:s:1"]
    assert ebpfhooks.list_hooks("profile:hz:99") == ["profile:hz:99"]
    with pytest.raises(SpecError, match="unknown profile unit 'xs'"):
        ebpfhooks.list_hooks("profile:xs:*")


def test_kind_wildcards_skip_what_does_not_fit() -> None:
    # '*:sched:sched_switch' must not become a software event or a timer
    from ebpfhooks.hooks import parse_pattern

    kinds = {p.kind.kind for p in parse_pattern("*:sched:sched_switch")}
    assert kinds.isdisjoint({"profile", "interval", "software", "hardware"})
    kinds = {p.kind.kind for p in parse_pattern("*:faults")}
    assert "software" in kinds and "profile" not in kinds


# --------------------------------------------------------------------------- resolution


def _fake_sysfs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pmus: dict[str, list[str]],
                online: str = "0-3") -> None:
    for name, events in pmus.items():
        (tmp_path / "devices" / name).mkdir(parents=True)
        (tmp_path / "devices" / name / "type").write_text("4\n" if name == "cpu" else "1\n")
        if events:
            (tmp_path / "devices" / name / "events").mkdir()
            for ev in events:
                (tmp_path / "devices" / name / "events" / ev).write_text("event=0x3c\n")
    (tmp_path / "online").write_text(online + "\n")
    (tmp_path / "rate").write_text("100000\n")
    monkeypatch.setattr(pmu, "PMU_DIR", tmp_path / "devices")
    monkeypatch.setattr(pmu, "CPU_ONLINE", tmp_path / "online")
    monkeypatch.setattr(pmu, "MAX_SAMPLE_RATE", tmp_path / "rate")


def test_parse_cpu_list() -> None:
    assert pmu.parse_cpu_list("0-3,8,10-11\n") == (0, 1, 2, 3, 8, 10, 11)
    assert pmu.parse_cpu_list("0") == (0,)
    for bad in ("a", "3-1", "1-", "-1"):
        with pytest.raises(ValueError, match="not a CPU list"):
            pmu.parse_cpu_list(bad)


def test_resolve_facts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_sysfs(monkeypatch, tmp_path, {"software": [], "tracepoint": []}, online="0-2,5")
    res = Profile("hz", 99).resolve()
    assert (res.pmu, res.type, res.config, res.sample_freq, res.sample_period, res.cpus) == (
        "software", 1, 0, 99, 0, (0, 1, 2, 5))
    assert str(res) == ("profile:hz:99 -> software PMU, type 1 config 0, 99 Hz, "
                        "CPUs 0, 1, 2, 5 (one event each)")
    res = Interval("ms", 100).resolve()
    assert (res.sample_period, res.cpus) == (100_000_000, (0,))
    assert str(res) == ("interval:ms:100 -> software PMU, type 1 config 0, every "
                        "100000000 ns, CPU 0")
    res = Software("faults", 1, pid=os.getpid()).resolve()
    assert (res.config, res.sample_period, res.cpus, res.pid) == (2, 1, None, os.getpid())
    assert str(res).endswith(f"every 1 events, one event following pid {os.getpid()} on "
                             "any CPU")
    assert Interval("s", 1, cpu=5).resolve().cpus == (5,)
    note = Profile("us", 1).resolve().note
    assert note == "the kernel runs cpu-clock at most every 10 us: this period is raised to 10 us"


def test_error_resolve_cpu_pid_rate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_sysfs(monkeypatch, tmp_path, {"software": []}, online="0-1")
    with pytest.raises(HookNotFoundError) as err:
        Profile("hz", 99, cpu=4).resolve()
    assert str(err.value) == ("target 'CPU 4' not found in the online CPUs "
                              "(/sys/devices/system/cpu/online: 0, 1); closest: "
                              "profile:hz:99[cpu=0], profile:hz:99[cpu=1]")
    with pytest.raises(ProcessNotFoundError, match="process '4194303' not found"):
        Software("cs", pid=4194303).resolve()
    with pytest.raises(NotSupportedError) as err2:
        Profile("hz", 200_000).resolve()
    assert str(err2.value) == (
        "profile:hz:200000 cannot attach: 200000 Hz is above "
        "kernel.perf_event_max_sample_rate (100000; the kernel lowers it by itself when "
        "sampling interrupts take too long, and refuses faster rates with EINVAL)\n"
        "use the stable alternative instead: profile:hz:100000")


def test_error_no_software_pmu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_sysfs(monkeypatch, tmp_path, {"tracepoint": []})
    with pytest.raises(NotSupportedError, match="no software PMU in .* "
                       r"\(PMUs: tracepoint\); the kernel was built without"):
        Software("cs").resolve()


def test_error_hardware_without_cpu_pmu(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    _fake_sysfs(monkeypatch, tmp_path, {"software": [], "msr": ["tsc"]})
    with pytest.raises(NotSupportedError) as err:
        Hardware("cycles", 1000, pid=1).resolve()
    assert str(err.value) == (
        f"hardware:cpu-cycles:1000[pid=1] cannot attach: no CPU PMU in {tmp_path}/devices "
        "(PMUs: msr, software): this machine gives the kernel no hardware counters (most "
        "virtual machines do not)\n"
        "use the stable alternative instead: software:cpu-clock[pid=1]")
    assert err.value.missing == "a CPU PMU (hardware perf events)"


def test_error_hardware_event_the_cpu_pmu_lacks(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    _fake_sysfs(monkeypatch, tmp_path, {"software": [], "cpu": [
        "cpu-cycles", "instructions", "cache-misses", "branch-instructions", "ref-cycles"]})
    assert Hardware("instructions").resolve().pmu == "cpu"
    with pytest.raises(NotSupportedError) as err:
        Hardware("frontend-stalls").resolve()
    assert str(err.value) == (
        "hardware:frontend-stalls cannot attach: the CPU PMU 'cpu' has no "
        f"stalled-cycles-frontend event ({tmp_path}/devices/cpu/events does not list it); "
        "the hardware events it has: branch-instructions, cache-misses, cpu-cycles, "
        "instructions, ref-cycles\n"
        "use the stable alternative instead: software:cpu-clock")
    assert err.value.missing == "the frontend-stalls counter on this CPU"


def test_hardware_check_supported_names_the_software_alternative(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.features import Feature, FeatureStatus

    monkeypatch.setattr(features, "perf_hardware", lambda: Feature(
        "perf_hardware", FeatureStatus.NO, "no hardware PMU: a CPU-cycles counter gives "
        "ENOENT"))
    with pytest.raises(NotSupportedError) as err:
        Hardware("cache-misses", cpu=1).check_supported()
    assert str(err.value) == (
        "hardware:cache-misses[cpu=1] cannot attach: this kernel has no hardware perf "
        "events (no hardware PMU: a CPU-cycles counter gives ENOENT)\n"
        "use the stable alternative instead: software:cpu-clock[cpu=1]")


def test_info_shows_type_config_period_and_pmu(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    _fake_sysfs(monkeypatch, tmp_path, {"software": []}, online="0-1")
    got = ebpfhooks.info("software:faults:10")
    assert {k: got.facts[k] for k in ("pmu", "type", "config", "event", "sample_period",
                                      "sample_freq", "cpus")} == {
        "pmu": "software", "type": 1, "config": 2, "event": "page-faults",
        "sample_period": 10, "sample_freq": 0, "cpus": [0, 1]}
    text = str(got).splitlines()
    assert text[2:6] == [
        f"    PMU: software ({tmp_path}/devices/software, sysfs type 1)",
        "    event: type 1 (PERF_TYPE_SOFTWARE), config 2 (PERF_COUNT_SW_PAGE_FAULTS): "
        "page-faults",
        "    sampling: every 10 events (sample_period, given)",
        "    runs on: CPUs 0, 1 (one event each)"]
    text = str(ebpfhooks.info("hardware:cycles")).splitlines()
    assert text[2] == f"    PMU: none here (no CPU PMU in {tmp_path}/devices)"
    assert text[4] == "    sampling: every 1000000 events (sample_period, bpftrace's default)"
    text = str(ebpfhooks.info("profile:hz:50")).splitlines()
    assert text[4] == ("    sampling: 50 times a second (sample_freq 50; the kernel sets the "
                       "period, 20000000 ns)")
    assert str(ebpfhooks.info("interval:1s")).splitlines()[5] == "    runs on: CPU 0"


# --------------------------------------------------------------------------- bpfsys, faked


class FakePerf:
    """perf_event_open(2) and ioctl(2) faked: fds are /dev/null opens; a call may fail."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail_open_at: int | None = None,
                 open_errno: int = errno.ENODEV, fail_ioctl: int | None = None) -> None:
        self.attrs: list[tuple[int, int, int, int, int]] = []
        self.opened: list[int] = []
        self.ioctls: list[tuple[int, int, int]] = []
        self.fail_open_at = fail_open_at
        self.open_errno = open_errno
        self.fail_ioctl = fail_ioctl
        monkeypatch.setattr(perf_mod, "_perf_event_open", self.open)
        monkeypatch.setattr(perf_mod, "_ioctl", self.ioctl)

    def open(self, attr: Any, pid: int, cpu: int) -> int:
        self.attrs.append((attr.type, attr.config, attr.sample_period, attr.flags, pid * 1000
                           + cpu))
        if self.fail_open_at is not None and len(self.attrs) - 1 == self.fail_open_at:
            return -self.open_errno
        fd = os.open("/dev/null", os.O_RDONLY)
        self.opened.append(fd)
        return fd

    def ioctl(self, fd: int, request: int, arg: int) -> int:
        self.ioctls.append((fd, request, arg))
        if request == self.fail_ioctl:
            return -errno.EINVAL
        return 0

    def all_closed(self) -> bool:
        def closed(fd: int) -> bool:
            try:
                os.fstat(fd)
            except OSError:
                return True
            return False

        return all(closed(fd) for fd in self.opened)


def test_attach_opens_one_event_per_cpu_disabled_then_enables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePerf(monkeypatch)
    events = bpfsys.perf_event_attach(77, bpfsys.PERF_TYPE_SOFTWARE, 0, sample_freq=99,
                                      cpus=[0, 1, 3])
    assert len(events) == 3 and events.cpus == [0, 1, 3]
    freq_disabled = 1 << 10 | 1
    assert fake.attrs == [(1, 0, 99, freq_disabled, -1000 + c) for c in (0, 1, 3)]
    set_bpf = [i for i in fake.ioctls if i[1] == perf_mod._PERF_EVENT_IOC_SET_BPF]
    enable = [i for i in fake.ioctls if i[1] == perf_mod._PERF_EVENT_IOC_ENABLE]
    assert [a for _, _, a in set_bpf] == [77, 77, 77] and len(enable) == 3
    # every SET_BPF comes before the first ENABLE: all CPUs or none
    assert fake.ioctls.index(enable[0]) > fake.ioctls.index(set_bpf[-1])
    events.close()
    events.close()
    assert fake.all_closed() and len(events) == 0


def test_attach_to_a_pid_follows_it_with_inherit(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePerf(monkeypatch)
    with bpfsys.perf_event_attach(5, 1, 2, sample_period=1, pid=1234) as events:
        assert events.cpus == [None]
    assert fake.attrs == [(1, 2, 1, 1 << 1 | 1, 1234 * 1000 - 1)]
    assert fake.all_closed()


@pytest.mark.parametrize("fail", ["open", "set_bpf", "enable"])
def test_attach_failing_half_way_closes_every_event(monkeypatch: pytest.MonkeyPatch,
                                                    fail: str) -> None:
    fake = FakePerf(monkeypatch, fail_open_at=2 if fail == "open" else None,
                    fail_ioctl={"open": None, "set_bpf": perf_mod._PERF_EVENT_IOC_SET_BPF,
                                "enable": perf_mod._PERF_EVENT_IOC_ENABLE}[fail])
    with pytest.raises(AttachError) as err:
        bpfsys.perf_event_attach(5, 1, 0, sample_period=10_000_000, cpus=[0, 1, 2, 3],
                                 what="profile:ms:10")
    assert fake.opened and fake.all_closed()
    if fail == "open":
        assert str(err.value) == ("the kernel refused profile:ms:10 on CPU 2: CPU 2 is not "
                                  "online (ENODEV (No such device)); see "
                                  "/sys/devices/system/cpu/online")
        assert len(fake.opened) == 2
    elif fail == "set_bpf":
        assert "a perf event takes a PERF_EVENT program" in str(err.value)


@pytest.mark.parametrize(("code", "kind", "text"), [
    (errno.ENOENT, NotSupportedError, "hardware:cycles: the kernel has no such perf event "
                                      "(ENOENT (No such file or directory))"),
    (errno.EOPNOTSUPP, NotSupportedError, "hardware:cycles: the PMU cannot sample this event"),
    (errno.ESRCH, ProcessNotFoundError, "process '77' not found in this pid namespace"),
    (errno.EMFILE, AttachError, "the open-file limit is reached"),
])
def test_error_perf_event_open_errnos(monkeypatch: pytest.MonkeyPatch, code: int,
                                      kind: type[Exception], text: str) -> None:
    FakePerf(monkeypatch, fail_open_at=0, open_errno=code)
    with pytest.raises(kind) as err:
        bpfsys.perf_event_open(0, 0, sample_period=5, pid=77, what="hardware:cycles")
    assert text in str(err.value)


def test_error_perf_event_open_arguments() -> None:
    with pytest.raises(SpecError, match="give exactly one of sample_period and sample_freq"):
        bpfsys.perf_event_open(1, 0, cpu=0)
    with pytest.raises(SpecError, match="give exactly one"):
        bpfsys.perf_event_open(1, 0, sample_period=1, sample_freq=1, cpu=0)
    with pytest.raises(SpecError, match="an event of every process needs a CPU"):
        bpfsys.perf_event_open(1, 0, sample_period=1)
    with pytest.raises(SpecError, match="pid must be a positive int"):
        bpfsys.perf_event_open(1, 0, sample_period=1, pid=0)


def test_error_rate_above_the_kernels_limit(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    _fake_sysfs(monkeypatch, tmp_path, {"software": []})
    FakePerf(monkeypatch, fail_open_at=0, open_errno=errno.EINVAL)
    with pytest.raises(AttachError) as err:
        bpfsys.perf_event_open(1, 0, sample_freq=250_000, cpu=0, what="profile:hz:250000")
    assert str(err.value) == (
        "the kernel refused profile:hz:250000: 250000 Hz is above "
        "kernel.perf_event_max_sample_rate (100000; the kernel lowers it by itself when "
        "sampling interrupts take too long): sample at 100000 Hz or less")


def test_hook_attach_goes_through_the_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kind hands its resolution to _bcc.attach_perf_event (bcc itself faked)."""
    from ebpfhooks import _bcc
    from ebpfhooks.hooks.link import Program

    calls: list[tuple[Any, ...]] = []

    def fake_attach(bpf: Any, fn: str, ev_type: int, config: int, **kw: Any) -> Any:
        calls.append((fn, ev_type, config, kw))
        return _bcc.Attachment(lambda: calls.append(("detached",)), via="perf_event")

    monkeypatch.setattr(_bcc, "attach_perf_event", fake_attach)
    bpf = type("BPF", (), {"load_func": print, "funcs": {}})()
    hook = Software("faults", 1, pid=os.getpid())
    res = hook.resolve()
    with hook._attach_checked(Program(bpf, "on_fault"), res) as link:
        assert link.via == "perf_event"
    assert calls == [("on_fault", 1, 2, {"sample_period": 1, "sample_freq": 0,
                                         "pid": os.getpid(), "cpus": None,
                                         "what": f"software:page-faults:1[pid={os.getpid()}]"}),
                     ("detached",)]


# --------------------------------------------------------------------------- bpftrace


def _bpftrace_dry_run(probes: list[str]) -> subprocess.CompletedProcess[str]:
    if shutil.which("bpftrace") is None:
        not_possible("bpftrace is the oracle for the spellings")
    program = ",".join(probes) + " { @ = count(); }"
    return subprocess.run(["bpftrace", "-d", "-e", program], capture_output=True, text=True,
                          timeout=120)


def test_bpftrace_accepts_every_event_and_alias() -> None:
    """bpftrace 0.17 cannot list these (``bpftrace -l 'software:*'`` prints the pattern
    back): where it lists names, they are ours; its dry run accepts every name and alias
    ebpfhooks accepts, and refuses the near miss ebpfhooks refuses."""
    probes = [f"{kind}:{w}:1000" for kind, table in (("software", SOFTWARE_EVENTS),
                                                     ("hardware", HARDWARE_EVENTS))
              for n, (_, a, _) in table.items() for w in filter(None, (n, a))]
    probes += ["profile:hz:99", "profile:s:1", "profile:ms:10", "profile:us:100",
               "interval:s:1", "interval:ms:100", "interval:us:500", "interval:hz:10"]
    for probe in probes:
        Hook.from_spec(probe)
    run = _bpftrace_dry_run(probes)
    assert run.returncode == 0, run.stderr
    for bad in ("software:page-fault:1", "hardware:cycle:1"):
        with pytest.raises(SpecError):
            Hook.from_spec(bad)
        run = _bpftrace_dry_run([bad])
        assert run.returncode != 0 and " is not a " in run.stderr
    listed = subprocess.run(["bpftrace", "-l", "software:*"], capture_output=True, text=True,
                            timeout=60).stdout.split()
    names = {m.group(1) for line in listed if (m := re.fullmatch(r"software:([a-z-]+):?", line))}
    if names:  # a bpftrace that lists them lists the names and aliases ebpfhooks knows
        assert names == {w for n, (_, a, _) in SOFTWARE_EVENTS.items()
                         for w in filter(None, (n, a))}
    else:
        assert listed == ["software:*:"]  # 0.17 echoes the pattern


def test_module_is_light() -> None:
    """Importing the kinds reads nothing and imports neither attrs nor typing."""
    code = ("import sys; import ebpfhooks.hooks.perf; "
            "print(sorted(m for m in ('attrs', 'typing', 'bcc') if m in sys.modules))")
    out = subprocess.run([os.environ.get("PYTHON", __import__("sys").executable), "-c", code],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert out.stdout.strip() == "[]"
    assert hooks_perf.PerfEventHook.__module__ == "ebpfhooks.hooks._perf"


def test_doctor_asks_the_kinds_own_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """perf_hardware is not one of doctor's checks: the hardware kind's own check decides."""
    from ebpfhooks import doctor
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.features import Feature, FeatureStatus

    monkeypatch.setattr(features, "perf_hardware", lambda: Feature(
        "perf_hardware", FeatureStatus.NO, "no hardware PMU", "use software events"))
    monkeypatch.setattr(features, "perf_software", lambda: Feature(
        "perf_software", FeatureStatus.YES, "ok"))
    facts = {n: Feature(n, FeatureStatus.YES, "ok") for n in ("privileges", "bcc", "kprobes")}
    kinds = doctor.kinds(facts)
    assert (kinds["hardware"].status, kinds["hardware"].reason, kinds["hardware"].fix) == (
        FeatureStatus.NO, "this kernel lacks a CPU PMU (hardware perf events)",
        "use software:cpu-clock instead")
    assert kinds["profile"].reason == "privileges, bcc, perf_software ok"


def test_trace_generates_a_counting_function_for_perf_events() -> None:
    from ebpfhooks.trace import generate

    src = generate([Profile("hz", 99), Software("faults", 1), Interval("s", 1)])
    assert all(f"int ehk_h{i}(struct bpf_perf_event_data *ctx) {{\n"
               f"    return ehk_count({i});" in src for i in range(3))
