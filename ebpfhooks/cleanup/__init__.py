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

The package's modules: :mod:`~ebpfhooks.cleanup.events` (tracefs probe events),
:mod:`~ebpfhooks.cleanup.xdp` (XDP programs and records) and
:mod:`~ebpfhooks.cleanup.report` (:func:`find`, :func:`clean`, the report); every name is
importable from ``ebpfhooks.cleanup``.
"""

from ebpfhooks.cleanup.events import ProbeEvent, parse_probe_events, probe_events
from ebpfhooks.cleanup.report import CleanupReport, clean, doctor_check, find
from ebpfhooks.cleanup.xdp import XdpProgram, XdpRecord, parse_ip_link_xdp, xdp_programs
from ebpfhooks.records import record_xdp, unrecord_xdp

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
