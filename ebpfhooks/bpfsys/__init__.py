"""Raw bpf(2) and perf_event_open(2) calls, through ctypes over libc's ``syscall(2)``.

No bcc and no libbpf here: each ``bpf_attr`` variant used is an explicit ctypes
structure whose layout is written next to it (checked against the kernel's
``include/uapi/linux/bpf.h``; tests/test_bpfsys.py compares it with the installed
uapi header where the header has the field), and every failure becomes a typed
error of :mod:`ebpfhooks.errors` naming what was asked and what to do::

    from ebpfhooks import bpfsys
    prog = bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, insns, name="count",
                            expected_attach_type=bpfsys.BPF_TRACE_UPROBE_MULTI)
    link = bpfsys.uprobe_multi(prog, "/usr/bin/bash", [0x3f0a0, 0x3f1c0])
    ...
    os.close(link)  # detaches every uprobe of the link at once

What is here:

* :func:`prog_load` (``BPF_PROG_LOAD``, verifier log captured on failure),
* :func:`link_create` (``BPF_LINK_CREATE``), :func:`raw_tracepoint_open`
  (``BPF_RAW_TRACEPOINT_OPEN``: raw tracepoints, tp_btf, fentry/fexit/lsm),
* :func:`uprobe_multi` (one ``BPF_LINK_CREATE`` of type ``BPF_TRACE_UPROBE_MULTI`` for
  many uprobes in one file, kernel 6.6),
* :func:`perf_uprobe` (one uprobe as a perf event of the ``uprobe`` PMU, with a USDT
  semaphore offset and, through a ``BPF_PERF_EVENT`` link, a BPF cookie) and
  :func:`uprobe_opener`, the same call in the shape ebpfhooks' bcc adapter uses,
* :func:`perf_event_open` (one sampling event of any PMU: software events, hardware
  counters) and :func:`perf_event_attach` (a ``PERF_EVENT`` program on one such event
  per CPU, owned by a :class:`PerfEvents`),
* :func:`btf_obj_fd` (the fd of a kernel BTF object, vmlinux's or a module's, which
  ``attach_btf_obj_fd`` of a module function's fentry needs),
* :func:`link_create_fn`, the XDP adapter's ``bpf_link_create``.

Every fd returned belongs to the caller: closing a link fd detaches it, closing a
program fd unloads the program once nothing else holds it.

The modules: :mod:`ebpfhooks.bpfsys._attr` (the uapi numbers and the ``bpf_attr`` and
``perf_event_attr`` layouts), :mod:`ebpfhooks.bpfsys.bpf` (bpf(2) and its errors),
:mod:`ebpfhooks.bpfsys.perf` (perf_event_open(2) and the uprobe PMU) and
:mod:`ebpfhooks.bpfsys.multi` (uprobe_multi links); every public name is importable from
``ebpfhooks.bpfsys``.
"""

