"""The VM tier: the live tests again, inside a second kernel booted under qemu.

This machine's kernel has no kprobes, so ebpfhooks also runs its live tests inside
Debian's distribution kernel (6.1, with kprobes), booted with virtme-ng under qemu
(software emulation: KVM does not work here) and sharing the host's root filesystem,
so the host's ``.venv`` and checkout are used unchanged inside the guest.

How it works (a pytest plugin, registered by ``tests/conftest.py``):

* The tier runs only when asked: ``--vm`` (``make test`` and ``make test-vm`` pass it).
  Without it nothing boots and no twin exists; ``pytest tests/test_x.py`` is the host
  tier only.
* Collection (with ``--vm``): every test that should also run in the guest (see
  :func:`is_guest_test`: the live suite of the eight kinds, the kernel readers,
  listing/info, the hello world, anything marked ``guest``) gets a twin item,
  ``<nodeid>@vm``, marked ``vm``. ``-m vm`` runs only the VM tier, ``-m "not vm"``
  only the host tier; ``-k`` selects in both. The twins run after the host tests.
* The first twin that runs boots the guest once (``vng --disable-kvm --run KERNEL``)
  and runs pytest inside on exactly the selected tests; the guest writes one JSON line
  per test phase into a directory shared read-write with the host, and each twin
  reports its guest test's outcome (and failure text) back into this run.
  ``vm-guest@vm`` reports the guest itself: boot, exit status, timings, console log.
* A guest that hangs is killed after ``--vm-timeout`` seconds (default 1800, or
  ``EBPFHOOKS_VM_TIMEOUT``); every unfinished twin then fails with the console log.
* Once asked for, the VM tier can still be skipped on request (``EBPFHOOKS_SKIP_VM=1``,
  or ``-m "not vm"``). Without qemu, virtme-ng or a kernel image it skips with a hint
  on a developer's machine and FAILS in CI (``CI=true``), like the ``live`` fixture.
* ``--write-kernels-doc`` (``make test`` passes it) writes the kinds attached on each
  kernel to ``docs/kernels.md`` (see :func:`render_kernels_doc`), and only after a
  complete two-tier run: the whole suite collected, every host guest test and every
  twin selected and run, the guest finished. Any other run leaves the file alone and
  says why.

Options: ``--vm``, ``--write-kernels-doc``, ``--kernel PATH`` (a bzImage/vmlinuz;
default: the newest ``/boot/vmlinuz-*-amd64``, or ``EBPFHOOKS_VM_KERNEL``),
``--vm-timeout SECONDS``, ``--vm-memory`` (default 4G), ``--vm-cpus`` (default 2).

Used by hand: ``python tests/vmtier.py run [--kernel PATH] -- COMMAND`` boots the
guest, mounts tracefs/debugfs and runs COMMAND (``scripts/vm.sh`` wraps this).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "kernels.md"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

GUEST_ENV = "EBPFHOOKS_VM_GUEST"  # set inside the guest: the shared results directory
SKIP_ENV = "EBPFHOOKS_SKIP_VM"
KERNEL_ENV = "EBPFHOOKS_VM_KERNEL"
TIMEOUT_ENV = "EBPFHOOKS_VM_TIMEOUT"
VNG_ENV = "EBPFHOOKS_VNG"
DEFAULT_TIMEOUT = 1800.0
DEFAULT_VNG = "/opt/vng/bin/vng"
SUFFIX = "@vm"
RUN_NAME = "vm-guest" + SUFFIX

def _kinds() -> tuple[str, ...]:
    from ebpfhooks.hooks import KINDS as registered

    return tuple(k.kind for k in registered)


#: Every kind of the registry (ebpfhooks.hooks.KINDS), in its order.
KINDS = _kinds()
GUEST_FILE_PATTERNS = (re.compile(r"test_kernel_\w+\.py$"), re.compile(r"test_live\w*\.py$"))
GUEST_LIVE_FILES = frozenset({"test_discover.py", "test_doctor.py"})
GUEST_TESTS: frozenset[str] = frozenset()  # single tests by nodeid (without parameters)
ALL_LIVE_ENV = "EBPFHOOKS_VM_ALL_LIVE"
#: Tests that would match but stay on the host, with the reason.
HOST_ONLY: dict[str, str] = {}
CONSOLE_TAIL = 80
#: ``-m vm`` alone: it selects nothing unless ``--vm`` made the twins.
MARK_VM_ONLY = re.compile(r"\s*\(?\s*vm\s*\)?\s*")


def in_guest() -> bool:
    """True inside the VM tier's guest."""
    return bool(os.environ.get(GUEST_ENV))


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


# ------------------------------------------------------------------ kernel, vng, qemu

def _version_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key for kernel releases: numbers compare as numbers (6.1.0-10 < 6.1.0-56)."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p]


