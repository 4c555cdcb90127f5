"""Every public entry point, run by an unprivileged user: a typed error or a true answer.

As user nobody (``setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all``,
in a child process; the test itself runs as root, as in CI), tracefs is not readable
(mode 0700) and nothing can be attached. Every name of ``ebpfhooks.__all__`` and every
subcommand of the CLI must then end in :class:`ebpfhooks.HookPermissionError` naming
the path or capability and the fix, or answer from what it can read with a note:
never a bare ``PermissionError``/``OSError``, never a wrong answer. Each call is made
twice in one process, so a cached path cannot skip the typed branch.

These tests are not VM twins: the rules they check are ebpfhooks', not the kernel's.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import not_possible, veth_pair

import ebpfhooks
from ebpfhooks.cli import COMMANDS
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import FeatureStatus

REPO = Path(__file__).parent.parent
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]

@pytest.fixture(scope="module")
def nobody_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the unprivileged child (nothing for it to write anywhere)."""
    if os.geteuid() != 0:
        not_possible("dropping to user nobody needs root")
    if shutil.which("setpriv") is None:
        not_possible("setpriv (util-linux) is needed to run as user nobody")
    root = tracefs_mount()
    if root is None:
        not_possible("tracefs is not mounted")
    assert root is not None
    if root.stat().st_mode & 0o005:
        not_possible(f"{root} is readable by everyone here: nothing to refuse")
    run = tmp_path_factory.mktemp("run")
    (run / "xdp").mkdir(mode=0o700)  # like /run/ebpfhooks/xdp: root's
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
            "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8",
            "EBPFHOOKS_RUN_DIR": str(run)}


def tracefs_mount() -> Path | None:
    """Where /proc/self/mounts says tracefs is (the test reads it itself)."""
    from ebpfhooks.kernel.mounts import parse_mounts

    found = [Path(m.mountpoint) for m in parse_mounts(Path("/proc/self/mounts").read_text())
             if m.fstype == "tracefs"]
    return Path("/sys/kernel/tracing") if Path("/sys/kernel/tracing") in found else (
        found[0] if found else None)


def as_nobody(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOBODY, *argv], capture_output=True, text=True, timeout=300,
                          cwd="/", env=env)


# --------------------------------------------------------------------------- library

