"""XDP programs on the interfaces and ebpfhooks' ownership records of them.

:func:`xdp_programs` lists each program with who holds it (``/proc/*/fdinfo``), whether a
``bpf_link`` does, and who recorded its netlink attach; :class:`XdpRecord` is a record
checked against the kernel. Removal (``_remove_xdp``) is an atomic compare-and-detach::

    >>> parse_ip_link_xdp('[{"ifindex": 3, "ifname": "v0", "xdp": {"mode": 2, '
    ...                   '"prog": {"id": 9, "name": "f"}}}]')
    [('v0', 3, 9, 'f', 'generic')]

Minimum kernel: 4.13 (XDP program ids); the atomic XDP detach needs 5.7.
"""

from __future__ import annotations

import errno as _errno
import json
import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from ebpfhooks.errors import AttachError, HookPermissionError
from ebpfhooks.records import record_path, run_dir, start_time

__all__ = ["XdpProgram", "XdpRecord", "parse_ip_link_xdp", "xdp_programs"]

#: ``ip -d link`` xdp mode -> (name, XDP_FLAGS_*_MODE)
_XDP_MODES = {1: ("driver", 4), 2: ("generic", 2), 3: ("offload", 8)}
_XDP_WORD = {"driver": "xdpdrv", "generic": "xdpgeneric", "offload": "xdpoffload"}
#: The inode number of the initial pid namespace (PROC_PID_INIT_INO, include/linux/proc_ns.h)
_PROC_PID_INIT_INO = 0xEFFFFFFC


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