def newest_boot_kernel(boot: Path = Path("/boot"), flavour: str = "amd64") -> Path | None:
    """The newest ``vmlinuz-<ver>-<flavour>`` in ``boot``, or ``None``.

    >>> newest_boot_kernel()                                 # doctest: +SKIP
    PosixPath('/boot/vmlinuz-6.1.0-56-amd64')
    """
    found = [p for p in boot.glob(f"vmlinuz-*-{flavour}") if p.is_file()]
    if not found:
        return None
    return max(found, key=lambda p: _version_key(p.name[len("vmlinuz-"):]))


def kernel_release_of(image: Path) -> str | None:
    """The release a ``vmlinuz-<release>`` file name says, or ``None`` for other names."""
    name = image.name
    return name[len("vmlinuz-"):] if name.startswith("vmlinuz-") else None


def find_vng() -> str | None:
    """virtme-ng's ``vng``: ``$EBPFHOOKS_VNG``, /opt/vng/bin/vng (scripts/setup.sh), or PATH."""
    env = os.environ.get(VNG_ENV)
    if env:
        return env if os.access(env, os.X_OK) else None
    if os.access(DEFAULT_VNG, os.X_OK):
        return DEFAULT_VNG
    return shutil.which("vng")


def missing_pieces(kernel: Path | None) -> list[str]:
    """What the VM tier lacks on this machine (empty when it can run)."""
    missing = []
    if shutil.which("qemu-system-x86_64") is None:
        missing.append("qemu-system-x86_64 (apt-get install qemu-system-x86)")
    if find_vng() is None:
        missing.append(f"virtme-ng's vng (pip install virtme-ng into /opt/vng, or set {VNG_ENV})")
    if kernel is None:
        missing.append("a kernel image: no /boot/vmlinuz-*-amd64 (apt-get install "
                       f"linux-image-amd64), and neither --kernel nor {KERNEL_ENV} given")
    elif not kernel.is_file():
        missing.append(f"the kernel image {kernel} (no such file)")
    return missing


@dataclass
class GuestRun:
    """What one boot of the guest did, measured on the host's clock."""

    kernel: Path
    rundir: Path
    command: list[str]
    returncode: int | None = None
    timed_out: bool = False
    boot_seconds: float | None = None  # launch -> the guest's first command runs
    total_seconds: float = 0.0  # launch -> qemu gone
    error: str | None = None

    @property
    def console_path(self) -> Path:
        return self.rundir / "console.log"

    def console_tail(self, lines: int = CONSOLE_TAIL) -> str:
        try:
            text = self.console_path.read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])


def vng_command(
    vng: str, kernel: Path, rundir: Path, guest_command: str, memory: str = "4G", cpus: int = 2,
) -> list[str]:
    """The ``vng`` command line booting ``kernel`` and running ``guest_command`` as root."""
    return [
        vng, "--disable-kvm", "--verbose", "--memory", memory, "--cpus", str(cpus),
        f"--rwdir={rundir}", "--run", str(kernel), "--user", "root",
        "--", guest_command,
    ]


