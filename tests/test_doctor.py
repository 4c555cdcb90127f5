"""ebpfhooks doctor: every check yes/no/unknown with a fix; tracefs unmounted in a namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import not_possible

import ebpfhooks
from ebpfhooks import doctor
from ebpfhooks.kernel import features as F
from ebpfhooks.kernel.features import Feature, FeatureStatus

REPO = Path(__file__).resolve().parent.parent

CHECKS = ["privileges", "bcc", "kernel_headers", "tracefs", "debugfs", "kprobes", "uprobes",
          "raw_tracepoints", "btf", "xdp", "bpf_link", "kptr_restrict", "unprivileged_bpf",
          "lockdown"]


def test_parse_lockdown() -> None:
    assert F.parse_lockdown("none [integrity] confidentiality\n") == "integrity"
    assert F.parse_lockdown("") is None


def test_kinds_follow_their_checks() -> None:
    yes = Feature("x", FeatureStatus.YES, "ok")
    facts = {name: Feature(name, FeatureStatus.YES, "ok") for name in CHECKS}
    facts["kprobes"] = Feature("kprobes", FeatureStatus.NO, "no kprobes", "boot another kernel")
    facts["bcc"] = Feature("bcc", FeatureStatus.UNKNOWN, "?", "install bcc")
    kinds = doctor.kinds(facts)
    assert kinds["kprobe"].status is FeatureStatus.NO
    assert "ebpfhooks suggest" in (kinds["kprobe"].fix or "")
    assert "sys_enter_" in (kinds["kprobe"].fix or "")
    assert "suggest --return" in (kinds["kretprobe"].fix or "")
    assert "sys_exit_" in (kinds["kretprobe"].fix or "")
    assert kinds["tracepoint"].status is FeatureStatus.UNKNOWN
    assert kinds["tracepoint"].fix == "install bcc"
    assert yes


def test_kinds_whose_feature_is_no_check_ask_the_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """fentry/fexit/lsm need BPF trampolines, which no check above covers: the kind's own
    check_supported() decides (it was 'yes' on a kernel without trampolines)."""
    facts = {name: Feature(name, FeatureStatus.YES, "ok") for name in CHECKS}
    monkeypatch.setattr(F, "trampolines", lambda: Feature(
        "trampolines", FeatureStatus.NO, "refused", "use kprobes"))
    monkeypatch.setattr(F, "bpf_lsm", lambda: Feature("bpf_lsm", FeatureStatus.YES, "ok"))
    kinds = doctor.kinds(facts)
    for kind in ("fentry", "fexit", "lsm"):
        assert kinds[kind].status is FeatureStatus.NO, kinds[kind]
        assert kinds[kind].reason == ("this kernel lacks BPF trampolines "
                                      "(CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS, a BPF JIT)")
        # the kind's alternative when it names one, else where to look
        assert kinds[kind].fix in ("use tracepoint:syscalls:sys_enter_openat instead",
                                   "use tracepoint:syscalls:sys_exit_openat instead",
                                   "`ebpfhooks suggest WORD` names what works here")
    assert kinds["tp_btf"].status is FeatureStatus.YES


@pytest.mark.live
def test_doctor_on_this_machine(live: None) -> None:
    facts = ebpfhooks.features()
    assert list(facts) == CHECKS
    for f in facts.values():
        assert f.status in FeatureStatus
        if f.status is FeatureStatus.NO:
            assert f.fix, f  # every "no" says how to fix it
    assert facts["privileges"] and facts["bcc"] and facts["tracefs"]
    rep = doctor.report()
    assert rep.kinds["tracepoint"] and rep.kinds["uprobe"] and rep.kinds["raw_socket"]
    assert rep.kinds["kprobe"].status is facts["kprobes"].status
    text = rep.render()
    assert len(text.splitlines()) < 70  # one screen (16 checks, 17 kinds)
    assert "fix:" in text or all(f for f in facts.values())
    data = json.loads(subprocess.run([sys.executable, "-m", "ebpfhooks", "doctor", "--json"],
                                     capture_output=True, text=True, cwd=REPO,
                                     check=True).stdout)
    assert list(data["checks"]) == [*CHECKS, "no_leftovers"] and "tracepoint" in data["kinds"]
    assert data["checks"]["bcc"]["reason"].startswith("bcc ")


_UNMOUNT = (
    "import subprocess, sys\n"
    "for m in ('/sys/kernel/debug/tracing', '/sys/kernel/debug', '/sys/kernel/tracing'):\n"
    "    subprocess.run(['umount', m], capture_output=True)\n"
    "from ebpfhooks.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.live
def test_doctor_with_tracefs_unmounted_then_fix(live: None) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        not_possible("needs root and unshare(1) for a private mount namespace")

    def run(*args: str) -> dict[str, dict[str, dict[str, str]]]:
        proc = subprocess.run(
            ["unshare", "-m", "--propagation", "private", sys.executable, "-c", _UNMOUNT,
             *args], capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        out: dict[str, dict[str, dict[str, str]]] = json.loads(proc.stdout)
        return out

    before = run("doctor", "--json")
    assert before["checks"]["tracefs"]["status"] == "no"
    assert "ebpfhooks doctor --fix" in before["checks"]["tracefs"]["fix"]
    assert before["checks"]["debugfs"]["status"] == "no"
    assert before["kinds"]["tracepoint"]["status"] == "no"
    fixed = run("doctor", "--fix", "--json")
    assert fixed["fixed"] == ["mounted tracefs at /sys/kernel/tracing",  # type: ignore[comparison-overlap]
                              "mounted debugfs at /sys/kernel/debug"]
    assert fixed["checks"]["tracefs"]["status"] == "yes"
    assert fixed["kinds"]["tracepoint"]["status"] == "yes"
    # our own namespace is untouched
    assert Path("/sys/kernel/tracing/available_events").exists()
