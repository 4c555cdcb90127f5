"""What :func:`find` saw and :func:`clean` did: the report, the doctor line, the scopes.

:func:`find` looks (read-only) at tracefs events (:mod:`ebpfhooks.cleanup.events`) and
XDP programs and records (:mod:`ebpfhooks.cleanup.xdp`), limited to interfaces or pids;
:func:`clean` removes what is stale in that scope and returns a :class:`CleanupReport`::

    from ebpfhooks import cleanup
    print("\\n".join(cleanup.clean(pids=[4242]).lines()))
"""

from __future__ import annotations

import errno as _errno
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from ebpfhooks.cleanup.events import ProbeEvent, _pid_alive, _remove_event, probe_events
from ebpfhooks.cleanup.xdp import XdpProgram, XdpRecord, _remove_xdp, _xdp_and_records
from ebpfhooks.errors import AttachError, EbpfHooksError, HookPermissionError
from ebpfhooks.records import run_dir, unrecord_xdp

__all__ = ["CleanupReport", "clean", "doctor_check", "find"]

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
