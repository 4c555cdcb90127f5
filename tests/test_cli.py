"""The `ebpfhooks` command: listings with --json, one/two-line errors, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ebpfhooks import cli

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ebpfhooks", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_commands_are_a_table() -> None:
    assert {"list", "info", "suggest", "kallsyms", "doctor", "trace", "bench"} <= set(cli.COMMANDS)
    assert all(c.run.__doc__ for c in cli.COMMANDS.values())


def test_usage_errors_exit_2() -> None:
    proc = _run()
    assert proc.returncode == 2 and "COMMAND" in proc.stderr
    proc = _run("trace", "tracepoint:sched:sched_switch", "--pid", "x")
    assert proc.returncode == 2 and "is not a pid" in proc.stderr
    proc = _run("trace", "tracepoint:sched:sched_switch", "--duration", "-1")
    assert proc.returncode == 2 and "expected seconds > 0" in proc.stderr


def test_error_spec_is_short_and_has_no_traceback() -> None:
    proc = _run("list", "kprob:*open*")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        "ebpfhooks: error: invalid hook spec: unknown hook kind 'kprob'")
    assert "did you mean 'kprobe'?" in proc.stderr and "Traceback" not in proc.stderr
    debug = _run("--debug", "list", "kprob:*open*")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_kallsyms_help_explains_type_letters() -> None:
    proc = _run("kallsyms", "--help")
    assert proc.returncode == 0 and "T/t text (code)" in proc.stdout


@pytest.mark.live
def test_list_text_and_json(live: None) -> None:
    proc = _run("list", "tracepoint:sched:sched_sw*")
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["tracepoint:sched:sched_swap_numa",
                                        "tracepoint:sched:sched_switch"]
    data = json.loads(_run("list", "tracepoint:sched:sched_sw*", "--json").stdout)
    assert data["hooks"] == proc.stdout.split()
    assert "available_events" in data["sources"]["tracepoint"]


@pytest.mark.live
def test_list_bare_word_notes_go_to_stderr(live: None) -> None:
    proc = _run("list", "*execve*")
    assert proc.returncode == 0
    assert "tracepoint:syscalls:sys_enter_execve" in proc.stdout.split()
    assert all(line.count(":") >= 1 for line in proc.stdout.splitlines())
    assert "ebpfhooks: note:" not in proc.stdout


#: Modules `ebpfhooks list` does without (bench/bench_discover.py: it must start faster
#: than `bpftrace -l`): pathlib pulls in urllib and ipaddress, difflib is for did-you-mean
#: hints, argparse is for every other command line, the BTF type parser for `info`.
LIST_NEVER_IMPORTS = ("pathlib", "urllib", "ipaddress", "difflib", "argparse", "attrs",
                      "typing", "bcc", "ebpfhooks.kernel.btf", "ebpfhooks.discover.choose",
                      "ebpfhooks.discover.describe")


@pytest.mark.live
@pytest.mark.parametrize("pattern", ["tracepoint:syscalls:*", "*execve*"])
def test_list_imports_only_what_it_needs(live: None, pattern: str) -> None:
    code = ("import sys; from ebpfhooks.cli import main; status = main(['list', sys.argv[1]]); "
            "print(status, *sorted(sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, pattern], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) > 1, proc.stderr
    status, *modules = lines[-1].split()
    assert status == "0"
    assert [m for m in modules if any(m == name or m.startswith(name + ".")
                                      for name in LIST_NEVER_IMPORTS)] == []


@pytest.mark.live
def test_info_suggest_kallsyms_json(live: None) -> None:
    info = json.loads(_run("info", "tracepoint:sched:sched_switch", "--json").stdout)
    assert info["fields"][0]["declaration"] == "char prev_comm[16]"
    text = _run("info", "tracepoint:sched:sched_switch").stdout
    assert text.splitlines()[0].startswith("tracepoint:sched:sched_switch  (stable")
    sug = json.loads(_run("suggest", "execve", "--json").stdout)
    assert sug["recommended"] == "tracepoint:syscalls:sys_enter_execve"
    out = _run("suggest", "execve").stdout
    assert "recommended: tracepoint:syscalls:sys_enter_execve" in out
    ks = json.loads(_run("kallsyms", "do_sys_openat2", "--json").stdout)
    assert ks["symbols"][0]["name"] == "do_sys_openat2"
    assert ks["symbols"][0]["type_description"].endswith("text (code)")
    if not ks["addresses_hidden"]:
        assert isinstance(ks["symbols"][0]["address"], int) and ks["symbols"][0]["address"]
    line = _run("kallsyms", "do_sys_openat2").stdout.splitlines()[0]
    assert line.endswith(" do_sys_openat2  (local text (code))") or "global" in line


@pytest.mark.live
def test_error_info_missing_symbol_is_two_lines(live: None) -> None:
    proc = _run("info", "kprobe:vfs_reed")
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) <= 2
    assert "closest: vfs_read" in proc.stderr


def test_console_script_is_declared() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'ebpfhooks = "ebpfhooks.cli:main"' in text


@pytest.mark.live
def test_error_suggest_finds_nothing_exits_1(live: None) -> None:
    out = _run("suggest", "ehknosuchthing")
    assert out.returncode == 1
    assert out.stdout == ""
    first = out.stderr.splitlines()[0]
    assert first == ("ebpfhooks: error: nothing on this kernel observes 'ehknosuchthing': "
                     "no tracepoint, raw tracepoint or kernel function has it in its name")
    assert "ebpfhooks list --all '*ehknosuchthing*'" in out.stderr
    assert "((" not in out.stderr and "))" not in out.stderr
    assert _run("suggest", "--json", "ehknosuchthing").returncode == 1


@pytest.mark.live
def test_suggest_return_names_the_exit_tracepoint(live: None) -> None:
    out = _run("suggest", "--return", "--chain", "openat")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("tracepoint:syscalls:sys_exit_openat")


@pytest.mark.live
def test_list_kind_wildcard_does_not_take_a_category_for_a_binary(live: None) -> None:
    out = _run("list", "*:sched:sched_switch")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "tracepoint:sched:sched_switch\n"
    assert "binary" not in out.stderr and "uprobe" not in out.stderr
    both = _run("list", "*:/bin/bash:readline")  # a path still reaches the user-space kinds
    assert both.stdout.split() == ["uprobe:/bin/bash:readline", "uretprobe:/bin/bash:readline"]
