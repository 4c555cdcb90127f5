"""Ownership records: what this process attached that would outlive a SIGKILL.

A netlink XDP attach stays on its interface after its process dies (a bpf_link XDP attach
does not). At such an attach the link layer (:mod:`ebpfhooks.hooks.link`) writes a
record naming this process (pid and start time) under ``/run/ebpfhooks/xdp``, and
removes it at detach; ``ebpfhooks cleanup`` (:mod:`ebpfhooks.cleanup`) reads the records
to tell a leftover of a dead process from a program someone attached on purpose::

    >>> record_path(3, 42).name
    '3.42.json'
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

__all__ = ["record_path", "record_xdp", "run_dir", "start_time", "unrecord_xdp"]


def run_dir() -> Path:
    """Where ebpfhooks records netlink XDP attaches (``EBPFHOOKS_RUN_DIR`` or /run/ebpfhooks)."""
    return Path(os.environ.get("EBPFHOOKS_RUN_DIR") or "/run/ebpfhooks")


def record_path(ifindex: int, prog_id: int) -> Path:
    """The record of XDP program ``prog_id`` on interface ``ifindex``."""
    return run_dir() / "xdp" / f"{ifindex}.{prog_id}.json"


def start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks after boot), or ``None`` when gone.

    With the pid it tells a process from a later one that reuses its pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])  # field 22 (starttime), counted after "pid (comm)"
    except (IndexError, ValueError):
        return None


def record_xdp(ifindex: int, prog_id: int, name: str) -> None:
    """Record that this process attached XDP program ``prog_id`` by netlink (best effort).

    The record lets ``ebpfhooks cleanup`` remove the program without an explicit
    interface once this process is gone.
    """
    start = start_time(os.getpid())
    if start is None:
        return
    path = record_path(ifindex, prog_id)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(json.dumps({"ifindex": ifindex, "prog_id": prog_id, "name": name,
                                    "pid": os.getpid(), "start_time": start}))


def unrecord_xdp(ifindex: int, prog_id: int) -> None:
    """Forget a record made by :func:`record_xdp` (after detach)."""
    with contextlib.suppress(OSError):
        record_path(ifindex, prog_id).unlink()
