"""Tests of the VM tier's own machinery (tests/vmtier.py), without booting anything.

A fake ``vng`` runs the "guest" command on this machine, so the whole path (twin
items, request, guest entry point, JSON results, outcomes reported back, a hang
killed after its bound) is exercised in seconds. The real boot is the VM tier itself.

The tier runs only when asked (``--vm``), and docs/kernels.md is written only by a
complete two-tier run that asked for it (``--write-kernels-doc``): a partial run
boots nothing and writes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import vmtier

HERE = Path(__file__).resolve().parent

FAKE_VNG = textwrap.dedent(
    """\
    #!{python}
    # A stand-in for virtme-ng: runs the command after "--" here, with the guest's env.
    import os, subprocess, sys
    args = sys.argv[1:]
    print("fake vng:", " ".join(args[:args.index("--")]), flush=True)
    if os.environ.get("FAKE_VNG_LOG"):
        with open(os.environ["FAKE_VNG_LOG"], "a") as log:
            log.write("booted\\n")
    if os.environ.get("FAKE_VNG_HANG"):
        print("fake vng: hanging", flush=True)
        subprocess.run(["sleep", "613"])
    cmd = args[args.index("--") + 1]
    sys.exit(subprocess.run(["/bin/sh", "-c", cmd]).returncode)
    """
)


@pytest.fixture
def fake_vng(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    vng = tmp_path / "bin" / "vng"
    vng.parent.mkdir()
    vng.write_text(FAKE_VNG.format(python=sys.executable))
    vng.chmod(0o755)
    monkeypatch.setenv(vmtier.VNG_ENV, str(vng))
    return vng


def test_newest_boot_kernel_sorts_versions_as_numbers(tmp_path: Path) -> None:
    for name in ("vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-56-amd64", "vmlinuz-6.1.0-10-amd64",
                 "vmlinuz-6.1.0-99-cloud-arm64", "config-6.1.0-57-amd64"):
        (tmp_path / name).write_text("")
    assert vmtier.newest_boot_kernel(tmp_path) == tmp_path / "vmlinuz-6.1.0-56-amd64"
    assert vmtier.newest_boot_kernel(tmp_path / "none") is None
    assert vmtier.kernel_release_of(tmp_path / "vmlinuz-6.1.0-56-amd64") == "6.1.0-56-amd64"
    assert vmtier.kernel_release_of(tmp_path / "bzImage") is None


def test_missing_pieces_name_what_to_install(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(vmtier.VNG_ENV, str(tmp_path / "no-vng"))
    missing = vmtier.missing_pieces(None)
    assert any("virtme-ng" in m for m in missing)
    assert any("linux-image-amd64" in m for m in missing)
    assert any("no such file" in m for m in vmtier.missing_pieces(tmp_path / "nope"))


def test_vng_command_uses_software_emulation(tmp_path: Path) -> None:
    cmd = vmtier.vng_command("vng", Path("/boot/vmlinuz-x"), tmp_path, "echo hi")
    assert cmd[:2] == ["vng", "--disable-kvm"]  # KVM fails here ("failed to set MSR 0x10a")
    assert f"--rwdir={tmp_path}" in cmd
    assert cmd[cmd.index("--run") + 1] == "/boot/vmlinuz-x"
    assert cmd[-2:] == ["--", "echo hi"]


def test_read_results_folds_phases_and_finds_the_unfinished(tmp_path: Path) -> None:
    lines = [
        {"event": "start", "nodeid": "t.py::a"},
        {"event": "report", "nodeid": "t.py::a", "when": "setup", "outcome": "passed"},
        {"event": "report", "nodeid": "t.py::a", "when": "call", "outcome": "failed",
         "text": "assert 1 == 2"},
        {"event": "report", "nodeid": "t.py::a", "when": "teardown", "outcome": "passed"},
        {"event": "finish", "nodeid": "t.py::a"},
        {"event": "start", "nodeid": "t.py::b"},
        {"event": "report", "nodeid": "t.py::b", "when": "setup", "outcome": "skipped",
         "text": "no veth"},
        {"event": "finish", "nodeid": "t.py::b"},
        {"event": "start", "nodeid": "t.py::c"},
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"event": "rep')
    results, unfinished = vmtier.read_results(path)
    assert results["t.py::a"].outcome == "failed"
    assert results["t.py::a"].text == "[call] assert 1 == 2"
    assert results["t.py::b"].outcome == "skipped"
    assert unfinished == ["t.py::c"]


def test_a_hanging_guest_is_killed_after_the_bound(
    tmp_path: Path, fake_vng: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VNG_HANG", "1")
    kernel = tmp_path / "vmlinuz-1.0-amd64"
    kernel.write_text("")
    run = vmtier.boot_guest(kernel, tmp_path / "run", ["true"], timeout=1.0)
    assert run.timed_out
    assert "fake vng: hanging" in run.console_tail()
    time.sleep(0.5)
    sleepers = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == b"sleep\x00613\x00":
                sleepers.append(cmdline.parent.name)
        except OSError:
            continue
    assert sleepers == [], "the fake guest's process outlived the kill"


COMMITTED_DOC = "# docs/kernels.md as committed\n"


def _guest_project(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("pytest_plugins = ['vmtier']\n")
    pytester.makeini("[pytest]\nmarkers =\n    live: live\n")
    pytester.makepyfile(test_live_x=textwrap.dedent(
        """
        import os, pytest
        pytestmark = pytest.mark.live
        def test_ok():
            assert "EBPFHOOKS_VM_GUEST" in os.environ
        def test_bad():
            assert 1 + 1 == 3, "wrong in the guest"
        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n):
            pass
        """))
    pytester.makepyfile(test_plain="def test_host_only():\n    pass\n")
    (pytester.path / "docs").mkdir()
    (pytester.path / "docs" / "kernels.md").write_text(COMMITTED_DOC)


@pytest.fixture
def guest_project(pytester: pytest.Pytester, fake_vng: Path,
                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    _guest_project(pytester)
    kernel = tmp_path / "vmlinuz-9.9.9-amd64"
    kernel.write_text("")
    monkeypatch.setenv(vmtier.KERNEL_ENV, str(kernel))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join((str(HERE), str(HERE.parent))))
    monkeypatch.setenv("FAKE_VNG_LOG", str(tmp_path / "boots.log"))
    monkeypatch.delenv(vmtier.SKIP_ENV, raising=False)
    if not Path("/usr/bin/qemu-system-x86_64").exists():
        pytest.skip("missing_pieces() wants qemu-system-x86_64 even with a fake vng")
    return pytester


def _boots(tmp_path: Path) -> int:
    """How often the fake vng was started (each start would be a qemu boot)."""
    log = tmp_path / "boots.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _doc(project: pytest.Pytester) -> str:
    return (project.path / "docs" / "kernels.md").read_text()


def _run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_without_vm_nothing_boots_and_nothing_is_written(guest_project: pytest.Pytester,
                                                          tmp_path: Path) -> None:
    result = _run(guest_project, "-v")
    out = result.stdout.str()
    assert "@vm" not in out
    result.assert_outcomes(passed=3, failed=2)  # the host tier only
    assert "VM tier: not run: 4 tests here also run in the VM with --vm" in out
    # asking for the doc without the VM tier writes nothing either, and says why
    result = _run(guest_project, "--write-kernels-doc")
    assert "docs/kernels.md not written: the VM tier did not run (--vm)" in result.stdout.str()
    assert _boots(tmp_path) == 0
    assert _doc(guest_project) == COMMITTED_DOC


def test_dash_m_vm_without_the_option_is_a_usage_error(guest_project: pytest.Pytester,
                                                       tmp_path: Path) -> None:
    result = _run(guest_project, "-m", "vm")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "-m vm selects the VM tier's twins, which exist only with --vm" in result.stderr.str()
    assert _boots(tmp_path) == 0


def test_guest_outcomes_are_reported_as_twins(guest_project: pytest.Pytester,
                                              tmp_path: Path) -> None:
    result = _run(guest_project, "-v", "--vm")
    out = result.stdout.str()
    # host: test_ok fails (no guest env), test_bad fails; in the "guest" test_ok passes
    assert "test_live_x.py::test_ok@vm PASSED" in out
    assert "test_live_x.py::test_bad@vm FAILED" in out
    assert "wrong in the guest" in out
    assert "test_live_x.py::test_param[1]@vm PASSED" in out
    assert "test_plain.py::test_host_only@vm" not in out  # not a guest test
    assert "tests/vmtier.py::vm-guest@vm PASSED" in out
    assert "VM tier: vmlinuz-9.9.9-amd64: boot" in out
    result.assert_outcomes(passed=7, failed=3)
    assert _boots(tmp_path) == 1
    assert _doc(guest_project) == COMMITTED_DOC  # complete, but nobody asked for the doc


def test_the_vm_marker_selects_only_the_guest_tier(guest_project: pytest.Pytester) -> None:
    result = _run(guest_project, "-v", "--vm", "-m", "vm", "-k", "ok or param")
    out = result.stdout.str()
    assert "test_live_x.py::test_ok PASSED" not in out
    result.assert_outcomes(passed=4)  # ok, param[1], param[2] and the guest run


def test_skip_on_request_and_never_silently_in_ci(guest_project: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(vmtier.SKIP_ENV, "1")
    result = _run(guest_project, "--vm", "-m", "vm", "-rs")
    result.assert_outcomes(skipped=5)
    assert "EBPFHOOKS_SKIP_VM=1" in result.stdout.str()
    monkeypatch.delenv(vmtier.SKIP_ENV)
    monkeypatch.setenv(vmtier.KERNEL_ENV, "/nonexistent/vmlinuz")
    monkeypatch.setenv("CI", "true")
    result = _run(guest_project, "--vm", "-m", "vm")
    result.assert_outcomes(failed=5)
    assert "VM tier cannot run in CI" in result.stdout.str()


def test_kernels_doc_only_from_a_complete_run_that_asks(guest_project: pytest.Pytester,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    partial = {
        "a twin deselected": ("-k", "ok or param"),
        "the host tier deselected": ("-m", "vm"),
        "a file named": ("test_live_x.py", "test_plain.py"),
        "stopped at the first failure": ("-x",),
    }
    for why, args in partial.items():
        result = _run(guest_project, "--vm", "--write-kernels-doc", *args)
        assert "docs/kernels.md not written: " in result.stdout.str(), why
        assert _doc(guest_project) == COMMITTED_DOC, why
    with monkeypatch.context() as m:
        m.setenv("FAKE_VNG_HANG", "1")
        result = _run(guest_project, "--vm", "--write-kernels-doc", "--vm-timeout", "2")
        assert "docs/kernels.md not written: the guest did not finish" in result.stdout.str()
        assert _doc(guest_project) == COMMITTED_DOC

    result = _run(guest_project, "--vm", "--write-kernels-doc")
    assert "docs/kernels.md written" in result.stdout.str()
    data = vmtier.doc_data(_doc(guest_project))
    assert data is not None
    assert data["host"]["tests"] == {"passed": 2, "failed": 2, "skipped": 0}
    assert data["vm"]["tests"] == {"passed": 3, "failed": 1, "skipped": 0}


# ---------------------------------------------------------------- this project's own suite

def _git_status() -> str | None:
    if shutil.which("git") is None or not (HERE.parent / ".git").exists():
        return None
    return subprocess.run(["git", "status", "--porcelain"], cwd=HERE.parent,
                          capture_output=True, text=True, check=True).stdout


def test_this_suite_has_twins_only_with_vm() -> None:
    """A unit-test file next to a kernel-reader file: no twin unless --vm is given."""
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q",
            "tests/test_spec.py", "tests/test_kernel_kallsyms.py"]
    plain = subprocess.run(argv, cwd=HERE.parent, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "@vm" not in plain.stdout
    assert "tests/test_kernel_kallsyms.py::test_live_" in plain.stdout
    asked = subprocess.run([*argv, "--vm"], cwd=HERE.parent, capture_output=True, text=True,
                           timeout=120)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert "tests/test_kernel_kallsyms.py::test_live_" in asked.stdout
    twins = [line for line in asked.stdout.splitlines() if line.endswith("@vm")]
    assert "tests/vmtier.py::vm-guest@vm" in twins
    assert any(t.startswith("tests/test_kernel_kallsyms.py::test_live_") for t in twins)
    assert not any(t.startswith("tests/test_spec.py") for t in twins)  # unit tests have none


def test_a_partial_run_of_this_suite_boots_nothing_and_writes_nothing(
    fake_vng: Path, tmp_path: Path
) -> None:
    """``pytest tests/test_kernel_kallsyms.py`` (live tests included) leaves the checkout as is."""
    doc = vmtier.DOC
    before = (doc.read_bytes(), doc.stat().st_mtime_ns, _git_status())
    env = dict(os.environ, FAKE_VNG_LOG=str(tmp_path / "boots.log"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(HERE.parent),
                                                      env.get("PYTHONPATH"))))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "--basetemp", str(tmp_path / "run"), "tests/test_kernel_kallsyms.py"],
        cwd=HERE.parent, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # its own failures are its own
    assert "@vm" not in proc.stdout
    assert _boots(tmp_path) == 0
    assert (doc.read_bytes(), doc.stat().st_mtime_ns, _git_status()) == before


def test_make_test_runs_both_tiers_and_asks_for_the_doc() -> None:
    """CI runs `make test`: its pytest gets --vm and --write-kernels-doc; test-vm gets --vm."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")

    def pytest_args(target: str) -> list[str]:
        out = subprocess.run(["make", "-n", target], cwd=HERE.parent, capture_output=True,
                             text=True, check=True, env=dict(os.environ, PYTEST_ARGS="")).stdout
        found = re.search(r"-m pytest ([^;\n]*?)\"?;", out)
        assert found, out
        return shlex.split(found.group(1))

    test = pytest_args("test")
    assert "--vm" in test and "--write-kernels-doc" in test and "-m" not in test
    vm = pytest_args("test-vm")
    assert "--vm" in vm and vm[vm.index("-m") + 1] == "vm" and "--write-kernels-doc" not in vm
    host = pytest_args("test-host")
    assert "--vm" not in host and "--write-kernels-doc" not in host


