"""Tests of ebpfhooks.elf.procmaps on fixed text and on this process."""

from __future__ import annotations

import os
import sys

import pytest

from ebpfhooks.elf.procmaps import MapEntry, mapped_files, parse_proc_maps

TEXT = """\
55d3c2a00000-55d3c2a02000 r--p 00000000 fe:01 1835019                    /usr/bin/cat
55d3c2a02000-55d3c2a07000 r-xp 00002000 fe:01 1835019                    /usr/bin/cat
55d3c3b5e000-55d3c3b7f000 rw-p 00000000 00:00 0                          [heap]
7f1d1c000000-7f1d1c021000 rw-p 00000000 00:00 0 TRAILING
7f1d1c200000-7f1d1c228000 r--p 00000000 fe:01 1835300   /usr/lib/x86_64-linux-gnu/libc.so.6
7f1d1c228000-7f1d1c3bd000 r-xp 00028000 fe:01 1835300   /usr/lib/x86_64-linux-gnu/libc.so.6
7f1d1c400000-7f1d1c401000 r-xp 00000000 fe:01 99                         /tmp/my dir/lib x.so
7f1d1c500000-7f1d1c501000 r-xp 00000000 fe:01 98                         /tmp/gone.so (deleted)
7ffd6b1e4000-7ffd6b1e6000 r-xp 00000000 00:00 0                          [vdso]
""".replace(" TRAILING", " ")


def test_parse_lines() -> None:
    maps = parse_proc_maps(TEXT)
    assert maps[1] == MapEntry(0x55D3C2A02000, 0x55D3C2A07000, "r-xp", 0x2000, "fe:01", 1835019,
                               "/usr/bin/cat")
    assert maps[2].path == "[heap]" and not maps[2].is_file
    assert maps[3].path == "" and maps[3].inode == 0  # anonymous line ends in a space
    assert maps[6].path == "/tmp/my dir/lib x.so"
    assert maps[7].path == "/tmp/gone.so" and maps[7].deleted


def test_mapped_files_distinct_in_order() -> None:
    assert mapped_files(parse_proc_maps(TEXT)) == [
        "/usr/bin/cat", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/tmp/my dir/lib x.so"]


def test_error_bad_line() -> None:
    with pytest.raises(ValueError) as e:
        parse_proc_maps(TEXT + "zzzz r-xp\n")
    assert str(e.value) == ("/proc/PID/maps line 10 is not 'start-end perms offset dev inode "
                            "[path]': 'zzzz r-xp'")


def test_this_process() -> None:
    with open(f"/proc/{os.getpid()}/maps") as f:
        files = mapped_files(parse_proc_maps(f.read()))
    assert os.path.realpath(sys.executable) in files