def boot_guest(
    kernel: Path, rundir: Path, guest_argv: list[str], *, timeout: float,
    memory: str = "4G", cpus: int = 2,
) -> GuestRun:
    """Boot ``kernel`` and run ``guest_argv`` in it; kill it after ``timeout`` seconds.

    ``rundir`` is shared read-write with the guest (the rest of the host filesystem is
    read-only there, with writable overlays on /etc, /tmp, /usr, /var ...). The console
    goes to ``rundir/console.log``; the guest entry point touches ``rundir/started``
    as its first act, which is how the boot time is measured.
    """
    rundir.mkdir(parents=True, exist_ok=True)
    vng = find_vng()
    assert vng is not None
    command = vng_command(vng, kernel, rundir, shlex.join(guest_argv), memory, cpus)
    run = GuestRun(kernel=kernel, rundir=rundir, command=command)
    env = dict(os.environ)
    env["PATH"] = f"{Path(vng).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    started = rundir / "started"
    t0 = time.monotonic()
    with open(run.console_path, "wb") as console:
        console.write(f"$ {shlex.join(command)}\n".encode())
        console.flush()
        # Same process group as pytest: whoever stops the test run (Ctrl-C, CI's
        # `timeout`) stops qemu with it.
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=console,
                                stderr=subprocess.STDOUT, cwd=str(ROOT), env=env)
        try:
            while True:
                try:
                    run.returncode = proc.wait(timeout=0.25)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if run.boot_seconds is None and started.exists():
                    run.boot_seconds = time.monotonic() - t0
                if time.monotonic() - t0 > timeout:
                    run.timed_out = True
                    _kill_tree(proc)
                    break
        finally:
            if proc.poll() is None:
                _kill_tree(proc)
    run.total_seconds = time.monotonic() - t0
    if run.boot_seconds is None and started.exists():
        run.boot_seconds = run.total_seconds
    return run


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out.extend(kids)
        todo.extend(kids)
    return out


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Stop vng and everything it started (qemu): SIGTERM, then SIGKILL after 5 s."""
    pids = [proc.pid, *descendants(proc.pid)]

    def alive(pid: int) -> bool:
        if pid == proc.pid:
            return proc.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.1)
        if not any(alive(p) for p in pids):
            return


# ------------------------------------------------------------------ inside the guest

def _mount_if_needed(fstype: str, path: str) -> None:
    with open("/proc/self/mounts") as f:
        if any(line.split()[1:3] == [path, fstype] for line in f):
            return
    subprocess.run(["mount", "-t", fstype, fstype, path], check=False)


def guest_main(rundir: Path) -> int:
    """Entry point inside the guest: mount tracefs/debugfs, run the requested command."""
    (rundir / "started").write_text(f"{os.uname().release}\n")
    _mount_if_needed("tracefs", "/sys/kernel/tracing")
    _mount_if_needed("debugfs", "/sys/kernel/debug")
    request = json.loads((rundir / "request.json").read_text())
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
        **request.get("env", {}), GUEST_ENV: str(rundir),
    }
    workdir = Path("/tmp/ebpfhooks-vm")  # writable (an overlay) in the guest
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(rundir / "guest-output.log", "wb") as out:
        rc = subprocess.run(request["argv"], stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, cwd=request.get("cwd") or workdir,
                            env=env).returncode
    (rundir / "exit.json").write_text(json.dumps(
        {"returncode": rc, "seconds": time.monotonic() - t0, "release": os.uname().release}))
    return 0


def guest_pytest_argv(nodeids: list[str], rootdir: Path = ROOT,
                      inifile: Path | None = ROOT / "pyproject.toml") -> list[str]:
    """The pytest command the guest runs: exactly these tests, results as JSON lines."""
    ini = ["-c", str(inifile)] if inifile is not None else []
    return [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(rootdir),
        *ini, "--basetemp", "/tmp/ebpfhooks-vm/pytest", "-o", "addopts=", "-ra", "-v",
        *(f"{rootdir}/{nodeid}" for nodeid in nodeids),
    ]


# ------------------------------------------------------------------ results

@dataclass
class Outcome:
    """One test's result, from its setup/call/teardown reports."""

    outcome: str = "passed"  # passed | failed | skipped
    text: str = ""
    seconds: float = 0.0

    def add(self, when: str, outcome: str, text: str, seconds: float) -> None:
        self.seconds += seconds
        if outcome == "failed" and self.outcome != "failed":
            self.outcome, self.text = "failed", f"[{when}] {text}"
        elif outcome == "skipped" and self.outcome == "passed":
            self.outcome, self.text = "skipped", text


def read_results(path: Path) -> tuple[dict[str, Outcome], list[str]]:
    """Fold the guest's JSON lines into outcomes; also the tests started but never ended."""
    results: dict[str, Outcome] = {}
    started: list[str] = []
    ended: set[str] = set()
    if not path.exists():
        return results, started
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed guest
        nodeid = rec["nodeid"]
        if rec["event"] == "start":
            started.append(nodeid)
        elif rec["event"] == "report":
            results.setdefault(nodeid, Outcome()).add(
                rec["when"], rec["outcome"], rec.get("text", ""), rec.get("seconds", 0.0))
        elif rec["event"] == "finish":
            ended.add(nodeid)
    return results, [n for n in started if n not in ended]


def _report_text(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    if getattr(report, "wasxfail", None) is not None:
        return f"xfail: {report.wasxfail}"
    return "" if report.passed else str(report.longrepr)


# ------------------------------------------------------------------ which kinds attached

@dataclass
class KindLog:
    """Attaches seen in this process, per test: (nodeid, kind, error class or '')."""

    current: str = ""
    attaches: list[tuple[str, str, str, str]] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per kind: passed tests that attached it, and the NotSupportedError seen, if any."""
        out: dict[str, dict[str, Any]] = {}
        for kind in KINDS:
            passed = {n for n, k, err, _ in self.attaches
                      if k == kind and not err and self.outcomes.get(n, Outcome("x")).outcome
                      == "passed"}
            unsupported = sorted({m for _, k, err, m in self.attaches
                                  if k == kind and err == "NotSupportedError"})
            out[kind] = {"attached_tests": len(passed),
                         "not_supported": unsupported[0] if unsupported else None}
        return out


KIND_LOG = KindLog()


def _install_attach_recorder() -> None:
    """Record each test's attaches: every successful one (``Hook._attach_checked``, which
    single attaches, groups and chains all go through) and the NotSupportedErrors of
    ``Hook.attach``."""
    from ebpfhooks.hooks import base

    original = base.Hook.attach
    if getattr(original, "_ehk_recorder", False):
        return
    checked = base.Hook._attach_checked

    def attach(self: Any, prog: Any, fn_name: str | None = None) -> Any:
        try:
            return original(self, prog, fn_name)
        except Exception as err:
            missing = getattr(err, "missing", None) or ""
            KIND_LOG.attaches.append((KIND_LOG.current, self.kind, type(err).__name__,
                                      str(missing)))
            raise

    def attach_checked(self: Any, program: Any, resolution: Any) -> Any:
        link = checked(self, program, resolution)
        KIND_LOG.attaches.append((KIND_LOG.current, self.kind, "", ""))
        return link

    attach._ehk_recorder = True  # type: ignore[attr-defined]
    base.Hook.attach = attach  # type: ignore[method-assign]
    base.Hook._attach_checked = attach_checked  # type: ignore[method-assign]


def tier_summary(log: KindLog, release: str) -> dict[str, Any]:
    """What one tier contributes to docs/kernels.md."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for o in log.outcomes.values():
        counts[o.outcome] += 1
    return {"release": release, "kinds": log.summary(), "tests": counts}


