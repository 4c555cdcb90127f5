"""Light checks of scripts/setup.sh, the Makefile and .ci/run (no apt runs)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "scripts" / "setup.sh"
CI_RUN = REPO / ".ci" / "run"
MAKEFILE = REPO / "Makefile"

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
IS_ROOT = os.geteuid() == 0

# setup.sh prints every command that changes the machine as "setup: + COMMAND".
ACTION = re.compile(r"^setup: \+ ", re.MULTILINE)


def needs_root() -> None:
    """Skip without root on a developer's machine; in CI, missing root is a failure."""
    if IS_ROOT:
        return
    if IN_CI:
        pytest.fail("CI must run as root (scripts/setup.sh and bcc need it)")
    pytest.skip("needs root")


Run = tuple[subprocess.CompletedProcess[str], float]


def run_setup(env_extra: dict[str, str] | None = None) -> Run:
    env = dict(os.environ)
    env.update(env_extra or {})
    start = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SETUP)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return proc, time.monotonic() - start


def test_setup_script_syntax() -> None:
    subprocess.run(["bash", "-n", str(SETUP)], check=True)
    subprocess.run(["bash", "-n", str(CI_RUN)], check=True)


def test_scripts_are_executable() -> None:
    assert os.access(SETUP, os.X_OK), f"{SETUP} is not executable"
    assert os.access(CI_RUN, os.X_OK), f"{CI_RUN} is not executable"


def test_setup_script_is_strict() -> None:
    text = SETUP.read_text()
    assert "set -euo pipefail" in text
    assert "/usr/bin/python3" in text  # the pyenv python3 on PATH cannot import bcc


def test_ci_run_calls_make_test() -> None:
    text = CI_RUN.read_text()
    assert re.search(r"^[^#\n]*\bmake test\b", text, re.MULTILINE), ".ci/run must run `make test`"
    assert "set -euo pipefail" in text
    assert "exit 5" in text or "no tests" in text  # pytest's "no tests" is handled


def test_makefile_targets() -> None:
    text = MAKEFILE.read_text()
    for target in ("setup", "demo", "test", "lint"):
        assert re.search(rf"^{target}:", text, re.MULTILINE), f"no `{target}` target"
    assert "PYTEST_ARGS" in text
    # recipe lines must start with a tab
    proc = subprocess.run(
        ["make", "-n", "-f", str(MAKEFILE), "test", "PYTEST_ARGS=-k nothing"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "scripts/setup.sh" in proc.stdout
    assert "-k nothing" in proc.stdout
    assert "ruff check" in proc.stdout
    assert "mypy" in proc.stdout


def test_setup_again_changes_nothing() -> None:
    """On an already set-up machine, setup.sh exits 0 quickly and runs no command."""
    needs_root()
    proc, _ = run_setup()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if ACTION.search(proc.stdout):
        # Something was (re)done, e.g. pyproject.toml changed since the last install:
        # the run after it must find nothing to do.
        proc, _ = run_setup()
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc, _elapsed = run_setup()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    actions = ACTION.findall(proc.stdout)
    assert not actions, "a second run changed the machine:\n" + proc.stdout
    assert "apt-get" not in proc.stdout
    assert "setup: ok: bcc" in proc.stdout


def test_setup_links_debian_headers_into_scratch_dir(tmp_path: Path) -> None:
    """The fallback for kernels without a headers package: newest Debian tree, both halves."""
    needs_root()
    src = tmp_path / "src"
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    for name in (
        f"linux-headers-6.1.0-9-{arch}",
        "linux-headers-6.1.0-9-common",
        f"linux-headers-6.1.0-10-{arch}",  # newest complete pair (version sort, not text)
        "linux-headers-6.1.0-10-common",
        f"linux-headers-6.1.0-11-cloud-{arch}",  # a flavour: no plain -common partner
        f"linux-headers-6.1.0-12-{arch}",  # no -common partner
    ):
        (src / name / "include").mkdir(parents=True)
    modules = tmp_path / "modules"
    env = {
        "EBPFHOOKS_MODULES_DIR": str(modules),
        "EBPFHOOKS_HEADERS_SRC": str(src),
        "EBPFHOOKS_SETUP_NO_APT": "1",
    }
    proc, _ = run_setup(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.readlink(modules / "build") == str(src / f"linux-headers-6.1.0-10-{arch}")
    assert os.readlink(modules / "source") == str(src / "linux-headers-6.1.0-10-common")
    assert "NOT the running kernel" in proc.stderr

    again, _ = run_setup(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not ACTION.search(again.stdout), again.stdout


def test_setup_refuses_to_replace_a_real_build_dir(tmp_path: Path) -> None:
    needs_root()
    modules = tmp_path / "modules"
    (modules / "build").mkdir(parents=True)  # empty: not usable, and not ours to replace
    proc, _ = run_setup({"EBPFHOOKS_MODULES_DIR": str(modules), "EBPFHOOKS_SETUP_NO_APT": "1"})
    assert proc.returncode != 0
    assert "not a symlink" in proc.stderr
    assert (modules / "build").is_dir() and not (modules / "build").is_symlink()


def test_setup_requires_root_message() -> None:
    """Without root the script stops at once with a one-line hint."""
    cmd = ["bash", "-s"]  # the script on stdin: the checkout may not be readable by nobody
    if IS_ROOT:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    try:
        proc = subprocess.run(
            cmd, input=SETUP.read_text(), cwd="/", capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        pytest.skip("setpriv not available")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "must run as root" in proc.stderr
    assert "sudo" in proc.stderr
    assert not ACTION.search(proc.stdout)