# ---------------------------------------------------------------- docs/kernels.md

def test_kernels_doc_is_what_the_last_run_rendered() -> None:
    """docs/kernels.md is generated: re-rendering its embedded data gives the same text."""
    text = vmtier.DOC.read_text()
    data = vmtier.doc_data(text)
    assert data is not None, "docs/kernels.md has no data line; run `make test`"
    assert vmtier.render_kernels_doc(data) == text
    assert set(data["vm"]["kinds"]) == set(vmtier.KINDS) == set(data["host"]["kinds"])


def test_render_kernels_doc() -> None:
    kinds = {k: {"attached_tests": 2, "not_supported": None} for k in vmtier.KINDS}
    host_kinds = dict(kinds, kprobe={"attached_tests": 0, "not_supported": "CONFIG_KPROBES"},
                      kretprobe={"attached_tests": 0, "not_supported": None})
    data = {"host": {"release": "6.18.1", "kinds": host_kinds,
                     "tests": {"passed": 3, "failed": 0, "skipped": 1}},
            "vm": {"release": "6.1.0-56-amd64", "kinds": kinds,
                   "tests": {"passed": 4, "failed": 1, "skipped": 0}}}
    text = vmtier.render_kernels_doc(data)
    assert "| `kprobe` | `NotSupportedError` (missing CONFIG_KPROBES) | attached, events " \
           "counted (2 passing tests) |" in text
    assert "| `kretprobe` | not exercised |" in text
    assert "- VM: 4 passed, 1 failed, 0 skipped" in text
    assert "--kernel PATH" in text
    assert vmtier.doc_data(text) == data


