"""Smoke tests of the examples: each runs a few seconds on this kernel; its output is checked."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.live


def _open_files_for(seconds: float, marker: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        subprocess.run(["cat", str(marker)], capture_output=True, check=False)
        time.sleep(0.1)


def test_hello_world_reports_opens(live: None, tmp_path: Path) -> None:
    from ebpfhooks.kernel import features

    marker = tmp_path / "ebpfhooks-hello-marker"
    marker.write_text("hi")
    opener = threading.Thread(target=_open_files_for, args=(8.0, marker))
    opener.start()
    try:
        out = subprocess.run(
            [sys.executable, str(ROOT / "examples/hello_world.py"), "--duration", "4"],
            capture_output=True, text=True, timeout=120, env=dict(os.environ),
        )
    finally:
        opener.join()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    if features.kprobes():
        assert lines[0] == "attached kprobe:do_sys_openat2: reporting opens for 4 s"
    else:
        assert lines[0].startswith("kprobe:do_sys_openat2 cannot attach: this kernel has no "
                                   "kprobe support")
        assert lines[0].endswith("; falling back to the stable tracepoint "
                                 "tracepoint:syscalls:sys_enter_openat")
        assert lines[1] == ("attached tracepoint:syscalls:sys_enter_openat: "
                            "reporting opens for 4 s")
    assert any(line.split()[1:3] == ["cat", str(marker)] for line in lines
               if len(line.split()) >= 3), out.stdout
    assert lines[-1].endswith("opens seen")