# ------------------------------------------------------------------ docs/kernels.md

DOC_HEADER = "# Kernels the live tests ran on\n"
DATA_RE = re.compile(r"^<!-- data: (\{.*\}) -->$", re.M)


def _cell(kind: dict[str, Any]) -> str:
    if kind["attached_tests"]:
        n = kind["attached_tests"]
        return f"attached, events counted ({n} passing test{'s' if n != 1 else ''})"
    if kind["not_supported"] is not None:
        return f"`NotSupportedError` (missing {kind['not_supported'] or 'a feature'})"
    return "not exercised"


def render_kernels_doc(data: dict[str, Any]) -> str:
    """docs/kernels.md from the two tiers' summaries (``{"host": ..., "vm": ...}``).

    The data is embedded in the file, so a test can check the file is exactly what
    this function renders from it (nobody edited the table by hand).
    """
    host, vm = data["host"], data["vm"]
    lines = [
        DOC_HEADER,
        "<!-- Written by tests/vmtier.py (pytest --vm --write-kernels-doc, as `make test` runs",
        "     it) after a complete run of both tiers; do not edit by hand. -->",
        f"<!-- data: {json.dumps(data, sort_keys=True)} -->",
        "",
        "`make test` runs the live tests on two kernels: the machine's own (the host tier)",
        "and Debian's distribution kernel booted with virtme-ng under qemu (the VM tier,",
        "software emulation), which shares the host's root filesystem. Each cell says what",
        "the live tests saw: a kind counts as attached when a passing test attached it",
        "through `Hook.from_spec(...).attach` and counted its events; `NotSupportedError`",
        "means the tests asserted the library's clear refusal.",
        "",
        f"| kind | host `{host['release']}` | VM `{vm['release']}` |",
        "|---|---|---|",
    ]
    unseen = {"attached_tests": 0, "not_supported": None}  # a kind newer than the data
    for kind in KINDS:
        lines.append(f"| `{kind}` | {_cell(host['kinds'].get(kind, unseen))} | "
                     f"{_cell(vm['kinds'].get(kind, unseen))} |")
    lines += ["", "Tests in that run:", ""]
    for name, tier in (("host", host), ("VM", vm)):
        t = tier["tests"]
        lines.append(f"- {name}: {t['passed']} passed, {t['failed']} failed, "
                     f"{t['skipped']} skipped (the tier's live, kernel and guest tests)")
    lines += [
        "",
        "## Running the tiers",
        "",
        "```sh",
        "make test        # both tiers (what CI runs: pytest --vm --write-kernels-doc)",
        "make test-host   # the host kernel only (plain pytest: nothing boots)",
        "make test-vm     # the VM tier only (pytest --vm -m vm)",
        "make test-vm VM_KERNEL=/path/to/vmlinuz   # another kernel image (--kernel PATH)",
        "```",
        "",
        "The VM tier runs only when asked: `pytest --vm` adds a `@vm` twin of each guest test",
        "(the live tests, the kernel readers; `is_guest_test` in tests/vmtier.py says which).",
        "Plain `pytest tests/test_x.py` runs on this machine's kernel only, boots nothing and",
        "changes no tracked file. This file is rewritten only with `--write-kernels-doc`",
        "(`make test` passes it) and only after a complete run of both tiers: the whole suite,",
        "nothing deselected, the guest finished. A partial run (`-k`, `-m`, named files, `-x`",
        "stopping early, a guest killed at its timeout) leaves it alone and says why.",
        "",
        "By default the VM tier boots the newest `/boot/vmlinuz-*-amd64` (scripts/setup.sh",
        "installs `linux-image-amd64` and the matching headers). Any bzImage works with",
        "`--kernel PATH` (or `EBPFHOOKS_VM_KERNEL`) as long as virtme-ng can boot it and bcc",
        "finds headers for it under `/lib/modules/<release>/build` inside the guest. A guest",
        "that does not finish within `--vm-timeout` seconds (default 1800) is killed and",
        "reported as a failure with its console log. Without qemu, set `EBPFHOOKS_SKIP_VM=1`",
        "(or run `make test-host`); in CI a missing VM tier is a failure, never a skip.",
        "",
        "By hand: `scripts/vm.sh -- uname -r` boots the guest and runs one command.",
        "",
    ]
    return "\n".join(lines)


