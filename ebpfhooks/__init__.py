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
    AmbiguousSymbolError,
    AttachError,
    BccNotFoundError,
    BinaryNotFoundError,
    EbpfHooksError,
    HookNotFoundError,
    HookPermissionError,
    ImportedSymbolError,
    InterfaceNotFoundError,
    LibraryNotFoundError,
    NotAnElfError,
    NotSupportedError,
    ProcessNotFoundError,
    ProgramError,
    SpecError,
    SymbolNotFoundError,
    TracefsNotMountedError,
    TracepointNotFoundError,
    WrongArchitectureError,
)

# typing is not imported at run time (~8 ms with what it pulls in; `ebpfhooks list` must
# start faster than `bpftrace -l`); mypy reads the TYPE_CHECKING blocks as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ebpfhooks.chain import FirstOf, NoAlternativeError, attach_all, first_of
    from ebpfhooks.discover import expand, info, kallsyms, list_hooks, suggest
    from ebpfhooks.doctor import features
    from ebpfhooks.hooks import (
        KINDS,
        Address,
        FileOffset,
        Hook,
        Kprobe,
        Kretprobe,
        Link,
        LinkGroup,
        Program,
        RawSocket,
        RawTracepoint,
        Resolution,
        Symbol,
        Tracepoint,
        Uprobe,
        Uretprobe,
        Xdp,
        XdpMode,
    )
    from ebpfhooks.spec import parse as from_spec

__version__ = "0.1.0.dev0"

#: Public name -> (module, attribute) for names loaded on first use.
_LAZY: dict[str, tuple[str, str]] = {
    **{name: ("ebpfhooks.hooks", name) for name in (
        "KINDS", "Address", "FileOffset", "Hook", "Kprobe", "Kretprobe", "Link", "LinkGroup",
        "Program", "RawSocket", "RawTracepoint", "Resolution", "Symbol", "Tracepoint",
        "Uprobe", "Uretprobe", "Xdp", "XdpMode",
    )},
    "from_spec": ("ebpfhooks.spec", "parse"),
    **{name: ("ebpfhooks.chain", name) for name in (
        "FirstOf", "NoAlternativeError", "attach_all", "first_of",
    )},
    **{name: ("ebpfhooks.discover", name) for name in (
        "expand", "info", "kallsyms", "list_hooks", "suggest",
    )},
    "features": ("ebpfhooks.doctor", "features"),
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
    "AmbiguousSymbolError",
    "AttachError",
    "BccNotFoundError",
    "BinaryNotFoundError",
    "EbpfHooksError",
    "FileOffset",
    "FirstOf",
    "Hook",
    "HookNotFoundError",
    "HookPermissionError",
    "ImportedSymbolError",
    "InterfaceNotFoundError",
    "Kprobe",
    "Kretprobe",
    "LibraryNotFoundError",
    "Link",
    "LinkGroup",
    "NoAlternativeError",
    "NotAnElfError",
    "NotSupportedError",
    "ProcessNotFoundError",
    "Program",
    "ProgramError",
    "RawSocket",
    "RawTracepoint",
    "Resolution",
    "SpecError",
    "Symbol",
    "SymbolNotFoundError",
    "TracefsNotMountedError",
    "Tracepoint",
    "TracepointNotFoundError",
    "Uprobe",
    "Uretprobe",
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
    "suggest",
]
