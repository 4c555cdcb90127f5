"""tracefs probe events: which are in ``kprobe_events``/``uprobe_events``, whose owner is gone.

bcc names its events with an owner marker, ``_bcc_<pid>``; an event whose marked
process no longer exists is stale. :func:`parse_probe_events` reads the text (pure),
:func:`probe_events` the live files with each owner's liveness::

    >>> ev = parse_probe_events("p:kprobes/p_vfs_read_bcc_42 vfs_read\\n", "kprobe_events")[0]
    >>> ev.group, ev.event, ev.owner_pid
    ('kprobes', 'p_vfs_read_bcc_42', 42)
"""

from __future__ import annotations

import os
import re

import attrs

from ebpfhooks.errors import HookPermissionError

__all__ = ["ProbeEvent", "parse_probe_events", "probe_events"]

#: bcc's owner marker in event names: ``p_do_sys_openat2_bcc_1234``,
#: ``p__bin_bash_0x1139_bcc_1234_on_readline`` (ebpfhooks adds the function name).
_BCC_PID = re.compile(r"_bcc_([0-9]{1,10})(?=_|$)")
_EVENT_LINE = re.compile(r"([pr]):([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)\s+(.*)\Z")


@attrs.frozen
class ProbeEvent:
    """One line of ``kprobe_events``/``uprobe_events``.

    ``owner_pid`` is the pid in bcc's ``_bcc_<pid>`` marker (None without one);
    ``owner_alive`` whether that process exists.
    """

    file: str  # "kprobe_events" or "uprobe_events"
    kind: str  # "p" (entry) or "r" (return)
    group: str
    event: str
    target: str
    owner_pid: int | None
    owner_alive: bool = True

    @property
    def stale(self) -> bool:
        """bcc-marked and its owner is gone."""
        return self.owner_pid is not None and not self.owner_alive

    def __str__(self) -> str:
        owner = ("no owner marker" if self.owner_pid is None else
                 f"pid {self.owner_pid} {'alive' if self.owner_alive else 'gone'}")
        return f"{self.file}: {self.group}/{self.event} ({self.target}; {owner})"


def _pid_alive(pid: int) -> bool:
    return pid > 0 and os.path.exists(f"/proc/{pid}")


def parse_probe_events(text: str, file: str) -> list[ProbeEvent]:
    """Parse ``kprobe_events``/``uprobe_events`` text (no liveness check: all alive).

    >>> parse_probe_events("p:kprobes/p_vfs_read_bcc_42 vfs_read\\n", "kprobe_events")[0].owner_pid
    42

    Lines that are not ``p:GROUP/EVENT TARGET`` or ``r...`` are skipped.
    """
    events = []
    for line in text.splitlines():
        m = _EVENT_LINE.match(line.strip())
        if m is None:
            continue
        kind, group, event, target = m.groups()
        pids = _BCC_PID.findall(event)
        events.append(ProbeEvent(file, kind, group, event, target.strip(),
                                 int(pids[-1]) if pids else None))
    return events


def probe_events() -> list[ProbeEvent]:
    """Every kprobe/uprobe event in tracefs, with its owner's liveness.

    Raises :class:`ebpfhooks.TracefsNotMountedError` when tracefs is not mounted and
    :class:`ebpfhooks.HookPermissionError` when it is not readable (not root).
    """
    from ebpfhooks.kernel.tracefs import tracefs_root

    root = tracefs_root()
    found: list[ProbeEvent] = []
    for file in ("kprobe_events", "uprobe_events"):
        try:
            text = (root / file).read_text()
        except FileNotFoundError:
            continue  # the kernel has no such events (no CONFIG_KPROBE_EVENTS)
        except PermissionError as err:
            raise HookPermissionError(
                f"cannot read {root / file}: permission denied (uid {os.geteuid()}); "
                "looking for leftovers needs root: rerun as root (sudo ebpfhooks cleanup)",
                capability="CAP_DAC_READ_SEARCH") from err
        for ev in parse_probe_events(text, file):
            if ev.owner_pid is not None:
                ev = attrs.evolve(ev, owner_alive=_pid_alive(ev.owner_pid))
            found.append(ev)
    return found


def _remove_event(ev: ProbeEvent) -> None:
    from ebpfhooks.kernel.tracefs import tracefs_root

    line = f"-:{ev.group}/{ev.event}\n"
    # the group and event names come from the kernel's own file, matched by _EVENT_LINE
    fd = os.open(tracefs_root() / ev.file, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
