"""Find and remove what dead processes left behind: tracefs probe events and XDP programs.

ebpfhooks itself leaves nothing (links are detached on exit and on SIGTERM, and XDP
goes through a kernel ``bpf_link`` on 5.9+ kernels, which the kernel detaches even
after SIGKILL). Other processes do: bcc leaves ``p_..._bcc_<pid>`` events in
``kprobe_events``/``uprobe_events`` when killed, and its netlink XDP attach stays on
the interface after exit. This module finds them and removes only what provably
belongs to nobody alive::

    from ebpfhooks import cleanup
    report = cleanup.find()                 # read-only
    for item in report.stale:
        print(item)
    cleanup.clean()                         # remove what find() called stale
    cleanup.clean(pids=[4242])              # only what dead process 4242 left
    cleanup.clean(interfaces=["veth0"])     # only XDP programs and records of veth0

The rules (see docs/lifetimes.md):

* A tracefs event is stale when its name carries bcc's owner marker ``_bcc_<pid>``
  and no process ``<pid>`` exists. The kernel refuses (EBUSY) to remove an event
  that is still in use, which also protects processes in other pid namespaces;
  such events are reported as kept.
* An XDP program is stale only when (1) ebpfhooks recorded its netlink attach
  (in ``/run/ebpfhooks/xdp``, see :func:`record_xdp`) and the recording process
  (pid *and* start time) is gone, or the caller named the interface explicitly;
  and (2) no live process holds a file descriptor to the program or to a
  ``bpf_link`` for it. Programs attached through a bpf_link are never stale.
  Removal is atomic compare-and-detach (``XDP_FLAGS_REPLACE`` with the program
  found), so a program attached meanwhile by someone else is never removed.
  Outside the initial pid namespace, holders elsewhere cannot be seen, so an
  unrecorded program is never removed there even when its interface is named.
* An ownership record is stale when its program is no longer attached to its
  interface (removed with ``ip link set dev X xdp off``, or the interface is gone):
  records are read before the kernel's list, then checked against it, and
  :func:`clean` drops the stale ones (dropping a record never removes a program).

Looking needs root: tracefs is root's (mode 0700) and the open files of other
users' processes (``/proc/PID/fd``) are readable only with CAP_SYS_PTRACE; without
them :func:`find` and :func:`clean` raise :class:`ebpfhooks.HookPermissionError`
instead of answering from half the facts.

Minimum kernel: 4.13 (XDP program ids); the atomic XDP detach needs 5.7.
"""

from __future__ import annotations

import errno as _errno
import json
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ebpfhooks.errors import AttachError, EbpfHooksError, HookPermissionError
from ebpfhooks.records import (
    record_path,
    record_xdp,
    run_dir,
    start_time,
    unrecord_xdp,
)

__all__ = [
    "CleanupReport",
    "ProbeEvent",
    "XdpProgram",
    "XdpRecord",
    "clean",
    "doctor_check",
    "find",
    "parse_ip_link_xdp",
    "parse_probe_events",
    "probe_events",
    "record_xdp",
    "unrecord_xdp",
    "xdp_programs",
]

#: bcc's owner marker in event names: ``p_do_sys_openat2_bcc_1234``,
#: ``p__bin_bash_0x1139_bcc_1234_on_readline`` (ebpfhooks adds the function name).
_BCC_PID = re.compile(r"_bcc_([0-9]{1,10})(?=_|$)")
_EVENT_LINE = re.compile(r"([pr]):([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)\s+(.*)\Z")
#: ``ip -d link`` xdp mode -> (name, XDP_FLAGS_*_MODE)
_XDP_MODES = {1: ("driver", 4), 2: ("generic", 2), 3: ("offload", 8)}
_XDP_WORD = {"driver": "xdpdrv", "generic": "xdpgeneric", "offload": "xdpoffload"}
#: The inode number of the initial pid namespace (PROC_PID_INIT_INO, include/linux/proc_ns.h)
_PROC_PID_INIT_INO = 0xEFFFFFFC




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