def doc_data(text: str) -> dict[str, Any] | None:
    """The data embedded in a docs/kernels.md, or ``None``."""
    m = DATA_RE.search(text)
    return json.loads(m.group(1)) if m else None


# ------------------------------------------------------------------ pytest plugin

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vm", "VM tier (tests/vmtier.py)")
    group.addoption("--vm", dest="vm_tier", action="store_true", default=False,
                    help="also run the VM tier: a @vm twin of each guest test, run inside "
                         "a second kernel under qemu (slow; make test and make test-vm "
                         "pass it)")
    group.addoption("--write-kernels-doc", dest="write_kernels_doc", action="store_true",
                    default=False,
                    help="after a complete two-tier run (the whole suite, --vm, nothing "
                         "deselected), write docs/kernels.md (make test passes it)")
    group.addoption("--kernel", dest="vm_kernel", metavar="PATH", default=None,
                    help=f"kernel image for the VM tier (default: ${KERNEL_ENV}, or the "
                         "newest /boot/vmlinuz-*-amd64)")
    group.addoption("--vm-timeout", dest="vm_timeout", type=float, default=None,
                    metavar="SECONDS",
                    help=f"kill the guest after this long (default ${TIMEOUT_ENV} or "
                         f"{DEFAULT_TIMEOUT:.0f})")
    group.addoption("--vm-memory", dest="vm_memory", default="4G", help="guest memory (4G)")
    group.addoption("--vm-cpus", dest="vm_cpus", type=int, default=2, help="guest CPUs (2)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm: the VM tier's twin of a test (tests/vmtier.py)")
    config.addinivalue_line("markers", "guest: also run this test in the VM tier")
    if in_guest():
        config.pluginmanager.register(GuestReporter(Path(os.environ[GUEST_ENV])),
                                      "ebpfhooks-vm-guest")
    with contextlib.suppress(ImportError):
        _install_attach_recorder()
    config.stash[_STATE] = TierState(asked=bool(config.getoption("vm_tier")))
    if not in_guest():
        config.pluginmanager.register(_KeepRunItem(), "ebpfhooks-vm-keep-run-item")
        if not config.getoption("vm_tier") and MARK_VM_ONLY.fullmatch(
                config.getoption("markexpr", "") or ""):
            raise pytest.UsageError(
                "-m vm selects the VM tier's twins, which exist only with --vm "
                "(make test-vm runs: pytest --vm -m vm)")


def is_guest_test(item: pytest.Item) -> bool:
    """Whether ``item`` also runs in the VM tier.

    Every test in ``test_live*.py``, ``test_kernel_*.py`` (the eight kinds and the
    kernel readers), the live tests of ``test_discover.py`` and ``test_doctor.py``
    (listing and info; test_live_kprobe.py has the hello world), and any test
    marked ``guest``.
    ``EBPFHOOKS_VM_ALL_LIVE=1`` adds every other ``live`` test (slow under emulation:
    each example compiles its own program).
    """
    if item.get_closest_marker("guest"):
        return True
    if item.nodeid in HOST_ONLY:
        return False
    name = item.path.name
    if any(p.match(name) for p in GUEST_FILE_PATTERNS):
        return True
    live = item.get_closest_marker("live") is not None
    if live and name in GUEST_LIVE_FILES:
        return True
    if item.nodeid.split("[")[0] in GUEST_TESTS:
        return True
    return live and _truthy(os.environ.get(ALL_LIVE_ENV))


@dataclass
class TierState:
    """Per-session bookkeeping of the VM tier on the host."""

    asked: bool = False  # --vm given
    eligible: int = 0  # guest tests collected (before -k/-m)
    host_eligible: int = 0
    selected: list[str] = field(default_factory=list)  # nodeids the guest runs
    host_selected: int = 0
    run: GuestRun | None = None
    results: dict[str, Outcome] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    exit: dict[str, Any] | None = None
    unavailable: str | None = None
    guest_summary: dict[str, Any] | None = None
    timing_line: str = ""
    doc_line: str = ""  # what --write-kernels-doc did, or why it did not
    run_item: pytest.Item | None = None


