"""The error hierarchy of ebpfhooks.

Every error raised by the library is an :class:`EbpfHooksError` and also the
builtin exception it refines, so callers can catch either::

    try:
        ebpfhooks.from_spec("kprob:vfs_read")
    except ValueError as err:        # SpecError is a ValueError
        print(err)

Each error names the input, what was expected and what to do about it.
The cause (a bcc exception, an ``OSError``) is chained with ``from``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AddressNotExecutableError",
    "AmbiguousSymbolError",
    "AttachError",
    "BccNotFoundError",
    "BinaryNotFoundError",
    "BtfFormatError",
    "EbpfHooksError",
    "HookNotFoundError",
    "HookPermissionError",
    "ImportedSymbolError",
    "InterfaceNotFoundError",
    "IpCommandError",
    "KallsymsFormatError",
    "LdCacheFormatError",
    "LibraryNotFoundError",
    "NotAnElfError",
    "NotSupportedError",
    "OffsetOutOfRangeError",
    "ProcessNotFoundError",
    "ProgramError",
    "ProgramTypeError",
    "SpecError",
    "SymbolNotFoundError",
    "TracefsFormatError",
    "TracefsNotMountedError",
    "TracepointNotFoundError",
    "UsdtProbeNotFoundError",
    "WrongArchitectureError",
]


class EbpfHooksError(Exception):
    """Base class of every error ebpfhooks raises."""


class SpecError(EbpfHooksError, ValueError):
    """A hook spec or hook field that cannot be parsed or is not valid.

    ``spec`` is the text, ``column`` the 0-based column of the problem (or
    ``None`` when the whole value is at fault), ``length`` how many characters
    the marker covers and ``expected`` what should have been there.

    >>> err = SpecError.at("kprob:vfs_read", 0, 5, "unknown kind 'kprob'", "did you mean 'kprobe'?")
    >>> print(err)
    invalid hook spec: unknown kind 'kprob'
        kprob:vfs_read
        ^~~~~
    did you mean 'kprobe'?
    """

    def __init__(
        self,
        message: str,
        *,
        spec: str | None = None,
        column: int | None = None,
        length: int = 1,
        hint: str | None = None,
    ) -> None:
        self.reason = message
        self.spec = spec
        self.column = column
        self.length = max(1, length)
        self.hint = hint
        super().__init__(self._render())

    @classmethod
    def at(
        cls, spec: str, column: int, length: int, message: str, hint: str | None = None
    ) -> SpecError:
        """Build an error pointing at ``spec[column:column+length]``."""
        return cls(message, spec=spec, column=column, length=length, hint=hint)

    def _render(self) -> str:
        lines = [f"invalid hook spec: {self.reason}"]
        if self.spec is not None:
            shown = _printable(self.spec)
            lines.append(f"    {shown}")
            if self.column is not None:
                col = len(_printable(self.spec[: self.column]))
                width = len(_printable(self.spec[self.column : self.column + self.length])) or 1
                lines.append("    " + " " * col + "^" + "~" * (width - 1))
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


def _printable(text: str) -> str:
    """Escape control characters so a hostile spec cannot garble the message."""
    shown = text if len(text) <= 200 else text[:200] + "..."
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in shown)


class HookNotFoundError(EbpfHooksError, LookupError):
    """The hook's target does not exist on this system.

    ``name`` is what was looked up, ``candidates`` the closest names that do
    exist (best first), ``where`` the place searched.
    """

    what = "target"

    def __init__(
        self,
        name: str,
        *,
        where: str,
        candidates: Sequence[str] = (),
        hint: str | None = None,
    ) -> None:
        self.name = name
        self.where = where
        self.candidates = tuple(candidates)
        self.hint = hint
        msg = f"{self.what} {_printable(name)!r} not found in {where}"
        if self.candidates:
            msg += "; closest: " + ", ".join(self.candidates[:5])
        if hint:
            msg += f"\n{hint}"
        super().__init__(msg)

    def __str__(self) -> str:  # LookupError subclasses (KeyError) quote args; we do not
        return str(self.args[0])


class SymbolNotFoundError(HookNotFoundError):
    """A kernel or user-space symbol that is not there."""

    what = "symbol"


class TracepointNotFoundError(HookNotFoundError):
    """A tracepoint (``category:event``) not present in tracefs."""

    what = "tracepoint"


class InterfaceNotFoundError(HookNotFoundError):
    """A network interface that does not exist."""

    what = "network interface"


class BinaryNotFoundError(HookNotFoundError):
    """A uprobe target file that does not exist (or is a directory)."""

    what = "binary"


class LibraryNotFoundError(HookNotFoundError):
    """A library name that nothing on the system (ld.so.cache, the process maps) provides."""

    what = "library"


class ProcessNotFoundError(HookNotFoundError):
    """A pid that does not exist."""

    what = "process"


class UsdtProbeNotFoundError(HookNotFoundError):
    """A USDT probe (``PROVIDER:NAME``) that the file's ``.note.stapsdt`` notes do not have."""

    what = "USDT probe"


