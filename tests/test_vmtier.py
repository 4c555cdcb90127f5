"""Tests of the VM tier's own machinery (tests/vmtier.py), without booting anything.

A fake ``vng`` runs the "guest" command on this machine, so the whole path (twin
items, request, guest entry point, JSON results, outcomes reported back, a hang
killed after its bound) is exercised in seconds. The real boot is the VM tier itself.
"""

from __future__ import annotations

import json
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


@pytest.fixture
def guest_project(pytester: pytest.Pytester, fake_vng: Path,
                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    _guest_project(pytester)
    kernel = tmp_path / "vmlinuz-9.9.9-amd64"
    kernel.write_text("")
    monkeypatch.setenv(vmtier.KERNEL_ENV, str(kernel))
    monkeypatch.setenv("PYTHONPATH", str(HERE))
    monkeypatch.delenv(vmtier.SKIP_ENV, raising=False)
    if not Path("/usr/bin/qemu-system-x86_64").exists():
        pytest.skip("missing_pieces() wants qemu-system-x86_64 even with a fake vng")
    return pytester


def test_guest_outcomes_are_reported_as_twins(guest_project: pytest.Pytester) -> None:
    result = guest_project.runpytest_subprocess("-v", "-p", "no:cacheprovider")
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


def test_the_vm_marker_selects_only_the_guest_tier(guest_project: pytest.Pytester) -> None:
    result = guest_project.runpytest_subprocess("-v", "-p", "no:cacheprovider", "-m", "vm",
                                                "-k", "ok or param")
    out = result.stdout.str()
    assert "test_live_x.py::test_ok PASSED" not in out
    result.assert_outcomes(passed=4)  # ok, param[1], param[2] and the guest run


def test_skip_on_request_and_never_silently_in_ci(guest_project: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(vmtier.SKIP_ENV, "1")
    result = guest_project.runpytest_subprocess("-p", "no:cacheprovider", "-m", "vm", "-rs")
    result.assert_outcomes(skipped=5)
    assert "EBPFHOOKS_SKIP_VM=1" in result.stdout.str()
    monkeypatch.delenv(vmtier.SKIP_ENV)
    monkeypatch.setenv(vmtier.KERNEL_ENV, "/nonexistent/vmlinuz")
    monkeypatch.setenv("CI", "true")
    result = guest_project.runpytest_subprocess("-p", "no:cacheprovider", "-m", "vm")
    result.assert_outcomes(failed=5)
    assert "VM tier cannot run in CI" in result.stdout.str()


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
