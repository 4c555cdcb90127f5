"""Live uprobes on every kind of target: symbol+offset, library names, pid filters.

The resolution ebpfhooks reports is what the kernel probes, so these tests count
exact hits on gcc-built targets and on libc itself.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Counters

from ebpfhooks import Hook

pytestmark = pytest.mark.live

N = 17


def _instruction_offsets(binary: Path, symbol: str) -> list[int]:
    """Offsets of the instructions of ``symbol`` from its start, as objdump disassembles them."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={symbol}",
                          str(binary)], capture_output=True, text=True, check=True).stdout
    addrs = [int(m.group(1), 16) for m in re.finditer(r"^\s*([0-9a-f]+):\s", out, re.M)]
    return [a - addrs[0] for a in addrs]


def _start_waiting(prog: Path, n: int, mode: str = "") -> subprocess.Popen[str]:
    args = [str(prog), str(n), "wait"] + ([mode] if mode else [])
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"  # loaded, libraries mapped, waiting
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    proc.communicate("go\n", timeout=30)
    assert proc.returncode == 0


def test_uprobe_at_symbol_plus_offset(bpf: Any, counters: Counters, uprobe_target: Path) -> None:
    offsets = _instruction_offsets(uprobe_target, "ehk_target")
    assert len(offsets) >= 2, offsets
    off = offsets[1]
    hook = Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target+{off:#x}")
    base = Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target").resolve()
    res = hook.resolve()
    assert res.file_offset == base.file_offset + off  # type: ignore[attr-defined]
    with hook.attach(bpf, fn_name="on_uprobe"):
        subprocess.run([str(uprobe_target), str(N)], check=True, capture_output=True)
        assert counters[Counters.UPROBE] == N


def test_uprobe_offset_past_the_function_is_refused(uprobe_target: Path) -> None:
    from ebpfhooks.errors import EbpfHooksError

    with pytest.raises(EbpfHooksError, match="ehk_target") as err:
        Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target+0x100000").resolve()
    assert isinstance(err.value, ValueError)


def test_uprobe_by_library_name_in_ld_so_cache_with_pid(
    bpf: Any, counters: Counters, uprobe_target: Path
) -> None:
    """``uprobe:c:getppid`` (bcc's spelling) and ``uprobe:libc:getppid`` (bpftrace's)."""
    for libname in ("c", "libc", "libc.so.6"):
        counters.reset()
        proc = _start_waiting(uprobe_target, N, "getppid")
        try:
            hook = Hook.from_spec(f"uprobe:{libname}:getppid[pid={proc.pid}]")
            res = hook.resolve()
            assert res.path.name.startswith("libc.so")  # type: ignore[attr-defined]
            with hook.attach(bpf, fn_name="on_uprobe"):
                # other processes call getppid too: the pid filter keeps them out
                subprocess.run([str(uprobe_target), "5", "x", "getppid"], check=True,
                               capture_output=True)
                _release(proc)
                assert counters[Counters.UPROBE] == N
        finally:
            proc.kill()
            proc.wait()


def test_uprobe_by_library_name_mapped_in_the_process(
    bpf: Any, counters: Counters, uprobe_lib_target: tuple[Path, Path]
) -> None:
    prog, lib = uprobe_lib_target
    proc = _start_waiting(prog, N, "lib")
    try:
        # 'ehklib' is in no ld.so.cache: it is found in /proc/PID/maps
        hook = Hook.from_spec(f"uretprobe:ehklib:ehk_lib_fn[pid={proc.pid}]")
        assert hook.resolve().path == lib.resolve()  # type: ignore[attr-defined]
        with hook.attach(bpf, fn_name="on_uretprobe"):
            _release(proc)
            assert counters[Counters.URETPROBE] == N
            assert counters.retsum() == sum(i ^ 0x5A for i in range(N))
    finally:
        proc.kill()
        proc.wait()


def test_uprobe_pid_filter_excludes_another_process_of_the_same_binary(
    bpf: Any, counters: Counters, uprobe_target: Path
) -> None:
    proc = _start_waiting(uprobe_target, N)
    try:
        with Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target[pid={proc.pid}]").attach(
                bpf, fn_name="on_uprobe"):
            subprocess.run([str(uprobe_target), "9"], check=True, capture_output=True)
            assert counters[Counters.UPROBE] == 0
            _release(proc)
            assert counters[Counters.UPROBE] == N
    finally:
        proc.kill()
        proc.wait()


def test_uprobe_on_a_bare_executable_name_found_on_path(
    bpf: Any, counters: Counters, uprobe_target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{uprobe_target.parent}:/usr/bin:/bin")
    hook = Hook.from_spec(f"uprobe:{uprobe_target.name}:ehk_target")
    assert hook.resolve().path == uprobe_target.resolve()  # type: ignore[attr-defined]
    with hook.attach(bpf, fn_name="on_uprobe"):
        subprocess.run([str(uprobe_target), str(N)], check=True, capture_output=True)
        assert counters[Counters.UPROBE] == N


def test_uprobe_leaves_the_same_function_to_other_tools(
    bpf: Any, counters: Counters, uprobe_target: Path
) -> None:
    """bpftrace can probe a function while ebpfhooks has it (ref_ctr_offset is 0).

    bcc 0.26's Python leaves libbcc's 7th argument (``ref_ctr_offset``) to whatever is on
    the stack; the kernel then refuses everyone else's uprobe at that place
    ("ref_ctr_offset mismatch", EINVAL). ebpfhooks passes 0.
    """
    import shutil

    bpftrace = shutil.which("bpftrace")
    assert bpftrace, "bpftrace is installed by make setup"
    with Hook.from_spec(f"uprobe:{uprobe_target}:ehk_target").attach(bpf, fn_name="on_uprobe"):
        other = subprocess.run(
            [bpftrace, "-e", f"uprobe:{uprobe_target}:ehk_target {{ @n = count(); }} "
             "interval:ms:200 { exit(); }"], capture_output=True, text=True, timeout=300)
        assert other.returncode == 0, other.stderr
        assert "Error attaching probe" not in other.stderr
        subprocess.run([str(uprobe_target), str(N)], check=True, capture_output=True)
        assert counters[Counters.UPROBE] == N


@pytest.mark.parametrize("opener", ["none", "failing"])
def test_uprobe_through_libbcc_when_the_direct_open_is_not_there_or_fails(
    bpf: Any, counters: Counters, uprobe_target: Path, monkeypatch: pytest.MonkeyPatch,
    opener: str
) -> None:
    """ebpfhooks opens uprobe perf events itself; libbcc's call is the fallback and judge."""
    from ebpfhooks import _bcc

    assert _bcc.uprobes._uprobe_opener() is not None  # this machine has the uprobe PMU
    monkeypatch.setattr(_bcc.uprobes, "_UPROBE_OPENER",
                        [None if opener == "none" else (lambda *args: -1)])
    for spec in (f"uprobe:{uprobe_target}:ehk_target", f"uretprobe:{uprobe_target}:ehk_target"):
        counters.reset()
        fn = "on_uprobe" if spec.startswith("uprobe") else "on_uretprobe"
        with Hook.from_spec(spec).attach(bpf, fn_name=fn):
            subprocess.run([str(uprobe_target), str(N)], check=True, capture_output=True)
            key = Counters.UPROBE if fn == "on_uprobe" else Counters.URETPROBE
            assert counters[key] == N