_STATE = pytest.StashKey[TierState]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """With ``--vm``, add a ``@vm`` twin for each guest test (before -m/-k deselect)."""
    if in_guest():
        return
    state = config.stash[_STATE]
    twins: list[pytest.Item] = []
    for item in items:
        if isinstance(item, VmItem) or not is_guest_test(item):
            continue
        state.host_eligible += 1
        if state.asked:
            twins.append(VmItem.from_parent(item.parent or session, name=item.name + SUFFIX,
                                            original=item.nodeid))
    if twins:
        state.eligible = len(twins)
        state.run_item = VmRunItem.from_parent(session, name=RUN_NAME, original="",
                                               nodeid=f"tests/vmtier.py::{RUN_NAME}")
        twins.append(state.run_item)
    items.extend(twins)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and hasattr(reporter, "_numcollected"):
        reporter._numcollected += len(twins)  # so "collected N items" counts the twins


class _KeepRunItem:
    """Keep the guest-run item whenever any twin survived -k/-m (it reports boot problems)."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        state = config.stash[_STATE]
        if state.run_item is not None and state.run_item not in items and any(
                isinstance(i, VmItem) for i in items):
            items.append(state.run_item)


def pytest_collection_finish(session: pytest.Session) -> None:
    if in_guest():
        return
    state = session.config.stash[_STATE]
    state.selected = [i.original for i in session.items
                      if isinstance(i, VmItem) and not isinstance(i, VmRunItem)]
    state.host_selected = sum(1 for i in session.items
                              if not isinstance(i, VmItem) and is_guest_test(i))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    KIND_LOG.current = item.nodeid
    yield
    KIND_LOG.current = ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid.endswith(SUFFIX):
        return
    KIND_LOG.outcomes.setdefault(report.nodeid, Outcome()).add(
        report.when, report.outcome, "", report.duration)


def _timeout(config: pytest.Config) -> float:
    opt = config.getoption("vm_timeout")
    if opt is not None:
        return float(opt)
    return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)


def _kernel(config: pytest.Config) -> Path | None:
    given = config.getoption("vm_kernel") or os.environ.get(KERNEL_ENV)
    return Path(given) if given else newest_boot_kernel()


def _unavailable(message: str) -> None:
    if _truthy(os.environ.get(SKIP_ENV)):
        pytest.skip(f"VM tier skipped on request ({SKIP_ENV}=1)")
    if IN_CI:
        pytest.fail(f"VM tier cannot run in CI: {message}", pytrace=False)
    pytest.skip(f"VM tier cannot run: {message} (make setup installs it; "
                f"{SKIP_ENV}=1 or -m 'not vm' skips the tier)")


def _ensure_run(config: pytest.Config) -> TierState:
    """Boot the guest once per session and collect its results."""
    state = config.stash[_STATE]
    if state.run is not None or state.unavailable is not None:
        return state
    if _truthy(os.environ.get(SKIP_ENV)):
        state.unavailable = "skip"
        return state
    kernel = _kernel(config)
    missing = missing_pieces(kernel)
    if missing:
        state.unavailable = "missing " + "; ".join(missing)
        return state
    assert kernel is not None
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    rundir = Path(base) / "vm"
    rundir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if (k.startswith("EBPFHOOKS_") and k != GUEST_ENV) or k in ("CI", "PYTHONPATH")}
    env.setdefault("EBPFHOOKS_LIFETIME_CYCLES", "50")  # 1,000 cycles is long under emulation
    argv = guest_pytest_argv(state.selected, config.rootpath, config.inipath)
    (rundir / "request.json").write_text(json.dumps({"argv": argv, "env": env}))
    state.run = boot_guest(
        kernel, rundir, [sys.executable, str(Path(__file__).resolve()), "guest", str(rundir)],
        timeout=_timeout(config), memory=config.getoption("vm_memory"),
        cpus=config.getoption("vm_cpus"))
    state.results, state.unfinished = read_results(rundir / "results.jsonl")
    with contextlib.suppress(OSError, ValueError):
        state.exit = json.loads((rundir / "exit.json").read_text())
    with contextlib.suppress(OSError, ValueError):
        state.guest_summary = json.loads((rundir / "summary.json").read_text())
    _print_timings(config, state)
    return state


def _print_timings(config: pytest.Config, state: TierState) -> None:
    run = state.run
    assert run is not None
    boot = f"{run.boot_seconds:.0f} s" if run.boot_seconds is not None else "never"
    guest = f"{state.exit['seconds']:.0f} s" if state.exit else "unfinished"
    line = (f"VM tier: {run.kernel.name}: boot {boot}, guest pytest {guest}, total "
            f"{run.total_seconds:.0f} s for {len(state.selected)} tests "
            f"({sum(o.outcome == 'passed' for o in state.results.values())} passed); "
            f"logs in {run.rundir}")
    state.timing_line = line
    (run.rundir / "timings.txt").write_text(line + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    state = terminalreporter.config.stash.get(_STATE, None)
    if state is None or in_guest():
        return
    lines = [state.timing_line] if state.timing_line else []
    if not state.asked and state.host_eligible:
        lines.append(f"VM tier: not run: {state.host_eligible} tests here also run in the VM "
                     "with --vm (make test-vm)")
    if state.doc_line:
        lines.append(state.doc_line)
    if lines:
        terminalreporter.write_sep("-", "VM tier")
        for line in lines:
            terminalreporter.write_line(line)


class GuestFailure(Exception):
    """A test that failed in the guest: its report text is shown as is."""


class VmItem(pytest.Item):
    """The VM tier's twin of a host test: its outcome is the guest's."""

    def __init__(self, *, original: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.original = original
        self.add_marker("vm")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.original} in the VM"

    def _state(self) -> TierState:
        state = _ensure_run(self.config)
        if state.unavailable == "skip":
            pytest.skip(f"VM tier skipped on request ({SKIP_ENV}=1)")
        if state.unavailable is not None:
            _unavailable(state.unavailable)
        return state

    def runtest(self) -> None:
        state = self._state()
        run = state.run
        assert run is not None
        result = state.results.get(self.original)
        if result is None:
            why = ("the guest was killed after its timeout" if run.timed_out
                   else "the guest never reported it")
            if self.original in state.unfinished:
                why = "it was running when the guest " + (
                    "was killed after its timeout" if run.timed_out else "stopped")
            raise GuestFailure(f"{self.original} has no result from the VM: {why}; "
                               f"see {RUN_NAME} and {run.console_path}")
        if result.outcome == "skipped":
            pytest.skip(f"in the VM: {result.text}")
        if result.outcome == "failed":
            raise GuestFailure(f"failed in the VM ({run.kernel.name}):\n{result.text}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, GuestFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))


class VmRunItem(VmItem):
    """The guest run itself: it booted, pytest ran to the end, every test reported."""

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return Path(__file__), None, "the VM tier's guest run"

    def runtest(self) -> None:
        state = self._state()
        run = state.run
        assert run is not None
        problems = []
        if run.timed_out:
            problems.append(f"the guest was killed after {_timeout(self.config):.0f} s "
                            f"(--vm-timeout / {TIMEOUT_ENV})")
        if run.boot_seconds is None:
            problems.append("the guest never ran its first command (boot failed?)")
        elif state.exit is None and not run.timed_out:
            problems.append(f"the guest stopped before pytest finished (vng exit "
                            f"{run.returncode})")
        if state.exit is not None and state.exit["returncode"] not in (0, 1):
            problems.append(f"pytest in the guest exited {state.exit['returncode']} "
                            "(0: all passed, 1: some failed; anything else is an error)")
        missing = [n for n in state.selected if n not in state.results]
        if missing and not problems:
            problems.append(f"{len(missing)} selected tests have no result: "
                            + ", ".join(missing[:5]))
        extra = sorted(set(state.results) - set(state.selected))
        if extra:
            problems.append("the guest ran tests nobody selected: " + ", ".join(extra[:5]))
        if problems:
            out = (run.rundir / "guest-output.log")
            tail = ("\n".join(out.read_text(errors="replace").splitlines()[-40:])
                    if out.exists() else "(none)")
            raise GuestFailure(
                "VM tier: " + "; ".join(problems)
                + f"\n\n--- guest pytest output (last 40 lines of {out}) ---\n{tail}"
                + f"\n\n--- console (last {CONSOLE_TAIL} lines of {run.console_path}) ---\n"
                + run.console_tail())


class GuestReporter:
    """Inside the guest: one JSON line per test event into the shared directory."""

    def __init__(self, rundir: Path) -> None:
        self.rundir = rundir
        self.file = open(rundir / "results.jsonl", "a")  # noqa: SIM115 (closed at the end)

    def _write(self, rec: dict[str, Any]) -> None:
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self._write({"event": "start", "nodeid": nodeid})

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self._write({"event": "finish", "nodeid": nodeid})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._write({"event": "report", "nodeid": report.nodeid, "when": report.when,
                     "outcome": report.outcome, "text": _report_text(report),
                     "seconds": report.duration})

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        summary = tier_summary(KIND_LOG, os.uname().release)
        (self.rundir / "summary.json").write_text(json.dumps(summary))
        self.file.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``--write-kernels-doc``, write docs/kernels.md after a complete two-tier run."""
    if in_guest():
        return
    state = session.config.stash.get(_STATE, None)
    if state is None or not session.config.getoption("write_kernels_doc"):
        return
    why = incomplete_because(session, state, exitstatus)
    if why:
        state.doc_line = f"docs/kernels.md not written: {why}"
        return
    assert state.guest_summary is not None
    host_log = KindLog(attaches=KIND_LOG.attaches,
                       outcomes={n: o for n, o in KIND_LOG.outcomes.items()
                                 if n in _host_guest_nodeids(session)})
    data = {"host": tier_summary(host_log, os.uname().release), "vm": state.guest_summary}
    text = render_kernels_doc(data)
    doc = session.config.rootpath / "docs" / "kernels.md"
    if not doc.parent.is_dir():
        state.doc_line = f"docs/kernels.md not written: no directory {doc.parent}"
    elif doc.exists() and doc.read_text() == text:
        state.doc_line = "docs/kernels.md is up to date"
    else:
        doc.write_text(text)
        state.doc_line = "docs/kernels.md written"