#: case -> (Python expression run as nobody, "denied" or "answer")
CALLS: dict[str, tuple[str, str]] = {
    "from_spec": ("from_spec('tracepoint:sched:sched_switch')", "answer"),
    "Tracepoint.resolve": ("Tracepoint('sched', 'sched_switch').resolve()", "denied"),
    "Tracepoint.resolve(missing)": ("Tracepoint('sched', 'nosuch').resolve()", "denied"),
    "RawTracepoint.resolve": ("RawTracepoint('sched_switch').resolve()", "answer"),
    "Kprobe.resolve": ("Kprobe('do_sys_openat2').resolve()", "denied"),
    "Kretprobe.resolve": ("Kretprobe('do_sys_openat2').resolve()", "denied"),
    "Uprobe.resolve": ("Uprobe('/bin/bash', 'readline').resolve()", "answer"),
    "Uretprobe.resolve": ("Uretprobe('/bin/bash', 'readline').resolve()", "answer"),
    "Xdp.resolve": ("Xdp('lo').resolve()", "answer"),
    "Usdt.resolve": ("Usdt('/usr/bin/python3.11', 'gc__start', provider='python').resolve()",
                     "answer"),
    "usdt_args": ("usdt_args('usdt:/usr/bin/python3.11:python:gc__start')", "answer"),
    "RawSocket.resolve": ("RawSocket('lo').resolve()", "answer"),
    "check_supported": ("[h.check_supported() for h in HOOKS if h.kind not in "
                        "('kprobe', 'kretprobe')]", "answer"),
    **{f"{kind}.attach": (f"HOOKS[{i}].attach(Program(BPF, 'f'))", "denied")
       for i, kind in enumerate(("tracepoint", "raw_tracepoint", "kprobe", "kretprobe",
                                 "uprobe", "uretprobe", "xdp", "raw_socket", "usdt"))},
    **{f"{cls}.resolve": (f"{cls}('{target}').resolve()", "answer") for cls, target in (
        ("Fentry", "do_sys_openat2"), ("Fexit", "do_sys_openat2"),
        ("TpBtf", "sched_process_exec"), ("Lsm", "file_open"))},
    **{f"{spec.split(':')[0]}.attach": (f"from_spec('{spec}').attach(Program(BPF, 'f'))",
                                        "denied")
       for spec in ("fentry:do_sys_openat2", "fexit:do_sys_openat2",
                    "tp_btf:sched_process_exec", "lsm:file_open")},
    "info(tp_btf)": ("str(info('tp_btf:sched_process_exec'))", "answer"),
    "info(fentry)": ("str(info('fentry:do_sys_openat2'))", "answer"),
    "list_hooks(lsm)": ("list_hooks('lsm:file_*')", "answer"),
    "attach_all": ("attach_all(HOOKS[:2], BPF, 'f')", "denied"),
    "first_of.attach": ("first_of('kprobe:do_sys_openat2', "
                        "'tracepoint:syscalls:sys_enter_openat').attach(BPF, 'f')",
                        "denied"),
    "LinkGroup.attach_all": ("LinkGroup.attach_all(HOOKS[4:6], BPF, 'f')", "denied"),
    "HookSet.attach": ("expand('uprobe:/bin/bash:readline*').attach(BPF, 'f')",
                       "denied"),
    "HookSet.resolve": ("expand('uprobe:/bin/bash:readline*').resolve()", "denied"),
    "list_hooks(tracepoint)": ("list_hooks('tracepoint:sched:*')", "denied"),
    "search(tracepoint)": ("search('tracepoint:sched:*').to_dict()", "denied"),
    "list_hooks(word)": ("list_hooks('*execve*')", "denied"),
    "list_hooks(all)": ("list_hooks('*')", "denied"),
    "list_hooks(rawtracepoint)": ("list_hooks('rawtracepoint:sched_sw*')", "answer"),
    "list_hooks(uprobe)": ("list_hooks('uprobe:/bin/bash:readline*')", "answer"),
    "list_hooks(xdp)": ("list_hooks('xdp:lo')", "answer"),
    "list_hooks(usdt)": ("list_hooks('usdt:/usr/bin/python3.11:*')", "answer"),
    "expand(tracepoint)": ("expand('tracepoint:sched:sched_sw*')", "denied"),
    "expand(word)": ("expand('*sched_switch')", "denied"),
    "info(tracepoint)": ("info('tracepoint:sched:sched_switch')", "denied"),
    "info(kprobe)": ("info('kprobe:do_sys_openat2')", "denied"),
    "info(rawtracepoint)": ("str(info('rawtracepoint:sched_switch'))", "answer"),
    "info(uprobe)": ("str(info('uprobe:/bin/bash:readline'))", "answer"),
    "info(xdp)": ("str(info('xdp:lo'))", "answer"),
    "info(usdt)": ("str(info('usdt:/usr/bin/python3.11:python:gc__start'))", "answer"),
    "suggest": ("suggest('execve')", "denied"),
    "kallsyms": ("[(s.name, s.address_hidden, s.real_address) for s in "
                 "kallsyms('do_sys_openat2')]", "answer"),
    "features": ("{n: [f.status.value, f.reason, f.fix] for n, f in features().items()}",
                 "answer"),
    "doctor.report": ("__import__('ebpfhooks.doctor').doctor.report().to_dict()", "answer"),
    "cleanup.find": ("__import__('ebpfhooks.cleanup').cleanup.find()", "denied"),
    "cleanup.clean(dry_run)": ("__import__('ebpfhooks.cleanup').cleanup.clean(dry_run=True)",
                               "denied"),
    "cleanup.find(iface)": ("__import__('ebpfhooks.cleanup').cleanup.find(interfaces=['lo'])",
                            "denied"),
    # perf events: sysfs and /proc answer anyone; attaching needs CAP_PERFMON and CAP_BPF
    "Profile.resolve": ("str(Profile('hz', 99).resolve())", "answer"),
    "Interval.resolve": ("str(Interval('s', 1).resolve())", "answer"),
    "Software.resolve": ("str(Software('faults', pid=1).resolve())", "answer"),
    "info(hardware)": ("str(info('hardware:cycles'))", "answer"),
    "list_hooks(software)": ("list_hooks('software:*')", "answer"),
    "profile.attach": ("Profile('hz', 99).attach(Program(BPF, 'f'))", "denied"),
    "hardware.attach": ("Hardware('cycles').attach(Program(BPF, 'f'))", "denied"),
}

