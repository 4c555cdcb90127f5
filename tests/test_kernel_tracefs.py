"""Tests of ebpfhooks.kernel.tracefs: pure parsers on fixtures, then the live tracefs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import not_possible

from ebpfhooks.errors import (
    HookPermissionError,
    SpecError,
    TracefsNotMountedError,
    TracepointNotFoundError,
)
from ebpfhooks.kernel import mounts as mounts_mod
from ebpfhooks.kernel import tracefs
from ebpfhooks.kernel.tracefs import (
    TracefsFormatError,
    TracepointField,
    parse_available_events,
    parse_filter_functions,
    parse_format,
    parse_kprobe_blacklist,
    parse_mounts,
)

FIXTURES = Path(__file__).parent / "fixtures" / "kernel"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def live_root() -> Path:
    tracefs.clear_cache()
    try:
        return tracefs.tracefs_root()
    except TracefsNotMountedError as err:
        not_possible(f"live tracefs tests need tracefs mounted: {err}")
        raise


@pytest.fixture(autouse=True)
def _fresh_cache():
    tracefs.clear_cache()
    yield
    tracefs.clear_cache()


# --------------------------------------------------------------------------- mounts


def test_parse_mounts_unescapes_octal():
    text = (
        "sysfs /sys sysfs rw 0 0\n"
        "tracefs /sys/kernel/tracing tracefs rw,relatime 0 0\n"
        "tracefs /mnt/my\\040traces tracefs rw 0 0\n"
        "short line\n"
    )
    mounts = parse_mounts(text)
    assert [m.mountpoint for m in mounts] == ["/sys", "/sys/kernel/tracing", "/mnt/my traces"]
    assert mounts[1].fstype == "tracefs"


def _fake_mounts(monkeypatch, tmp_path: Path, lines: list[str]) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("".join(line + "\n" for line in lines))
    monkeypatch.setattr(mounts_mod, "MOUNTS_FILE", mounts)


def test_tracefs_root_from_fake_mount_table(monkeypatch, tmp_path):
    root = tmp_path / "tr"
    root.mkdir()
    (root / "available_events").write_text("sched:sched_switch\n")
    _fake_mounts(monkeypatch, tmp_path, [f"tracefs {root} tracefs rw 0 0"])
    assert tracefs.tracefs_root() == root
    assert mounts_mod.tracefs_dir() == str(root)  # what listings use: no pathlib
    assert mounts_mod.mounted_tracefs() == root


def test_mount_table_file_is_a_path() -> None:
    assert mounts_mod.MOUNTS_FILE == tracefs.MOUNTS_FILE == Path("/proc/self/mounts")


def test_tracefs_root_falls_back_to_debugfs(monkeypatch, tmp_path):
    debug = tmp_path / "debug"
    (debug / "tracing").mkdir(parents=True)
    (debug / "tracing" / "available_events").write_text("")
    _fake_mounts(monkeypatch, tmp_path, [f"debugfs {debug} debugfs rw 0 0"])
    assert tracefs.tracefs_root() == debug / "tracing"


def test_tracefs_root_rechecks_when_cached_path_vanishes(monkeypatch, tmp_path):
    first = tmp_path / "a"
    first.mkdir()
    (first / "available_events").write_text("")
    _fake_mounts(monkeypatch, tmp_path, [f"tracefs {first} tracefs rw 0 0"])
    assert tracefs.tracefs_root() == first
    (first / "available_events").unlink()  # "unmounted"
    second = tmp_path / "b"
    second.mkdir()
    (second / "available_events").write_text("")
    _fake_mounts(monkeypatch, tmp_path, [f"tracefs {second} tracefs rw 0 0"])
    assert tracefs.tracefs_root() == second


def test_error_tracefs_not_mounted_gives_commands(monkeypatch, tmp_path):
    _fake_mounts(monkeypatch, tmp_path, ["proc /proc proc rw 0 0"])
    with pytest.raises(TracefsNotMountedError) as info:
        tracefs.tracefs_root()
    msg = str(info.value)
    assert "tracefs is not mounted" in msg
    assert "mount -t tracefs tracefs /sys/kernel/tracing" in msg
    assert "mount -t debugfs debugfs /sys/kernel/debug" in msg
    assert "ebpfhooks doctor --fix" in msg
    assert info.value.missing == "tracefs"


class _Run:
    def __init__(self, returncode: int = 0, stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.returncode = returncode
        self.stderr = stderr

    def __call__(self, argv, **kwargs):
        assert "shell" not in kwargs
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(argv, self.returncode, "", self.stderr)


def test_mount_tracefs_runs_fixed_argv(monkeypatch, tmp_path):
    _fake_mounts(monkeypatch, tmp_path, ["proc /proc proc rw 0 0"])
    run = _Run()
    monkeypatch.setattr(subprocess, "run", run)
    assert tracefs.mount_tracefs() == [
        "mounted tracefs at /sys/kernel/tracing",
        "mounted debugfs at /sys/kernel/debug",
    ]
    assert run.calls == [
        ["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"],
        ["mount", "-t", "debugfs", "debugfs", "/sys/kernel/debug"],
    ]


def test_mount_tracefs_skips_what_is_mounted(monkeypatch, tmp_path):
    _fake_mounts(monkeypatch, tmp_path, ["tracefs /sys/kernel/tracing tracefs rw 0 0",
                                         "debugfs /sys/kernel/debug debugfs rw 0 0"])
    run = _Run()
    monkeypatch.setattr(subprocess, "run", run)
    assert tracefs.mount_tracefs() == []
    assert run.calls == []


def test_error_mount_tracefs_permission(monkeypatch, tmp_path):
    _fake_mounts(monkeypatch, tmp_path, [])
    monkeypatch.setattr(subprocess, "run",
                        _Run(32, "mount: /sys/kernel/tracing: must be superuser to use mount."))
    with pytest.raises(HookPermissionError) as info:
        tracefs.mount_tracefs()
    assert info.value.capability == "CAP_SYS_ADMIN"
    assert str(info.value).startswith(
        "`mount -t tracefs tracefs /sys/kernel/tracing` was refused (mount: /sys/kernel/tracing:"
        " must be superuser to use mount.): mounting needs root (CAP_SYS_ADMIN)"
    )


def test_error_mount_tracefs_other_failure(monkeypatch, tmp_path):
    _fake_mounts(monkeypatch, tmp_path, [])
    monkeypatch.setattr(subprocess, "run",
                        _Run(32, "mount: /sys/kernel/tracing: unknown filesystem type 'tracefs'."))
    with pytest.raises(TracefsNotMountedError, match="unknown filesystem type"):
        tracefs.mount_tracefs()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to unshare a mount namespace")
def test_mount_tracefs_live_in_private_mount_namespace(live_root):
    """Unmount everything in a throw-away mount namespace, then mount it back."""
    if shutil.which("unshare") is None:
        not_possible("unshare(1) is needed for this test")
    script = (
        "import subprocess\n"
        "from ebpfhooks.kernel import tracefs\n"
        "for m in ('/sys/kernel/debug/tracing', '/sys/kernel/debug', '/sys/kernel/tracing'):\n"
        "    subprocess.run(['umount', m], capture_output=True)\n"
        "try:\n"
        "    tracefs.tracefs_root(); print('still-mounted')\n"
        "except tracefs.TracefsNotMountedError:\n"
        "    print('unmounted')\n"
        "print(tracefs.mount_tracefs())\n"
        "print(tracefs.tracefs_root())\n"
    )
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", script],
        capture_output=True, text=True, cwd=REPO, timeout=30, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "unmounted",
        "['mounted tracefs at /sys/kernel/tracing', 'mounted debugfs at /sys/kernel/debug']",
        "/sys/kernel/tracing",
    ]
    # our own namespace is untouched
    assert (live_root / "available_events").exists()


# --------------------------------------------------------------------------- events


def test_parse_available_events_sorted():
    assert parse_available_events("sched:b\n\nirq:a\nsched:a\n") == [
        ("irq", "a"), ("sched", "a"), ("sched", "b"),
    ]


def test_error_parse_available_events_bad_line():
    with pytest.raises(TracefsFormatError) as info:
        parse_available_events("sched:a\nnocolon\n")
    assert str(info.value) == (
        "available_events, line 2: expected 'category:event', got 'nocolon'"
    )
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- format


def test_parse_format_sched_switch_fixture():
    fmt = parse_format((FIXTURES / "sched_switch.format").read_text())
    assert fmt.name == "sched_switch"
    assert fmt.id == 372
    assert [f.name for f in fmt.common_fields] == [
        "common_type", "common_flags", "common_preempt_count", "common_pid",
    ]
    assert fmt.fields[0] == TracepointField("char[16]", "prev_comm", 8, 16, False)
    assert fmt.fields[0].declaration == "char prev_comm[16]"
    assert fmt.fields[0].array_length == 16
    assert fmt.field("prev_pid") == TracepointField("pid_t", "prev_pid", 24, 4, True)
    assert fmt.field("common_pid").signed is True
    assert [f.declaration for f in fmt.fields] == [
        "char prev_comm[16]", "pid_t prev_pid", "int prev_prio", "long prev_state",
        "char next_comm[16]", "pid_t next_pid", "int next_prio",
    ]
    assert fmt.print_fmt.startswith('"prev_comm=%s prev_pid=%d')
    assert fmt.print_fmt.endswith("REC->next_prio")


def test_parse_format_pointer_and_data_loc():
    openat = parse_format((FIXTURES / "sys_enter_openat.format").read_text())
    filename = openat.field("filename")
    assert (filename.type, filename.offset, filename.size) == ("const char *", 24, 8)
    assert filename.declaration == "const char * filename"
    exec_ = parse_format((FIXTURES / "sched_process_exec.format").read_text())
    loc = exec_.field("filename")
    assert loc.type == "__data_loc char[]"
    assert loc.is_data_loc and not loc.is_array and loc.array_length is None
    assert loc.declaration == loc.bpftrace_type == "__data_loc char[] filename"


@pytest.mark.parametrize(
    ("decl", "type_", "name", "declaration"),
    [
        ("unsigned char addr[6]", "unsigned char[6]", "addr", "unsigned char addr[6]"),
        ("const void* ip", "const void*", "ip", "const void* ip"),
        ("const char *const * argv", "const char *const *", "argv", "const char *const * argv"),
        ("__data_loc u64[] addrs", "__data_loc u64[]", "addrs", "__data_loc u64[] addrs"),
        ("__rel_loc char[] s", "__rel_loc char[]", "s", "__rel_loc char[] s"),
        ("int grid[2][3]", "int[2][3]", "grid", "int grid[2][3]"),
    ],
)
def test_parse_format_declarations(decl, type_, name, declaration):
    text = f"name: e\nID: 1\nformat:\n\tfield:{decl};\toffset:8;\tsize:8;\tsigned:0;\n"
    field = parse_format(text).fields[0]
    assert (field.type, field.name, field.declaration) == (type_, name, declaration)


def test_parse_format_multiline_print_fmt_and_missing_signed():
    text = (
        "name: e\nID: 7\nformat:\n"
        "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\n\n"
        "\tfield:int x;\toffset:8;\tsize:4;\n\n"
        'print fmt: "a\nb", REC->x\n'
    )
    fmt = parse_format(text)
    assert fmt.print_fmt == '"a\nb", REC->x'
    assert fmt.fields[0].signed is False
    assert [f.name for f in fmt.common_fields] == ["common_type"]


def test_error_parse_format_bad_id():
    with pytest.raises(TracefsFormatError) as info:
        parse_format("name: e\nID: x1\n")
    assert str(info.value) == (
        "tracepoint format, line 2: expected a decimal event ID after 'ID:', got 'x1'"
    )


def test_error_parse_format_bad_field():
    with pytest.raises(TracefsFormatError) as info:
        parse_format("name: e\nID: 1\nformat:\n\tfield:int x;\toffset:a;\n")
    assert str(info.value) == (
        "tracepoint format, line 4: expected 'field:DECL; offset:N; size:N; signed:N;', "
        "got 'field:int x;\\toffset:a;'"
    )


def test_error_parse_format_missing_header():
    with pytest.raises(TracefsFormatError, match=r"missing the 'ID:' header line"):
        parse_format("name: e\nformat:\n")
    with pytest.raises(TracefsFormatError, match=r"expected a C declaration"):
        parse_format("name: e\nID: 1\nformat:\n\tfield:[4];\toffset:8;\tsize:4;\tsigned:0;\n")


def test_error_field_lookup_lists_fields():
    fmt = parse_format((FIXTURES / "sched_process_exec.format").read_text())
    with pytest.raises(KeyError, match="its fields: filename, pid, old_pid"):
        fmt.field("nope")


# --------------------------------------------------------------------------- kprobe lists


def test_parse_kprobe_blacklist_strips_module():
    text = (
        "0xffffffff81000000-0xffffffff81000010\tdo_int3\n"
        "0xffffffffa0000000-0xffffffffa0000040\tnf_hook\t[nf_tables]\n\n"
    )
    assert parse_kprobe_blacklist(text) == frozenset({"do_int3", "nf_hook"})


def test_parse_filter_functions_strips_module():
    assert parse_filter_functions("vfs_read\nnf_hook_slow [nf_tables]\n\n") == frozenset(
        {"vfs_read", "nf_hook_slow"}
    )


def test_kprobe_blacklist_absent_is_empty(monkeypatch, tmp_path):
    debug = tmp_path / "debug"
    debug.mkdir()
    _fake_mounts(monkeypatch, tmp_path, [f"debugfs {debug} debugfs rw 0 0"])
    assert tracefs.kprobe_blacklist() == frozenset()
    (debug / "kprobes").mkdir()
    (debug / "kprobes" / "blacklist").write_text("0x1-0x2\tdo_int3\n")
    assert tracefs.kprobe_blacklist() == frozenset()  # cached
    assert tracefs.kprobe_blacklist(reload=True) == frozenset({"do_int3"})


# --------------------------------------------------------------------------- live


def test_live_list_tracepoints(live_root):
    tps = tracefs.list_tracepoints()
    lines = [x for x in (live_root / "available_events").read_text().splitlines() if x]
    assert len(tps) == len(lines) > 100
    assert tps == sorted(tps)
    assert ("sched", "sched_switch") in tps
    assert tracefs.list_tracepoints() == tps


def test_live_tracepoint_exists(live_root):
    assert tracefs.tracepoint_exists("sched", "sched_switch")
    assert not tracefs.tracepoint_exists("sched", "sched_switchh")
    assert not tracefs.tracepoint_exists("nosuchcat", "x")


@pytest.mark.parametrize(("cat", "ev"), [("..", "x"), ("sched", "../../x"), ("", "x"),
                                         ("sched", "a\0b"), ("sched", ".")])
def test_error_tracepoint_exists_refuses_path_tricks(live_root, cat, ev):
    with pytest.raises(SpecError, match="is not a valid tracefs name"):
        tracefs.tracepoint_exists(cat, ev)


def test_live_read_format(live_root):
    fmt = tracefs.read_format("sched", "sched_switch")
    assert fmt.name == "sched_switch"
    assert fmt.id == int((live_root / "events/sched/sched_switch/id").read_text())
    assert fmt.field("prev_comm").type == "char[16]"
    assert tracefs.read_format("sched", "sched_switch") is fmt  # cached
    assert tracefs.read_format("sched", "sched_switch", reload=True) == fmt


def test_error_read_format_missing_suggests_same_category_first(live_root):
    with pytest.raises(TracepointNotFoundError) as info:
        tracefs.read_format("sched", "sched_swich")
    err = info.value
    assert err.name == "sched:sched_swich"
    assert err.candidates[0] == "sched:sched_switch"
    assert all(c.startswith("sched:") for c in err.candidates[:2])
    assert str(err).startswith(
        f"tracepoint 'sched:sched_swich' not found in {live_root}/available_events; "
        "closest: sched:sched_switch"
    )
    assert f"grep '^sched:' {live_root}/available_events" in str(err)


def test_error_read_format_wrong_category(live_root):
    with pytest.raises(TracepointNotFoundError) as info:
        tracefs.read_format("syscall", "sys_enter_openat")
    assert "syscalls:sys_enter_openat" in info.value.candidates


def test_live_every_format_matches_bpftrace(live_root):
    """Parse every tracepoint format; field declarations must equal `bpftrace -lv` output."""
    if shutil.which("bpftrace") is None:
        not_possible("bpftrace is needed as the oracle")
    proc = subprocess.run(["bpftrace", "-lv", "tracepoint:*"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    expected: dict[tuple[str, str], list[str]] = {}
    current: tuple[str, str] | None = None
    for line in proc.stdout.splitlines():
        if line.startswith("tracepoint:"):
            _, cat, ev = line.split(":", 2)
            current = (cat, ev)
            expected[current] = []
        elif current is not None and line.startswith("    "):
            expected[current].append(line[4:])
    tps = tracefs.list_tracepoints()
    assert set(expected) == set(tps)
    mismatches = []
    for cat, ev in tps:
        fmt = tracefs.read_format(cat, ev)
        got = [f.declaration for f in fmt.fields]
        if got != expected[(cat, ev)]:
            mismatches.append((cat, ev, got, expected[(cat, ev)]))
        assert all(f.name.startswith("common_") for f in fmt.common_fields)
    assert mismatches == []


def test_live_kprobe_lists(live_root):
    blacklist = tracefs.kprobe_blacklist()
    assert isinstance(blacklist, frozenset)
    if not Path("/sys/bus/event_source/devices/kprobe").exists():
        assert blacklist == frozenset()  # no kprobes: no blacklist file
    funcs = tracefs.available_filter_functions()
    assert funcs is None or "vfs_read" in funcs
    try:
        (live_root / "available_filter_functions").read_text()
        readable = True
    except OSError:
        readable = False
    assert (funcs is not None) == readable