def _whole_suite(config: pytest.Config) -> bool:
    """Whether the run collected everything: no file or test named, nothing ignored."""
    if config.getoption("ignore", None) or config.getoption("ignore_glob", None):
        return False
    if config.args_source is pytest.Config.ArgsSource.TESTPATHS:
        return True
    roots = {(config.rootpath / p).resolve() for p in config.getini("testpaths")}
    given = set()
    for arg in config.args:
        if "::" in arg:
            return False
        given.add((config.invocation_params.dir / arg).resolve())
    return given == (roots or {config.rootpath.resolve()})


def incomplete_because(session: pytest.Session, state: TierState, exitstatus: int) -> str:
    """Why this run may not write docs/kernels.md ('' when it was a complete two-tier run)."""
    config = session.config
    if not state.asked:
        return "the VM tier did not run (--vm)"
    if not _whole_suite(config):
        return ("the run named files or tests (only a run of the whole suite writes it, "
                "as `make test` does)")
    if not state.eligible:
        return "no guest tests were collected"
    if len(state.selected) != state.eligible or state.host_selected != state.host_eligible:
        return (f"{state.host_selected} of {state.host_eligible} host guest tests and "
                f"{len(state.selected)} of {state.eligible} VM twins were selected (-k, -m, "
                "--deselect ...)")
    if session.shouldstop or session.shouldfail or exitstatus == pytest.ExitCode.INTERRUPTED:
        return "the run stopped early"
    if state.run is None:
        return f"the VM tier did not run ({state.unavailable or 'never started'})"
    if state.run.timed_out or state.unfinished or state.exit is None \
            or state.guest_summary is None:
        return f"the guest did not finish (see {state.run.rundir})"
    if any(n not in state.results for n in state.selected):
        return "the guest did not report every test"
    if any(n not in KIND_LOG.outcomes for n in _host_guest_nodeids(session)):
        return "not every host guest test ran"
    return ""


