"""ebpfhooks.bench: the per-event overhead bench runs, its counter proves the hits, JSON shape.

Never asserts on timings (they depend on the machine and its load); only on the
shape of the results and on the BPF program's own count of the events.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ebpfhooks import bench
from ebpfhooks.errors import NotSupportedError, SpecError

KIND_KEYS = {
    "kind", "spec", "trigger", "rating", "supported", "reason", "events_per_batch",
    "batches", "rounds", "baseline_ns", "hooked_ns", "overhead_ns", "overhead_min_ns",
    "overhead_max_ns", "baseline_events_per_s", "hooked_events_per_s", "hits", "expected",
    "proven", "clock",
}


def _report() -> bench.BenchReport:
    done = bench.KindResult("tracepoint", "tracepoint:syscalls:sys_enter_getppid",
                            bench.TRIGGERS["tracepoint"], events_per_batch=10, batches=5,
                            rounds=[(100.0, 150.0), (110.0, 150.0), (90.0, 150.0)],
                            hits=150, expected=150)
    missing = bench.KindResult("kprobe", "kprobe:sys_getppid", bench.TRIGGERS["kprobe"],
                               supported=False, reason="this kernel has no kprobe support")
    return bench.BenchReport(kernel="6.1.0", cpus=2, cpu=1, rounds=3, scale=1.0,
                             results=[missing, done])


def test_parse_kinds_order_aliases_and_default() -> None:
    assert bench.parse_kinds(None) == list(bench.KIND_ORDER)
    assert bench.parse_kinds(["uprobe,tracepoint", "rawtracepoint"]) == [
        "tracepoint", "rawtracepoint", "uprobe"]
    assert bench.parse_kinds(["raw_tracepoint,rt"]) == ["rawtracepoint"]


def test_error_parse_kinds_unknown_kind() -> None:
    with pytest.raises(SpecError) as info:
        bench.parse_kinds(["tracepoint,kprob"])
    assert "unknown hook kind 'kprob'" in str(info.value)
    assert "choose from kprobe, kretprobe" in str(info.value)


def test_median_ignores_a_spoiled_round() -> None:
    # a round a preemption spoiled (+900) or a deferred softirq flattered (-400) does not
    # move the figure, where a mean would
    rounds = [(100.0, 150.0 + d) for d in (0, 2, -2, 4, -4, 1, 900, -400, 3)]
    done = bench.KindResult("tracepoint", "tracepoint:syscalls:sys_enter_getppid",
                            bench.TRIGGERS["tracepoint"], rounds=rounds)
    assert done.overhead_ns == 51.0
    assert done.spread_ns == (-350.0, 950.0)


def test_default_rounds_by_trigger_and_the_footer() -> None:
    assert bench.DEFAULT_ROUNDS == {"syscall": 41, "call": 21, "send": 81}
    report = _report()
    assert "3 rounds" in report.format_table()
    report.rounds = None
    assert "41 (syscalls), 21 (calls), 81 (packets) rounds" in report.format_table()
    assert "median over rounds" in report.format_table()


def test_error_rounds_must_be_positive() -> None:
    with pytest.raises(SpecError, match="rounds must be at least 1"):
        bench.run(["tracepoint"], rounds=0)


def test_result_statistics_and_dict_shape() -> None:
    report = _report()
    done = report.results[1]
    assert done.overhead_ns == 50.0
    assert done.spread_ns == (40.0, 60.0)
    assert done.baseline_ns == 100.0 and done.hooked_ns == 150.0
    assert done.proven
    data = json.loads(json.dumps(report.to_dict()))
    assert {"kernel", "machine", "cpus", "pinned_cpu", "rounds", "scale", "clock",
            "kinds"} <= set(data)
    for kind in data["kinds"]:
        assert set(kind) == KIND_KEYS
    assert data["kinds"][0]["supported"] is False
    assert data["kinds"][1]["baseline_events_per_s"] == pytest.approx(1e7)
    assert data["kinds"][1]["rating"] == "moderate"


def test_table_names_unsupported_kinds_and_the_proof() -> None:
    table = _report().format_table()
    assert "+50.0" in table and "(40.0..60.0)" in table and "150/150" in table
    assert "kprobe: not supported here: this kernel has no kprobe support" in table
    assert "MISMATCH" not in table


def test_table_flags_a_counter_mismatch() -> None:
    report = _report()
    report.results[1].hits = 149
    assert "149/150 MISMATCH" in report.format_table()


def test_error_plot_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(NotSupportedError, match=r"pip install 'ebpfhooks\[plot\]'"):
        _report().plot(tmp_path / "x.png")
    assert bench.main(["--plot", str(tmp_path / "x.png")]) == 2


def test_plot_writes_a_png(tmp_path: Path) -> None:
    import matplotlib  # noqa: F401  (in the test extra: a missing one fails, never skips)
    out = tmp_path / "bench.png"
    _report().plot(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trigger_builds_once_and_runs(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the trigger")
    exe = bench.build_trigger(tmp_path)
    assert bench.build_trigger(tmp_path) == exe  # cached by the source's hash
    out = subprocess.run([str(exe), "-1"], input="syscall 100 3\ncall 1000 2\nbogus 1 1\n",
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "ready"
    pairs = [x.split("/") for x in out[1].split()]  # wall/cpu ns per batch
    assert len(pairs) == 3 and all(int(w) > 0 and int(c) > 0 for w, c in pairs)
    assert len(out[2].split()) == 2
    assert out[3].startswith("error: unknown or unavailable mode bogus")
    nm = subprocess.run(["nm", str(exe)], capture_output=True, text=True).stdout
    assert bench.TARGET_FUNCTION in nm


@pytest.mark.live
def test_live_every_supported_kind_is_proven_by_its_counter(live: None) -> None:
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.features import FeatureStatus
    from ebpfhooks.kernel.netdev import interfaces

    report = bench.run(rounds=2, scale=0.01)
    by_kind = {r.kind: r for r in report.results}
    assert list(by_kind) == list(bench.KIND_ORDER)
    has_kprobes = features.kprobes().status is FeatureStatus.YES
    has_trampolines = features.trampolines().status is FeatureStatus.YES
    for r in report.results:
        if r.kind in ("kprobe", "kretprobe") and not has_kprobes:
            assert not r.supported
            assert r.reason and "kprobe" in r.reason
            continue
        if r.kind in ("fentry", "fexit") and not has_trampolines:
            assert not r.supported
            assert r.reason and "no BPF trampolines" in r.reason
            continue
        assert r.supported, (r.kind, r.reason)
        assert len(r.rounds) == 2
        assert r.expected == 2 * r.events_per_batch * r.batches
        assert r.hits == r.expected, r.kind  # the BPF program's own count proves every hit
        assert r.proven
        assert r.overhead_ns is not None and r.baseline_ns is not None
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert [k["kind"] for k in data["kinds"]] == list(bench.KIND_ORDER)
    # nothing left behind: the veth pair is gone
    assert f"ehb{os.getpid() % 1000000}a" not in interfaces()


def test_error_cli_bench_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    from ebpfhooks.cli import main

    assert main(["bench", "--kinds", "tracepoint,bogus"]) == 1
    err = capsys.readouterr().err
    assert "unknown hook kind 'bogus'" in err and "choose from kprobe" in err


def test_cli_bench_options_match_the_library() -> None:
    import argparse

    from ebpfhooks.cli import build_parser

    ours = argparse.ArgumentParser()
    bench.add_arguments(ours)
    cli = build_parser()
    sub = next(a for a in cli._actions if isinstance(a, argparse._SubParsersAction))
    want = {o for a in ours._actions for o in a.option_strings}
    have = {o for a in sub.choices["bench"]._actions for o in a.option_strings}
    assert want <= have