@pytest.mark.parametrize(("printed", "env", "status"), [
    ("VM tier: vmlinuz-6.1.0-57-amd64: boot 41 s, guest pytest 900 s, ...", {}, 0),
    ("VM tier: not run: 170 tests here also run in the VM with --vm", {}, 1),
    ("", {}, 1),
    ("", {vmtier.SKIP_ENV: "1"}, 0),
])
def test_ci_fails_when_the_vm_tier_never_booted(tmp_path: Path, printed: str,
                                                env: dict[str, str], status: int) -> None:
    """.ci/run on a `make test` that passed: OK only if the VM tier booted (or was skipped)."""
    ci = tmp_path / "repo" / ".ci"
    ci.mkdir(parents=True)
    shutil.copy(HERE.parent / ".ci" / "run", ci / "run")
    fake = tmp_path / "bin" / "make"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho '1 passed'\necho '{printed}'\nexit 0\n")
    fake.chmod(0o755)
    run_env = {k: v for k, v in os.environ.items() if k != vmtier.SKIP_ENV}
    run_env.update(env, PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}", CI="true")
    proc = subprocess.run(["bash", str(ci / "run")], capture_output=True, text=True,
                          env=run_env, timeout=60)
    assert proc.returncode == status, proc.stdout + proc.stderr
    if status:
        assert "ci: FAILED: the VM tier never booted" in proc.stderr
    else:
        assert "ci: OK" in proc.stdout