@attrs.frozen
class XdpProgram:
    """An XDP program on an interface of this network namespace.

    ``via_link`` is True when a ``bpf_link`` holds it (the kernel will detach it when
    the link's last fd closes: never stale); ``holders`` are the live pids holding an fd
    to the program or its link; ``recorded_by`` the (pid, start time) ebpfhooks recorded
    at its netlink attach, when it did; ``explicit`` whether the caller named the
    interface (permission to remove programs nobody recorded); ``blind`` whether this
    process is outside the initial pid namespace, where holders in other namespaces
    cannot be seen (an unrecorded program is then never stale).
    """

    interface: str
    ifindex: int
    prog_id: int
    name: str
    mode: str  # "driver", "generic" or "offload"
    via_link: bool = False
    holders: tuple[int, ...] = ()
    recorded_by: tuple[int, int] | None = None
    recorder_alive: bool = False
    explicit: bool = False
    blind: bool = False

    @property
    def stale(self) -> bool:
        """Nobody alive owns it and either ebpfhooks recorded it or the caller named it."""
        if self.via_link or self.holders:
            return False
        if self.recorded_by is not None:
            return not self.recorder_alive
        return self.explicit and not self.blind

    def why(self) -> str:
        """Why it is (or is not) stale, in words."""
        if self.via_link:
            return "held by a bpf_link: the kernel detaches it when its owner exits"
        if self.holders:
            return "in use by live pid " + ", ".join(map(str, self.holders))
        if self.recorded_by is not None:
            pid = self.recorded_by[0]
            return (f"attached by ebpfhooks pid {pid}, still running" if self.recorder_alive
                    else f"attached by ebpfhooks pid {pid}, which is gone")
        if self.explicit and self.blind:
            return ("no process of this pid namespace holds it, but processes in other "
                    "pid namespaces cannot be seen from here: run cleanup on the host")
        if self.explicit:
            return "no process holds it and the interface was named explicitly"
        return ("no process holds it, but nothing says who attached it (bcc netlink, or "
                "`ip link set ... xdp obj` on purpose?): name the interface to remove it")

    def __str__(self) -> str:
        return (f"xdp on {self.interface} ({self.mode}): prog {self.prog_id} "
                f"{self.name or '(unnamed)'} - {self.why()}")


def parse_ip_link_xdp(ip_json: str) -> list[tuple[str, int, int, str, str]]:
    """``(interface, ifindex, prog_id, prog_name, mode)`` for every XDP program in
    ``ip -details -json link show`` output.

    >>> parse_ip_link_xdp('[{"ifindex": 3, "ifname": "v0", "xdp": {"mode": 2, '
    ...                   '"prog": {"id": 9, "name": "f"}}}]')
    [('v0', 3, 9, 'f', 'generic')]

    Raises :class:`ebpfhooks.kernel.netdev.IpCommandError` when it is not that JSON.
    """
    from ebpfhooks.kernel.netdev import IpCommandError

    try:
        data: Any = json.loads(ip_json)
    except (json.JSONDecodeError, RecursionError) as err:
        raise IpCommandError(
            f"expected JSON from `ip -details -json link show`, got {ip_json[:80]!r}") from err
    if not isinstance(data, list):
        raise IpCommandError(f"expected a JSON list of interfaces, got {ip_json[:80]!r}")
    out = []
    for link in data:
        if not isinstance(link, dict) or not isinstance(link.get("xdp"), dict):
            continue
        xdp = link["xdp"]
        entries = [xdp] if isinstance(xdp.get("prog"), dict) else []
        entries += [a for a in xdp.get("attached", []) or [] if isinstance(a, dict)]
        seen = set()
        for entry in entries:
            prog = entry.get("prog")
            mode = entry.get("mode")
            if not isinstance(prog, dict) or not isinstance(prog.get("id"), int):
                continue
            if mode not in _XDP_MODES or (prog["id"], mode) in seen:
                continue
            seen.add((prog["id"], mode))
            out.append((str(link.get("ifname", "")), int(link.get("ifindex", 0) or 0),
                        int(prog["id"]), str(prog.get("name", "")), _XDP_MODES[mode][0]))
    return out


