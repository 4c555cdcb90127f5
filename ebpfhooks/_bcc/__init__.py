"""The one room that imports bcc: load functions, attach, detach, translate errors.

bcc is imported on the first attach, never by ``import ebpfhooks``. Each ``attach_*``
returns an :class:`Attachment` saying what it did (how to undo it, the fd that holds
it, what must be recorded to outlive a crash); the :class:`ebpfhooks.Link` owns it and
records ownership. The modules, by what they attach:

* :mod:`~ebpfhooks._bcc.core`: importing bcc, loading a function, typed errors;
* :mod:`~ebpfhooks._bcc.tracing`: kprobes, tracepoints, raw tracepoints, perf events,
  BTF programs (fentry/fexit, tp_btf, LSM);
* :mod:`~ebpfhooks._bcc.uprobes`: uprobes one by one or in groups, USDT probes;
* :mod:`~ebpfhooks._bcc.net`: XDP and raw sockets.

>>> from ebpfhooks import _bcc
>>> _bcc.attach_kprobe is _bcc.tracing.attach_kprobe
True

Minimum kernel: each kind's (docs/hooks.md); bcc 0.26 (:mod:`ebpfhooks._bccshim`).
"""

from __future__ import annotations

from ebpfhooks._bcc import core, net, tracing, uprobes
from ebpfhooks._bcc.core import (
    CAPS_NET,
    CAPS_RAW_SOCKET,
    CAPS_TRACING,
    Attachment,
    compiled_insns,
    ctypes_errno_reset,
    function_names,
    load,
    version,
)
from ebpfhooks._bcc.net import (
    XDP_ATTACH_MODES,
    attach_raw_socket,
    attach_xdp,
    xdp_attach_mode,
)
from ebpfhooks._bcc.tracing import (
    attach_btf_program,
    attach_kprobe,
    attach_perf_event,
    attach_raw_tracepoint,
    attach_tracepoint,
)
from ebpfhooks._bcc.uprobes import (
    UPROBE_ATTACH_MODES,
    UprobeOutcome,
    attach_uprobe,
    attach_uprobe_batch,
    attach_uprobe_cookie,
    attach_usdt,
    uprobe_attach_mode,
)

__all__ = [
    "CAPS_NET",
    "CAPS_RAW_SOCKET",
    "CAPS_TRACING",
    "UPROBE_ATTACH_MODES",
    "XDP_ATTACH_MODES",
    "Attachment",
    "UprobeOutcome",
    "attach_btf_program",
    "attach_kprobe",
    "attach_perf_event",
    "attach_raw_socket",
    "attach_raw_tracepoint",
    "attach_tracepoint",
    "attach_uprobe",
    "attach_uprobe_batch",
    "attach_uprobe_cookie",
    "attach_usdt",
    "attach_xdp",
    "compiled_insns",
    "core",
    "ctypes_errno_reset",
    "function_names",
    "load",
    "net",
    "tracing",
    "uprobe_attach_mode",
    "uprobes",
    "version",
    "xdp_attach_mode",
]