def _host_guest_nodeids(session: pytest.Session) -> set[str]:
    return {i.nodeid for i in session.items if not isinstance(i, VmItem) and is_guest_test(i)}


# ------------------------------------------------------------------ command line

def main(argv: list[str] | None = None) -> int:
    """``vmtier.py run [--kernel PATH] [--timeout S] -- CMD...`` or ``vmtier.py guest DIR``."""
    parser = argparse.ArgumentParser(prog="vmtier.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run_p = sub.add_parser("run", help="boot the guest and run one command in it")
    run_p.add_argument("--kernel", default=os.environ.get(KERNEL_ENV))
    run_p.add_argument("--timeout", type=float, default=float(
        os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT))
    run_p.add_argument("--memory", default="4G")
    run_p.add_argument("--cpus", type=int, default=2)
    run_p.add_argument("command", nargs="+")
    guest_p = sub.add_parser("guest", help="(inside the guest) the entry point")
    guest_p.add_argument("rundir", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "guest":
        return guest_main(args.rundir)
    kernel = Path(args.kernel) if args.kernel else newest_boot_kernel()
    missing = missing_pieces(kernel)
    if missing:
        print("vm: cannot boot: missing " + "; ".join(missing), file=sys.stderr)
        return 2
    assert kernel is not None
    import tempfile

    rundir = Path(tempfile.mkdtemp(prefix="ebpfhooks-vm-"))
    (rundir / "request.json").write_text(json.dumps(
        {"argv": ["/bin/sh", "-c", shlex.join(args.command)], "env": {}, "cwd": os.getcwd()}))
    run = boot_guest(kernel, rundir, [sys.executable, str(Path(__file__).resolve()), "guest",
                                      str(rundir)],
                     timeout=args.timeout, memory=args.memory, cpus=args.cpus)
    out = rundir / "guest-output.log"
    if out.exists():
        sys.stdout.write(out.read_text(errors="replace"))
    boot = f"{run.boot_seconds:.1f} s" if run.boot_seconds is not None else "never"
    print(f"vm: {kernel.name}: boot {boot}, total {run.total_seconds:.1f} s; logs in {rundir}",
          file=sys.stderr)
    if run.timed_out:
        print(f"vm: killed after {args.timeout:.0f} s; console:\n{run.console_tail()}",
              file=sys.stderr)
        return 124
    try:
        return int(json.loads((rundir / "exit.json").read_text())["returncode"])
    except (OSError, ValueError):
        print(f"vm: the guest did not finish; console:\n{run.console_tail()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
