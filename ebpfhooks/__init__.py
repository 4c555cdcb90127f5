"""ebpfhooks: every eBPF hook kind as a typed, checked, owned object, over bcc.

>>> import ebpfhooks
>>> hook = ebpfhooks.from_spec("tracepoint:syscalls:sys_enter_openat")
>>> hook.stable, hook.bcc_entry
(True, 'attach_tracepoint')

Attaching (root, bcc from the distribution)::

    from bcc import BPF
    prog = ebpfhooks.Program(BPF(text=SOURCE), "on_readline")
    with ebpfhooks.Hook.from_spec("uprobe:/bin/bash:readline").attach(prog) as link:
        ...

``import ebpfhooks`` is cheap: it imports neither bcc nor the hook modules; the
public names below are loaded on first use.
"""

from __future__ import annotations

from ebpfhooks.errors import (
    AddressNotExecutableError,
    AmbiguousSymbolError,
    AttachError,
    BccNotFoundError,
    BinaryNotFoundError,
    BtfFormatError,
    EbpfHooksError,
    HookNotFoundError,
    HookPermissionError,
    ImportedSymbolError,
    InterfaceNotFoundError,
    IpCommandError,
    KallsymsFormatError,
    LdCacheFormatError,
    LibraryNotFoundError,
    NotAnElfError,
    NotSupportedError,
    OffsetOutOfRangeError,
    ProcessNotFoundError,
    ProgramError,
    ProgramTypeError,
    SpecError,
    SymbolNotFoundError,
    TracefsFormatError,
    TracefsNotMountedError,
    TracepointNotFoundError,
    UsdtProbeNotFoundError,
    WrongArchitectureError,
)

# typing is not imported at run time (~8 ms with what it pulls in; `ebpfhooks list` must
# start faster than `bpftrace -l`); mypy reads the TYPE_CHECKING blocks as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ebpfhooks.chain import (
        Alternative,
        Choice,
        FirstOf,
        NoAlternativeError,
        attach_all,
        first_of,
    )
    from ebpfhooks.discover import (
        Candidate,
        HookInfo,
        HookSet,
        Listing,
        Suggestion,
        expand,
        info,
        kallsyms,
        list_hooks,
        search,
        suggest,
    )
    from ebpfhooks.doctor import features
    from ebpfhooks.elf.resolve import UserTarget
    from ebpfhooks.hooks import (
        KINDS,
        Address,
        FileOffset,
        Hook,
        InterfaceResolution,
        Kprobe,
        KprobeResolution,
        Kretprobe,
        RawSocket,
        RawTracepoint,
        RawTracepointResolution,
        Resolution,
        Symbol,
        Tracepoint,
        TracepointResolution,
        Uprobe,
        UprobeResolution,
        Uretprobe,
        Usdt,
        UsdtResolution,
        Xdp,
        XdpMode,
    )
    from ebpfhooks.hooks import parse as from_spec
    from ebpfhooks.hooks._btfprog import BtfResolution
    from ebpfhooks.hooks.fentry import Fentry, Fexit
    from ebpfhooks.hooks.link import Link, LinkGroup, Program
    from ebpfhooks.hooks.lsm import Lsm
    from ebpfhooks.hooks.perf import Hardware, Interval, PerfEventResolution, Profile, Software
    from ebpfhooks.hooks.tpbtf import TpBtf
    from ebpfhooks.hooks.usdt import usdt_args
    from ebpfhooks.kernel.features import Feature, FeatureStatus
    from ebpfhooks.kernel.kallsyms import KSym
    from ebpfhooks.trace import HookCount, TraceSummary

__version__ = "0.1.0.dev0"

