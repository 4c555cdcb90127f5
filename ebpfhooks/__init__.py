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

``import ebpfhooks`` does not import bcc; bcc is loaded on the first attach.
"""

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
from ebpfhooks.hooks import (
    KINDS,
    Address,
    FileOffset,
    Hook,
    Kprobe,
    Kretprobe,
    Link,
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

__all__ = [
    "KINDS",
    "Address",
    "AmbiguousSymbolError",
    "AttachError",
    "BccNotFoundError",
    "BinaryNotFoundError",
    "EbpfHooksError",
    "FileOffset",
    "Hook",
    "HookNotFoundError",
    "HookPermissionError",
    "ImportedSymbolError",
    "InterfaceNotFoundError",
    "Kprobe",
    "Kretprobe",
    "LibraryNotFoundError",
    "Link",
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
    "from_spec",
]