class AmbiguousSymbolError(EbpfHooksError, LookupError):
    """Two different strong definitions of one symbol name in one file."""


class ImportedSymbolError(EbpfHooksError, LookupError):
    """The symbol is only imported (undefined) in this file; it lives in a library."""


class NotAnElfError(EbpfHooksError, ValueError):
    """The uprobe target is not an ELF file."""


class WrongArchitectureError(EbpfHooksError, ValueError):
    """The uprobe target is an ELF file for another machine."""


class NotSupportedError(EbpfHooksError, RuntimeError):
    """The running kernel (or machine) cannot do this.

    ``missing`` says what the kernel lacks and ``alternative`` is a hook spec
    that works instead, when one exists.
    """

    def __init__(self, message: str, *, missing: str = "", alternative: str | None = None) -> None:
        self.missing = missing
        self.alternative = alternative
        full = message
        if alternative:
            full += f"\nuse the stable alternative instead: {alternative}"
        super().__init__(full)


class TracefsNotMountedError(NotSupportedError):
    """tracefs (and debugfs) are not mounted."""


class HookPermissionError(EbpfHooksError, PermissionError):
    """Not allowed: ``capability`` names what is needed (for example CAP_BPF)."""

    def __init__(self, message: str, *, capability: str) -> None:
        self.capability = capability
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class AttachError(EbpfHooksError, OSError):
    """The kernel or bcc refused the attach (or detach); ``errno`` says why when known."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno

    def __str__(self) -> str:
        return str(self.args[0])


class ProgramError(EbpfHooksError, LookupError):
    """The BPF program: unknown function name, wrong program type, failed to load."""

    def __str__(self) -> str:
        return str(self.args[0])


class ProgramTypeError(ProgramError, TypeError):
    """What was passed as the program is not one: neither a bcc ``BPF`` module nor a
    :class:`ebpfhooks.Program` (``None``, a C source string, ...).

    >>> isinstance(ProgramTypeError("x"), TypeError)
    True
    """


class BccNotFoundError(EbpfHooksError, ImportError):
    """bcc's Python module cannot be imported."""


class OffsetOutOfRangeError(EbpfHooksError, ValueError):
    """``sym+off`` with ``off`` negative or not inside the symbol's size."""


class AddressNotExecutableError(EbpfHooksError, ValueError):
    """An address or file offset outside every executable PT_LOAD segment of the file."""


class LdCacheFormatError(EbpfHooksError, ValueError):
    """``/etc/ld.so.cache`` bytes that are not a (complete) ld.so.cache.

    >>> str(LdCacheFormatError("ld.so.cache: truncated"))
    'ld.so.cache: truncated'
    """


class BtfFormatError(EbpfHooksError, ValueError):
    """BTF bytes (``/sys/kernel/btf/vmlinux``) that are not complete, well-formed BTF.

    >>> str(BtfFormatError("bad magic 0000 (expected 0xeB9F)"))
    'BTF: bad magic 0000 (expected 0xeB9F)'
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"BTF: {message}")


class TracefsFormatError(EbpfHooksError, ValueError):
    """Text from tracefs (a ``format`` file, ``available_events``) that cannot be parsed.

    ``source`` names what was parsed and ``line`` the 1-based line at fault (or ``None``).

    >>> str(TracefsFormatError("expected 'ID: N'", source="format", line=2))
    "format, line 2: expected 'ID: N'"
    """

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = source if line is None else f"{source}, line {line}"
        super().__init__(f"{where}: {message}")


class KallsymsFormatError(EbpfHooksError, ValueError):
    """A line of kallsyms text that is not ``ADDRESS TYPE NAME [\\t[MODULE]]``.

    >>> KallsymsFormatError("expected a hexadecimal address", line=1).line
    1
    """

    def __init__(self, message: str, *, line: int) -> None:
        self.line = line
        super().__init__(f"kallsyms line {line}: {message}")


class IpCommandError(EbpfHooksError, OSError):
    """``ip`` (iproute2) is missing or printed something that is not its JSON.

    >>> str(IpCommandError("ip failed"))
    'ip failed'
    """

    def __str__(self) -> str:
        return str(self.args[0])