#: Every public name and the cases that exercise it (classes of values and errors are
#: pure: constructing them reads nothing).
COVERS: dict[str, list[str]] = {
    "from_spec": ["from_spec"], "Hook": ["from_spec", "check_supported"],
    "Tracepoint": ["Tracepoint.resolve", "tracepoint.attach"],
    "RawTracepoint": ["RawTracepoint.resolve", "raw_tracepoint.attach"],
    "Kprobe": ["Kprobe.resolve", "kprobe.attach"],
    "Kretprobe": ["Kretprobe.resolve", "kretprobe.attach"],
    "Uprobe": ["Uprobe.resolve", "uprobe.attach"],
    "Uretprobe": ["Uretprobe.resolve", "uretprobe.attach"],
    "Xdp": ["Xdp.resolve", "xdp.attach"], "RawSocket": ["RawSocket.resolve", "raw_socket.attach"],
    "Usdt": ["Usdt.resolve", "usdt.attach"], "usdt_args": ["usdt_args"],
    "Program": ["tracepoint.attach"], "Link": ["tracepoint.attach"],
    "LinkGroup": ["LinkGroup.attach_all"], "Resolution": ["Uprobe.resolve"],
    "attach_all": ["attach_all"], "first_of": ["first_of.attach"], "FirstOf": ["first_of.attach"],
    "list_hooks": [c for c in CALLS if c.startswith("list_hooks")],
    "search": ["search(tracepoint)"],
    "expand": ["expand(tracepoint)", "expand(word)", "HookSet.attach", "HookSet.resolve"],
    "info": [c for c in CALLS if c.startswith("info")], "suggest": ["suggest"],
    "kallsyms": ["kallsyms"], "features": ["features"],
    "Profile": ["Profile.resolve", "profile.attach"], "Interval": ["Interval.resolve"],
    "Software": ["Software.resolve", "list_hooks(software)"],
    "Hardware": ["info(hardware)", "hardware.attach"],
    **{cls: [f"{cls}.resolve", f"{word}.attach"] for cls, word in (
        ("Fentry", "fentry"), ("Fexit", "fexit"), ("TpBtf", "tp_btf"), ("Lsm", "lsm"))},
}
PURE = {"KINDS", "Address", "FileOffset", "Symbol", "XdpMode", "__version__",
        *(n for n in ebpfhooks.__all__ if n.endswith("Error"))}