def _bpf_fd_holders() -> tuple[dict[int, set[int]], set[int], list[int]]:
    """({prog_id: {pid, ...}}, {prog ids held by a bpf_link}, [pids whose fds could not
    be read]) from /proc/*/fdinfo."""
    holders: dict[int, set[int]] = {}
    linked: set[int] = set()
    denied: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except PermissionError:
            denied.append(pid)  # another user's process, and this one is not root
            continue
        except OSError:
            continue  # gone
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target not in ("anon_inode:bpf-prog", "anon_inode:bpf_link"):
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    info = f.read()
            except OSError:
                continue
            m = re.search(r"^prog_id:\s*(\d+)", info, re.M)
            if m is None:
                continue
            prog_id = int(m.group(1))
            if target == "anon_inode:bpf_link":
                linked.add(prog_id)
            holders.setdefault(prog_id, set()).add(pid)
    return holders, linked, denied


def _sees_every_process() -> bool:
    """True in the initial pid namespace (where /proc lists every process)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino == _PROC_PID_INIT_INO
    except OSError:
        return False




@attrs.frozen
class XdpRecord:
    """An ownership record :func:`record_xdp` wrote at a netlink XDP attach.

    ``interface`` is the name of ``ifindex`` now (``None``: the interface is gone);
    ``attached`` whether program ``prog_id`` is still on that interface (checked
    against the kernel after the record was read); ``recorder_alive`` whether the
    recording process (pid *and* start time) still runs. A record whose program is
    no longer attached is stale: :func:`clean` drops it.
    """

    ifindex: int
    prog_id: int
    name: str
    pid: int
    start_time: int
    interface: str | None = None
    attached: bool = True
    recorder_alive: bool = False

    @property
    def stale(self) -> bool:
        """Its program is no longer attached there (the record could only mislead)."""
        return not self.attached

    @property
    def path(self) -> Path:
        """The record's file."""
        return record_path(self.ifindex, self.prog_id)

    def __str__(self) -> str:
        where = self.interface or f"ifindex {self.ifindex} (interface gone)"
        owner = f"pid {self.pid} {'alive' if self.recorder_alive else 'gone'}"
        state = ("its program is still attached" if self.attached else
                 "its program is no longer attached there (removed by hand, e.g. ip link "
                 f"set dev {self.interface or 'IFACE'} xdp off)")
        return (f"xdp record {self.path.name}: prog {self.prog_id} "
                f"{self.name or '(unnamed)'} on {where}, recorded by {owner}; {state}")


def _read_records() -> list[XdpRecord]:
    """Every readable record of the run directory, as written (no kernel check).

    Raises :class:`ebpfhooks.HookPermissionError` when the directory exists but may not
    be read (it is root's, mode 0700): no records would be a wrong answer.
    """
    out: list[XdpRecord] = []
    where = run_dir() / "xdp"
    try:
        names = sorted(n for n in os.listdir(where) if n.endswith(".json"))
    except PermissionError as err:
        raise HookPermissionError(
            f"cannot read {where} (ebpfhooks' XDP ownership records): permission denied "
            f"(uid {os.geteuid()}); rerun as root, or give the process CAP_DAC_READ_SEARCH",
            capability="CAP_DAC_READ_SEARCH") from err
    except OSError:
        return out  # no record was ever written
    for path in (where / n for n in names):
        try:
            rec = json.loads(path.read_text())
            out.append(XdpRecord(int(rec["ifindex"]), int(rec["prog_id"]),
                                 str(rec.get("name", "")), int(rec["pid"]),
                                 int(rec["start_time"])))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return out