#: Public name -> (module, attribute) for names loaded on first use.
_LAZY: dict[str, tuple[str, str]] = {
    **{name: ("ebpfhooks.hooks", name) for name in (
        "KINDS", "Address", "FileOffset", "Hook", "InterfaceResolution", "Kprobe",
        "KprobeResolution", "Kretprobe", "RawSocket", "RawTracepoint",
        "RawTracepointResolution", "Resolution", "Symbol", "Tracepoint",
        "TracepointResolution", "Uprobe", "UprobeResolution", "Uretprobe", "Usdt",
        "UsdtResolution", "Xdp", "XdpMode",
    )},
    "usdt_args": ("ebpfhooks.hooks.usdt", "usdt_args"),
    **{name: ("ebpfhooks.hooks.link", name) for name in ("Link", "LinkGroup", "Program")},
    **{name: ("ebpfhooks.hooks.perf", name) for name in (
        "Hardware", "Interval", "PerfEventResolution", "Profile", "Software")},
    **{name: ("ebpfhooks.hooks", name) for name in (
        "BtfResolution", "Fentry", "Fexit", "Lsm", "TpBtf")},
    "from_spec": ("ebpfhooks.hooks", "parse"),
    **{name: ("ebpfhooks.chain", name) for name in (
        "Alternative", "Choice", "FirstOf", "NoAlternativeError", "attach_all", "first_of",
    )},
    **{name: ("ebpfhooks.discover", name) for name in (
        "Candidate", "HookInfo", "HookSet", "Listing", "Suggestion", "expand", "info",
        "kallsyms", "list_hooks", "search", "suggest",
    )},
    "features": ("ebpfhooks.doctor", "features"),
    "Feature": ("ebpfhooks.kernel.features", "Feature"),
    "FeatureStatus": ("ebpfhooks.kernel.features", "FeatureStatus"),
    "KSym": ("ebpfhooks.kernel.kallsyms", "KSym"),
    "UserTarget": ("ebpfhooks.elf.resolve", "UserTarget"),
    "HookCount": ("ebpfhooks.trace", "HookCount"),
    "TraceSummary": ("ebpfhooks.trace", "TraceSummary"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ebpfhooks' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "KINDS",
    "Address",
    "AddressNotExecutableError",
    "Alternative",
    "AmbiguousSymbolError",
    "AttachError",
    "BccNotFoundError",
    "BinaryNotFoundError",
    "BtfFormatError",
    "BtfResolution",
    "Candidate",
    "Choice",
    "EbpfHooksError",
    "Feature",
    "FeatureStatus",
    "Fentry",
    "Fexit",
    "FileOffset",
    "FirstOf",
    "Hardware",
    "Hook",
    "HookCount",
    "HookInfo",
    "HookNotFoundError",
    "HookPermissionError",
    "HookSet",
    "ImportedSymbolError",
    "InterfaceNotFoundError",
    "InterfaceResolution",
    "Interval",
    "IpCommandError",
    "KSym",
    "KallsymsFormatError",
    "Kprobe",
    "KprobeResolution",
    "Kretprobe",
    "LdCacheFormatError",
    "LibraryNotFoundError",
    "Link",
    "LinkGroup",
    "Listing",
    "Lsm",
    "NoAlternativeError",
    "NotAnElfError",
    "NotSupportedError",
    "OffsetOutOfRangeError",
    "PerfEventResolution",
    "ProcessNotFoundError",
    "Profile",
    "Program",
    "ProgramError",
    "ProgramTypeError",
    "RawSocket",
    "RawTracepoint",
    "RawTracepointResolution",
    "Resolution",
    "Software",
    "SpecError",
    "Suggestion",
    "Symbol",
    "SymbolNotFoundError",
    "TpBtf",
    "TraceSummary",
    "TracefsFormatError",
    "TracefsNotMountedError",
    "Tracepoint",
    "TracepointNotFoundError",
    "TracepointResolution",
    "Uprobe",
    "UprobeResolution",
    "Uretprobe",
    "Usdt",
    "UsdtProbeNotFoundError",
    "UsdtResolution",
    "UserTarget",
    "WrongArchitectureError",
    "Xdp",
    "XdpMode",
    "__version__",
    "attach_all",
    "expand",
    "features",
    "first_of",
    "from_spec",
    "info",
    "kallsyms",
    "list_hooks",
    "search",
    "suggest",
    "usdt_args",
]