from ebpfhooks.bpfsys._attr import ATTACH_TYPE_NAMES as ATTACH_TYPE_NAMES
from ebpfhooks.bpfsys._attr import BPF_BTF_GET_FD_BY_ID as BPF_BTF_GET_FD_BY_ID
from ebpfhooks.bpfsys._attr import BPF_BTF_GET_NEXT_ID as BPF_BTF_GET_NEXT_ID
from ebpfhooks.bpfsys._attr import (
    BPF_F_UPROBE_MULTI_RETURN,
    BPF_LINK_CREATE,
    BPF_LSM_MAC,
    BPF_MODIFY_RETURN,
    BPF_PERF_EVENT,
    BPF_PROG_LOAD,
    BPF_PROG_TYPE_KPROBE,
    BPF_PROG_TYPE_LSM,
    BPF_PROG_TYPE_RAW_TRACEPOINT,
    BPF_PROG_TYPE_TRACEPOINT,
    BPF_PROG_TYPE_TRACING,
    BPF_RAW_TRACEPOINT_OPEN,
    BPF_TRACE_FENTRY,
    BPF_TRACE_FEXIT,
    BPF_TRACE_RAW_TP,
    BPF_TRACE_UPROBE_MULTI,
    BPF_XDP,
    BtfInfo,
    LinkCreateAttr,
    PerfEventAttr,
    ProgLoadAttr,
    RawTracepointOpenAttr,
)
from ebpfhooks.bpfsys._attr import BPF_OBJ_GET_INFO_BY_FD as BPF_OBJ_GET_INFO_BY_FD
from ebpfhooks.bpfsys._attr import BPF_PROG_TYPE_PERF_EVENT as BPF_PROG_TYPE_PERF_EVENT
from ebpfhooks.bpfsys._attr import BPF_PROG_TYPE_SOCKET_FILTER as BPF_PROG_TYPE_SOCKET_FILTER
from ebpfhooks.bpfsys._attr import BPF_PROG_TYPE_XDP as BPF_PROG_TYPE_XDP
from ebpfhooks.bpfsys._attr import BPF_TRACE_KPROBE_MULTI as BPF_TRACE_KPROBE_MULTI
from ebpfhooks.bpfsys._attr import ENOTSUPP as ENOTSUPP
from ebpfhooks.bpfsys._attr import PROG_TYPE_NAMES as PROG_TYPE_NAMES
from ebpfhooks.bpfsys._attr import TRAMPOLINE_ATTACH_TYPES as TRAMPOLINE_ATTACH_TYPES
from ebpfhooks.bpfsys.bpf import CAPS_TRACING as CAPS_TRACING
from ebpfhooks.bpfsys.bpf import LOG_TAIL_LINES as LOG_TAIL_LINES
from ebpfhooks.bpfsys.bpf import (
    btf_obj_fd,
    link_create,
    link_create_fn,
    prog_load,
    raw_tracepoint_open,
)
from ebpfhooks.bpfsys.bpf import log_tail as log_tail
from ebpfhooks.bpfsys.multi import MAX_UPROBE_MULTI_CNT as MAX_UPROBE_MULTI_CNT
from ebpfhooks.bpfsys.multi import uprobe_multi
from ebpfhooks.bpfsys.perf import (
    PERF_TYPE_HARDWARE,
    PERF_TYPE_SOFTWARE,
    PerfEvents,
    PerfUprobe,
    perf_event_attach,
    perf_event_open,
    perf_uprobe,
    uprobe_opener,
)

__all__ = [
    "BPF_F_UPROBE_MULTI_RETURN",
    "BPF_LINK_CREATE",
    "BPF_LSM_MAC",
    "BPF_MODIFY_RETURN",
    "BPF_PERF_EVENT",
    "BPF_PROG_LOAD",
    "BPF_PROG_TYPE_KPROBE",
    "BPF_PROG_TYPE_LSM",
    "BPF_PROG_TYPE_RAW_TRACEPOINT",
    "BPF_PROG_TYPE_TRACEPOINT",
    "BPF_PROG_TYPE_TRACING",
    "BPF_RAW_TRACEPOINT_OPEN",
    "BPF_TRACE_FENTRY",
    "BPF_TRACE_FEXIT",
    "BPF_TRACE_RAW_TP",
    "BPF_TRACE_UPROBE_MULTI",
    "BPF_XDP",
    "PERF_TYPE_HARDWARE",
    "PERF_TYPE_SOFTWARE",
    "BtfInfo",
    "LinkCreateAttr",
    "PerfEventAttr",
    "PerfEvents",
    "PerfUprobe",
    "ProgLoadAttr",
    "RawTracepointOpenAttr",
    "btf_obj_fd",
    "link_create",
    "link_create_fn",
    "perf_event_attach",
    "perf_event_open",
    "perf_uprobe",
    "prog_load",
    "raw_tracepoint_open",
    "uprobe_multi",
    "uprobe_opener",
]