def _ip_link_json() -> str:
    from ebpfhooks.kernel.netdev import IpCommandError

    argv = ["ip", "-details", "-json", "link", "show"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise IpCommandError("the `ip` command (iproute2) is not installed; install iproute2 "
                             "to list XDP programs") from err
    if proc.returncode != 0:
        raise IpCommandError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()}")
    return proc.stdout


def xdp_programs(explicit: Iterable[str] = ()) -> list[XdpProgram]:
    """Every XDP program on the interfaces of this network namespace, with ownership facts.

    ``explicit`` names interfaces whose unrecorded, unheld programs count as stale.

    Raises :class:`ebpfhooks.InterfaceNotFoundError` for an explicit interface that
    does not exist, ``IpCommandError`` without iproute2, and
    :class:`ebpfhooks.HookPermissionError` when the holders cannot all be seen (not root).
    """
    return _xdp_and_records(explicit)[0]


def _xdp_and_records(explicit: Iterable[str] = ()) -> tuple[list[XdpProgram], list[XdpRecord]]:
    """The XDP programs (as :func:`xdp_programs`) and every record checked against them."""
    import socket

    from ebpfhooks.kernel.netdev import ifindex

    named = set(explicit)
    for name in named:
        ifindex(name)  # typed error with close matches
    # records first, then the kernel: a record is written after its attach, so a
    # record whose program is missing from the later list was really detached
    records = _read_records()
    listed = parse_ip_link_xdp(_ip_link_json())
    names = {index: iface for index, iface in socket.if_nameindex()}
    attached = {(index, prog_id) for _, index, prog_id, _, _ in listed}
    checked = [attrs.evolve(r, interface=names.get(r.ifindex),
                            attached=(r.ifindex, r.prog_id) in attached,
                            recorder_alive=start_time(r.pid) == r.start_time)
               for r in records]
    by_key = {(r.ifindex, r.prog_id): r for r in checked}
    holders: dict[int, set[int]] = {}
    linked: set[int] = set()
    if listed:
        holders, linked, denied = _bpf_fd_holders()
        if denied:
            raise HookPermissionError(
                "cannot tell who holds the XDP programs on "
                + ", ".join(sorted({iface for iface, *_ in listed}))
                + f": the open files of {len(denied)} processes (e.g. /proc/{denied[0]}/fd) "
                f"are not readable by this process (uid {os.geteuid()}); seeing other "
                "users' processes needs root (CAP_SYS_PTRACE): rerun as root",
                capability="CAP_SYS_PTRACE")
    blind = not _sees_every_process()
    out = []
    for iface, index, prog_id, name, mode in listed:
        rec = by_key.get((index, prog_id))
        out.append(XdpProgram(iface, index, prog_id, name, mode, via_link=prog_id in linked,
                              holders=tuple(sorted(holders.get(prog_id, ()))),
                              recorded_by=(rec.pid, rec.start_time) if rec else None,
                              recorder_alive=rec is not None and rec.recorder_alive,
                              explicit=iface in named, blind=blind))
    return out, checked


