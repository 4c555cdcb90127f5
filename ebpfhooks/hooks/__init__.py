"""The eight hook kinds, one module per family, over the shared :mod:`.base`."""

from ebpfhooks.hooks.base import Hook, Link, LinkGroup, Program, Resolution
from ebpfhooks.hooks.kprobe import Kprobe, KprobeResolution, Kretprobe
from ebpfhooks.hooks.net import InterfaceResolution, RawSocket, Xdp, XdpMode
from ebpfhooks.hooks.tracepoint import (
    RawTracepoint,
    RawTracepointResolution,
    Tracepoint,
    TracepointResolution,
)
from ebpfhooks.hooks.uprobe import (
    Address,
    FileOffset,
    Symbol,
    Uprobe,
    UprobeResolution,
    Uretprobe,
)

#: The eight kinds, in the seed table's order.
KINDS: tuple[type[Hook], ...] = (
    Kprobe, Kretprobe, Tracepoint, RawTracepoint, Xdp, Uprobe, Uretprobe, RawSocket,
)

__all__ = [
    "KINDS",
    "Address",
    "FileOffset",
    "Hook",
    "InterfaceResolution",
    "Kprobe",
    "KprobeResolution",
    "Kretprobe",
    "Link",
    "LinkGroup",
    "Program",
    "RawSocket",
    "RawTracepoint",
    "RawTracepointResolution",
    "Resolution",
    "Symbol",
    "Tracepoint",
    "TracepointResolution",
    "Uprobe",
    "UprobeResolution",
    "Uretprobe",
    "Xdp",
    "XdpMode",
]