CHILD = """
import json, sys, traceback
import ebpfhooks
from ebpfhooks import *
HOOKS = [from_spec(s) for s in (
    "tracepoint:sched:sched_switch", "rawtracepoint:sched_switch", "kprobe:do_sys_openat2",
    "kretprobe:do_sys_openat2", "uprobe:/bin/bash:readline", "uretprobe:/bin/bash:readline",
    "xdp:lo", "raw_socket:lo", "usdt:/usr/bin/python3.11:python:gc__start")]
# a stand-in with what attach() asks of a compiled bcc module; never loaded (denied first)
BPF = type("BPF", (), {"load_func": print, "funcs": {}})()
out = {}
for name, src in json.loads(sys.argv[1]).items():
    for attempt in (1, 2):  # the second call takes the cached paths
        try:
            value = eval(src)
            got = ["answer", json.loads(json.dumps(value, default=repr))]
        except ebpfhooks.HookPermissionError as err:
            got = ["denied", str(err), err.capability]
        except BaseException as err:
            got = [type(err).__name__, str(err), traceback.format_exc()]
        out[f"{name}#{attempt}"] = got
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(nobody_env: dict[str, str]) -> dict[str, list[Any]]:
    """Run every call of CALLS (twice) in one unprivileged interpreter."""
    exprs = {name: src for name, (src, _) in CALLS.items()}
    proc = as_nobody([sys.executable, "-c", CHILD, json.dumps(exprs)], nobody_env)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, list[Any]] = json.loads(proc.stdout)
    return out


def _reads_the_system(name: str) -> bool:
    """Public functions and hook kinds read the system; data and error classes do not."""
    obj = getattr(ebpfhooks, name)
    return inspect.isfunction(obj) or (inspect.isclass(obj) and issubclass(obj, ebpfhooks.Hook))


def test_every_public_name_is_called_as_nobody() -> None:
    needed = {n for n in ebpfhooks.__all__ if n not in PURE and _reads_the_system(n)}
    assert needed - set(COVERS) == set(), "a public name has no case run as nobody"
    assert set(COVERS) <= set(ebpfhooks.__all__)
    assert {c for cases in COVERS.values() for c in cases} <= set(CALLS)


@pytest.mark.live
@pytest.mark.parametrize("case", sorted(CALLS))
def test_as_nobody(case: str, results: dict[str, list[Any]]) -> None:
    expected = CALLS[case][1]
    for attempt in (1, 2):
        got = results[f"{case}#{attempt}"]
        assert got[0] == expected, f"{case} (call {attempt}): {got}"
        if expected == "denied":
            message, capability = got[1], got[2]
            assert capability.startswith("CAP_"), got
            assert "root" in message and (capability in message or "CAP_" in message), got
            assert "[Errno" not in message, got
    assert results[f"{case}#1"] == results[f"{case}#2"], "a cached path answers differently"


@pytest.mark.live
def test_error_tracefs_unreadable_names_the_directory_and_the_fix(
        results: dict[str, list[Any]]) -> None:
    _, message, capability = results["Tracepoint.resolve#1"]
    assert message.startswith(f"cannot read {tracefs_mount()}: tracefs is mounted there "
                              "but readable by root only (mode 0700, owner uid 0; this "
                              "process is uid 65534)")
    assert "rerun as root" in message and capability == "CAP_DAC_READ_SEARCH"
    # the capability named really is enough to read it
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
                           "head", "-c1", f"{tracefs_mount()}/available_events"],
                          capture_output=True)
    assert proc.returncode == 0 and len(proc.stdout) == 1, proc.stderr


@pytest.mark.live
def test_error_attach_names_the_capabilities(results: dict[str, list[Any]]) -> None:
    message = results["xdp.attach#1"][1]
    assert message.startswith("attaching xdp:lo needs CAP_SYS_ADMIN or CAP_BPF+CAP_NET_ADMIN")
    message = results["uprobe.attach#1"][1]
    assert "needs CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON" in message


@pytest.mark.live
def test_answers_carry_their_note(results: dict[str, list[Any]]) -> None:
    raw = results["info(rawtracepoint)#1"][1]
    assert "same tracepoint with parsed arguments: unknown (cannot read" in raw
    assert "attachable here: yes, by root (CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON): not by " \
           "this process" in raw
    assert "not by this process" in results["info(uprobe)#1"][1]
    assert all(hidden and real is None for _, hidden, real in results["kallsyms#1"][1])


@pytest.mark.live
def test_features_as_nobody_are_true(results: dict[str, list[Any]]) -> None:
    facts = results["features#1"][1]
    status, reason, fix = facts["tracefs"]
    assert status == "no" and "readable by root only" in reason and "not mounted" not in reason
    assert "CAP_DAC_READ_SEARCH" in fix
    assert "not mounted" not in facts["kprobes"][1]
    assert "no tracefs" not in facts["kprobes"][1]
    kptr = Path("/proc/sys/kernel/kptr_restrict").read_text().strip()
    status, reason, fix = facts["kptr_restrict"]
    assert status == "no" and f"kernel.kptr_restrict={kptr}" in reason
    assert f"kptr_restrict={kptr}" not in fix, "proposes the value already set"
    leftovers = results["doctor.report#1"][1]["checks"]["no_leftovers"]
    assert leftovers["status"] == "unknown" and "[Errno" not in leftovers["reason"]
    assert leftovers["fix"] == "run as root: sudo ebpfhooks doctor"


def test_kptr_restrict_fix_follows_the_setting(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    hidden = tmp_path / "kallsyms"
    hidden.write_text("0000000000000000 T _text\n")
    monkeypatch.setattr(features.system, "KALLSYMS", hidden)

    def fix_at(kptr: int, paranoid: int) -> str:
        (tmp_path / "kptr").write_text(f"{kptr}\n")
        (tmp_path / "paranoid").write_text(f"{paranoid}\n")
        monkeypatch.setattr(features.system, "KPTR_RESTRICT", tmp_path / "kptr")
        monkeypatch.setattr(features.system, "PERF_EVENT_PARANOID", tmp_path / "paranoid")
        f = features.kptr_restrict()
        assert f.status is FeatureStatus.NO and f"kernel.kptr_restrict={kptr}" in f.reason
        return f.fix or ""

    assert fix_at(0, 2) == ("run as root (CAP_SYSLOG); kernel.kptr_restrict is already 0: "
                            "addresses are hidden from this process because it lacks "
                            "CAP_SYSLOG and kernel.perf_event_paranoid=2 is above 1")
    assert fix_at(0, 1) == "run as root (CAP_SYSLOG)"
    assert fix_at(1, 2).startswith("run as root (CAP_SYSLOG): at kernel.kptr_restrict=1")
    assert fix_at(2, 2).startswith("sysctl -w kernel.kptr_restrict=1 and run as root")


# --------------------------------------------------------------------------- CLI

#: argv -> (exit status, text the output must hold)
CLI: dict[str, tuple[list[str], int, str]] = {
    "list tracepoints": (["list", "tracepoint:sched:*"], 1, "readable by root only"),
    "list word": (["list", "*execve*"], 1, "note: tracepoint: not listed: cannot read"),
    "list rawtracepoints": (["list", "rawtracepoint:sched_sw*"], 0,
                            "rawtracepoint:sched_switch"),
    "info tracepoint": (["info", "tracepoint:sched:sched_switch"], 1, "readable by root only"),
    "info rawtracepoint": (["info", "rawtracepoint:sched_switch"], 0, "not by this process"),
    "suggest": (["suggest", "execve"], 1, "readable by root only"),
    "kallsyms": (["kallsyms", "do_sys_openat2"], 0, "addresses are hidden from this process"),
    "doctor": (["doctor"], 0, "readable by root only"),
    "doctor --fix": (["doctor", "--fix"], 0, "nothing to fix"),
    "cleanup --dry-run": (["cleanup", "--dry-run"], 1, "readable by root only"),
    "cleanup": (["cleanup"], 1, "readable by root only"),
    "cleanup --iface": (["cleanup", "--iface", "lo", "--dry-run"], 1,
                        "ownership records): permission denied"),
    "trace": (["trace", "tracepoint:sched:sched_switch", "--duration", "1"], 1,
              "needs CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON"),
    "bench": (["bench", "--kinds", "tracepoint", "--rounds", "1"], 1, "run it as root"),
}


def test_every_command_is_run_as_nobody() -> None:
    assert {argv[0] for argv, _, _ in CLI.values()} == set(COMMANDS)


@pytest.mark.live
@pytest.mark.parametrize("case", sorted(CLI))
def test_cli_as_nobody(case: str, nobody_env: dict[str, str]) -> None:
    argv, status, text = CLI[case]
    proc = as_nobody([sys.executable, "-m", "ebpfhooks", *argv], nobody_env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == status, out
    assert text in out, out
    assert "Traceback" not in out and "[Errno" not in out, out
    if case == "doctor":
        assert "tracefs is not mounted" not in out and "no tracefs" not in out, out
        kptr = Path("/proc/sys/kernel/kptr_restrict").read_text().strip()
        assert f"sysctl -w kernel.kptr_restrict={kptr}" not in out, out


def test_cli_bare_permission_error_still_says_the_fix() -> None:
    from ebpfhooks.cli import _error_text

    err = PermissionError(13, "Permission denied", "/sys/kernel/tracing/x")
    text = _error_text(err)
    assert text.startswith("ebpfhooks: error: /sys/kernel/tracing/x: Permission denied "
                           "(this process is uid ")
    assert text.endswith("rerun as root (e.g. with sudo)")


# --------------------------------------------------------------------------- XDP holders


@pytest.fixture
def xdp_on_veth(live: None) -> Iterator[str]:
    """A veth of this run with an XDP program held by this (root) process's bpf_link."""
    from bcc import BPF

    with veth_pair("ehn") as (a, _):
        bpf = BPF(text="int ehn_xdp(struct xdp_md *ctx) { return XDP_PASS; }")
        try:
            with ebpfhooks.Hook.from_spec(f"xdp:{a}:skb").attach(bpf, "ehn_xdp"):
                yield a
        finally:
            bpf.cleanup()


@pytest.mark.live
def test_cleanup_as_nobody_cannot_see_holders(xdp_on_veth: str,
                                              nobody_env: dict[str, str]) -> None:
    """Without root the holders of an XDP program cannot be seen: refuse, do not guess."""
    code = textwrap.dedent("""
        from ebpfhooks import cleanup, HookPermissionError
        try:
            cleanup.xdp_programs()
        except HookPermissionError as err:
            print(err.capability, err)
        else:
            print("answered")
    """)
    env = {**nobody_env, "EBPFHOOKS_RUN_DIR": "/nonexistent"}  # no records to read
    proc = as_nobody([sys.executable, "-c", code], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CAP_SYS_PTRACE cannot tell who holds the XDP programs on "), \
        proc.stdout
    assert xdp_on_veth in proc.stdout and "rerun as root" in proc.stdout