@attrs.frozen
class CleanupReport:
    """What :func:`find` saw and :func:`clean` did.

    ``events``/``xdp``/``records``: everything found in scope (tracefs events, XDP
    programs, ebpfhooks' XDP ownership records checked against the kernel);
    ``removed``: what was removed (by :func:`clean`); ``kept``: what was asked for or
    looked stale but stays, with the reason (in use, refused by the kernel, a named pid
    still running); ``problems``: what could not be looked at; ``scope``: the limits
    asked for, in words (empty: everything).
    """

    events: tuple[ProbeEvent, ...] = ()
    xdp: tuple[XdpProgram, ...] = ()
    removed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    records: tuple[XdpRecord, ...] = ()
    scope: str = ""

    @property
    def stale(self) -> list[ProbeEvent | XdpProgram | XdpRecord]:
        """The items that would be (or were) removed."""
        return [*(e for e in self.events if e.stale), *(x for x in self.xdp if x.stale),
                *(r for r in self.records if r.stale)]

    @property
    def complete(self) -> bool:
        """Everything in scope was looked at and nothing asked for was kept back.

        ``ebpfhooks cleanup`` exits 1 when this is false.
        """
        return not self.problems and not self.kept

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        out = [f"removed: {r}" for r in self.removed]
        out += [f"kept:    {k}" for k in self.kept]
        if not self.removed:
            out += [f"stale:   {s}" for s in self.stale]
        out += [f"problem: {p}" for p in self.problems]
        return out or ["nothing left behind" + (f" ({self.scope})" if self.scope else "")]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every event, XDP program and record found, what was removed and kept."""
        return {
            "events": [{**attrs.asdict(e), "stale": e.stale} for e in self.events],
            "xdp": [{**attrs.asdict(x), "stale": x.stale, "why": x.why()} for x in self.xdp],
            "records": [{**attrs.asdict(r), "stale": r.stale, "path": str(r.path)}
                        for r in self.records],
            "removed": list(self.removed), "kept": list(self.kept),
            "problems": list(self.problems), "scope": self.scope,
        }


def doctor_check() -> Any:
    """A doctor line: are stale tracefs events or ownerless XDP programs left on this system?

    Returns a :class:`ebpfhooks.kernel.features.Feature` named ``no_leftovers``: YES when
    nothing is left, NO listing what is (with the ``ebpfhooks cleanup`` command that
    removes it), UNKNOWN when it cannot look (not root, no iproute2).
    """
    from ebpfhooks.kernel.features import Feature, FeatureStatus

    try:
        report = find()
    except HookPermissionError as err:
        return Feature("no_leftovers", FeatureStatus.UNKNOWN, f"could not look: {err}",
                       "run as root: sudo ebpfhooks doctor")
    except (EbpfHooksError, OSError) as err:
        return Feature("no_leftovers", FeatureStatus.UNKNOWN, f"could not look: {err}", None)
    if report.problems and not (report.events or report.xdp):
        return Feature("no_leftovers", FeatureStatus.UNKNOWN,
                       "could not look: " + "; ".join(report.problems),
                       "run as root")
    stale_events = [e for e in report.events if e.stale]
    orphans = [x for x in report.xdp if not x.via_link and not x.holders
               and not x.recorder_alive]
    stale_records = [r for r in report.records if r.stale]
    if not stale_events and not orphans and not stale_records:
        return Feature("no_leftovers", FeatureStatus.YES,
                       "no stale kprobe/uprobe events, no XDP program without a live owner, "
                       "no stale XDP record", None)
    items = [f"{e.group}/{e.event} (pid {e.owner_pid} gone)" for e in stale_events]
    items += [f"XDP prog {x.prog_id} {x.name} on {x.interface} (no live owner)" for x in orphans]
    items += [f"the record of XDP prog {r.prog_id} in {run_dir() / 'xdp'} (program no longer "
              "attached)" for r in stale_records]
    named = sorted({x.interface for x in orphans if x.recorded_by is None})
    fix = "ebpfhooks cleanup" + "".join(f" --xdp {n}" for n in named)
    return Feature("no_leftovers", FeatureStatus.NO, "left by dead processes: " +
                   ", ".join(items), fix)


def _scope_words(interfaces: Sequence[str], pids: Sequence[int]) -> str:
    parts = []
    if interfaces:
        parts.append("on " + ", ".join(interfaces))
    if pids:
        parts.append("by pid " + ", ".join(map(str, pids)))
    return " and ".join(parts)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def find(xdp_interfaces: Sequence[str] = (), *, interfaces: Sequence[str] = (),
         pids: Sequence[int] = ()) -> CleanupReport:
    """Look for leftovers without changing anything.

    ``xdp_interfaces`` names interfaces whose unrecorded XDP programs count as stale
    (see :func:`clean`). ``interfaces`` limits the search to XDP programs and records
    of those interfaces (tracefs events are then left out); ``pids`` to what those
    processes left: tracefs events with their ``_bcc_PID`` marker and XDP programs and
    records they recorded. A named pid that is running is left out entirely and
    reported in ``kept``: what a living process attached is never stale.

    >>> from ebpfhooks import cleanup
    >>> print("\\n".join(cleanup.find().lines()))  # doctest: +SKIP
    nothing left behind

    Raises :class:`ebpfhooks.HookPermissionError` when it may not look (not root),
    :class:`ebpfhooks.InterfaceNotFoundError` for a named interface that does not exist.
    """
    from ebpfhooks.kernel.netdev import ifindex

    for name in interfaces:
        ifindex(name)  # typed error with close matches
    running = [pid for pid in pids if _pid_alive(pid)]
    kept = [f"pid {pid} ({_comm(pid)}) is running: what a living process attached is "
            "never removed; stop it first" for pid in running]
    dead = set(pids) - set(running)
    problems: list[str] = []
    events: list[ProbeEvent] = []
    xdp: list[XdpProgram] = []
    records: list[XdpRecord] = []
    if not interfaces:
        try:
            events = [e for e in probe_events() if not pids or e.owner_pid in dead]
        except HookPermissionError:
            raise
        except EbpfHooksError as err:
            problems.append(f"tracefs events: {err}")
    try:
        xdp, records = _xdp_and_records(xdp_interfaces)
    except HookPermissionError:
        raise
    except (EbpfHooksError, OSError) as err:
        if isinstance(err, LookupError):
            raise
        problems.append(f"XDP programs: {err}")
    if interfaces:
        xdp = [x for x in xdp if x.interface in interfaces]
        records = [r for r in records if r.interface in interfaces]
    if pids:
        xdp = [x for x in xdp if x.recorded_by is not None and x.recorded_by[0] in dead]
        records = [r for r in records if r.pid in dead]
    return CleanupReport(tuple(events), tuple(xdp), kept=tuple(kept), problems=tuple(problems),
                         records=tuple(records), scope=_scope_words(interfaces, pids))


def _remove_event(ev: ProbeEvent) -> None:
    from ebpfhooks.kernel.tracefs import tracefs_root

    line = f"-:{ev.group}/{ev.event}\n"
    # the group and event names come from the kernel's own file, matched by _EVENT_LINE
    fd = os.open(tracefs_root() / ev.file, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _libbpf() -> Any:
    import ctypes

    try:
        return ctypes.CDLL("libbpf.so.1", use_errno=True)
    except OSError:
        return None


def _remove_xdp(prog: XdpProgram) -> None:
    """Detach ``prog`` only if it is still the program on the interface (atomic)."""
    import ctypes

    flags = {name: flag for name, flag in _XDP_MODES.values()}[prog.mode]
    lib = _libbpf()
    if lib is not None and hasattr(lib, "bpf_xdp_detach"):
        prog_fd = lib.bpf_prog_get_fd_by_id(ctypes.c_uint32(prog.prog_id))
        if prog_fd < 0:
            code = ctypes.get_errno() or -prog_fd
            if code == _errno.ENOENT:
                return  # already gone
            raise AttachError(f"cannot open XDP program {prog.prog_id}: {os.strerror(code)}",
                              errno=code)
        try:
            class _Opts(ctypes.Structure):  # struct bpf_xdp_attach_opts
                _fields_ = [("sz", ctypes.c_size_t), ("old_prog_fd", ctypes.c_int),
                            ("_pad", ctypes.c_int)]

            opts = _Opts(ctypes.sizeof(_Opts), prog_fd, 0)
            rc = lib.bpf_xdp_detach(ctypes.c_int(prog.ifindex), ctypes.c_uint32(flags),
                                    ctypes.byref(opts))
            if rc < 0:
                code = ctypes.get_errno() or -rc
                raise AttachError(
                    f"removing XDP program {prog.prog_id} from {prog.interface} failed: "
                    f"{os.strerror(code)} (replaced meanwhile, or held by a bpf_link)",
                    errno=code)
        finally:
            os.close(prog_fd)
        return
    # without libbpf: check the id just before removing (a small window remains)
    current = [p for p in parse_ip_link_xdp(_ip_link_json())
               if p[1] == prog.ifindex and p[2] == prog.prog_id and p[4] == prog.mode]
    if not current:
        return
    subprocess.run(["ip", "link", "set", "dev", prog.interface, _XDP_WORD[prog.mode], "off"],
                   check=True, capture_output=True)


def clean(xdp_interfaces: Sequence[str] = (), *, dry_run: bool = False,
          interfaces: Sequence[str] = (), pids: Sequence[int] = ()) -> CleanupReport:
    """Remove stale tracefs events, XDP programs and records; return what was done.

    ``xdp_interfaces`` names interfaces whose unrecorded XDP programs may be
    removed (still only when no live process holds them). ``interfaces`` and ``pids``
    limit what is touched (see :func:`find`): ``clean(pids=[4242])`` removes only what
    dead process 4242 left, ``clean(interfaces=["veth0"])`` only XDP programs and
    records of veth0. With ``dry_run`` nothing is changed (same as :func:`find`).
    Stale XDP records (their program is no longer attached) are dropped.

    >>> cleanup.clean(["veth0"])  # doctest: +SKIP
    CleanupReport(..., removed=('xdp on veth0 (generic): prog 42 ...',), ...)

    Raises :class:`ebpfhooks.HookPermissionError` without root.
    """
    report = find(xdp_interfaces, interfaces=interfaces, pids=pids)
    if dry_run:
        return report
    removed: list[str] = []
    kept: list[str] = list(report.kept)
    problems = list(report.problems)
    for ev in report.events:
        if not ev.stale:
            continue
        try:
            _remove_event(ev)
            removed.append(str(ev))
        except OSError as err:
            if err.errno == _errno.EBUSY:
                kept.append(f"{ev}: in use (a process, maybe in another pid namespace, "
                            "still has it open)")
            elif err.errno == _errno.ENOENT:
                continue  # removed meanwhile
            elif err.errno in (_errno.EPERM, _errno.EACCES):
                raise HookPermissionError(
                    f"removing {ev.group}/{ev.event} from {ev.file} needs root "
                    "(CAP_SYS_ADMIN)", capability="CAP_SYS_ADMIN") from err
            else:
                problems.append(f"{ev}: {os.strerror(err.errno or 0)}")
    for prog in report.xdp:
        if not prog.stale:
            if prog.explicit:
                kept.append(str(prog))
            continue
        try:
            _remove_xdp(prog)
            unrecord_xdp(prog.ifindex, prog.prog_id)
            removed.append(str(prog))
        except (AttachError, subprocess.CalledProcessError) as err:
            if isinstance(err, AttachError) and err.errno in (_errno.EPERM, _errno.EACCES):
                raise HookPermissionError(
                    f"removing XDP from {prog.interface} needs root (CAP_NET_ADMIN and "
                    "CAP_SYS_ADMIN)", capability="CAP_NET_ADMIN") from err
            kept.append(f"{prog}: {err}")
    # records whose program is no longer attached: dropping one never removes a program
    for rec in report.records:
        if rec.stale:
            unrecord_xdp(rec.ifindex, rec.prog_id)
            removed.append(str(rec))
    return attrs.evolve(report, removed=tuple(removed), kept=tuple(kept),
                        problems=tuple(problems))
