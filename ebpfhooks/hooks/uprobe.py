"""User-space function probes: :class:`Uprobe` (entry) and :class:`Uretprobe` (return).

Where in the file is a tagged union, not keyword bundles: a :class:`Symbol`
(with an offset into it), an ELF virtual :class:`Address` (as ``nm`` prints
it, the bcc and bpftrace meaning of ``0x...``), or a raw :class:`FileOffset`
(libbpf's meaning). ebpfhooks resolves the file and the offset itself and
hands the kernel exactly what :meth:`UserProbeHook.resolve` reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

import attrs

from ebpfhooks import _bcc
from ebpfhooks.errors import EbpfHooksError, SpecError
from ebpfhooks.hooks._fields import non_negative, validated
from ebpfhooks.hooks.base import Hook, Program, Resolution
from ebpfhooks.names import check_path, check_user_symbol

if TYPE_CHECKING:
    from ebpfhooks.elf.resolve import UserTarget

__all__ = [
    "Address",
    "FileOffset",
    "Location",
    "Symbol",
    "Uprobe",
    "UprobeResolution",
    "Uretprobe",
    "UserProbeHook",
]


@attrs.frozen
class Symbol:
    """A function symbol, optionally versioned, plus an offset into it.

    >>> str(Symbol("malloc"))
    'malloc'
    >>> str(Symbol("readline", 4))
    'readline+0x4'
    """

    name: str = attrs.field(validator=validated(check_user_symbol, "symbol"))
    offset: int = attrs.field(default=0, validator=non_negative("symbol offset"))

    def __str__(self) -> str:
        return self.name + (f"+{self.offset:#x}" if self.offset else "")


@attrs.frozen
class Address:
    """An ELF virtual address, as ``nm``/``readelf -s`` print it (PIE or not).

    >>> str(Address(0x1139))
    '0x1139'
    """

    vaddr: int = attrs.field(validator=non_negative("virtual address"))

    def __str__(self) -> str:
        return f"{self.vaddr:#x}"


@attrs.frozen
class FileOffset:
    """A raw offset in the file (libbpf's ``uprobe/PATH:0x...``), passed to the kernel as is.

    >>> str(FileOffset(0x1139))
    'file_offset=0x1139'
    """

    offset: int = attrs.field(validator=non_negative("file offset"))

    def __str__(self) -> str:
        return f"file_offset={self.offset:#x}"


Location = Symbol | Address | FileOffset


def _location(value: object) -> Location:
    """What a uprobe location may be: see :class:`UserProbeHook`."""
    if isinstance(value, (Symbol, Address, FileOffset)):
        return value
    if isinstance(value, str):
        from ebpfhooks.spec import parse_location

        return parse_location(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Address(value)
    raise SpecError(
        f"uprobe location must be a Symbol, Address or FileOffset, a str as a spec writes "
        f"it ('readline', 'readline+4', '0x1139', 'file_offset=0x1139') or an int (a "
        f"virtual address), got {type(value).__name__} {value!r}"
    )


def _pid(_inst: object, _attr: object, value: int | None) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 1 << 22:
        raise SpecError(f"pid must be a positive int (at most 4194303), got {value!r}")


@attrs.frozen
class UprobeResolution(Resolution):
    """The file and offset the kernel will probe; ``target`` has every ELF fact."""

    target: UserTarget = attrs.field(kw_only=True)

    @property
    def path(self) -> Path:
        """The real file probed (symlinks resolved)."""
        return self.target.path

    @property
    def file_offset(self) -> int:
        """What the kernel gets: the offset in :attr:`path`."""
        return self.target.file_offset

    @property
    def vaddr(self) -> int:
        """The ELF virtual address probed (as ``nm`` prints it), symbol offset included."""
        return self.target.vaddr

    def describe(self) -> str:
        return f"{self.hook} -> {self.target}"


@attrs.frozen
class UserProbeHook(Hook):
    """A probe on a user-space function: the shared half of uprobe and uretprobe.

    ``binary`` is a path, an executable name found on ``PATH``, or a library
    name (``c``, ``libc``, ``libc.so.6``); with ``pid`` the library mapped in
    that process, and only that process's hits fire. Minimum kernel 4.3.

    ``location`` is where in the file:

    - a :class:`Symbol` (``Symbol("readline", 4)``), or a ``str`` as a spec writes it:
      ``"readline"``, ``"readline+4"``, ``"malloc@@GLIBC_2.2.5"``;
    - an :class:`Address`, an ELF virtual address as ``nm`` prints it, or an ``int``, or
      the ``str`` ``"0x1139"``;
    - a :class:`FileOffset`, a raw offset in the file (libbpf's meaning), or the ``str``
      ``"file_offset=0x1139"``.

    >>> Uprobe("/bin/bash", "readline+4").location
    Symbol(name='readline', offset=4)
    """

    binary: str = attrs.field(validator=validated(check_path, "binary"))
    location: Location = attrs.field(converter=_location)
    pid: int | None = attrs.field(default=None, kw_only=True, validator=_pid)

    hooks = "user-space function"
    stable = False
    overhead = "very low"
    min_kernel = (4, 3)
    program_type = "KPROBE"
    is_return: ClassVar[bool] = False

    def spec(self) -> str:
        """``KIND:BINARY:LOCATION[[pid=N]]``."""
        pid = f"[pid={self.pid}]" if self.pid else ""
        return f"{self.kind}:{self.binary}:{self.location}{pid}"

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` when the kernel has no uprobes."""
        self._require("uprobes", "uprobe support", "CONFIG_UPROBE_EVENTS")

    def resolve(self) -> UprobeResolution:
        """Find the file and the file offset to probe.

        >>> Uprobe("/bin/bash", "readline").resolve()          # doctest: +SKIP

        Raises :class:`ebpfhooks.BinaryNotFoundError`,
        :class:`ebpfhooks.LibraryNotFoundError`, :class:`ebpfhooks.ProcessNotFoundError`,
        :class:`ebpfhooks.NotAnElfError`, :class:`ebpfhooks.SymbolNotFoundError` (with
        close matches), :class:`ebpfhooks.AmbiguousSymbolError` and
        :class:`ebpfhooks.ImportedSymbolError`.
        """
        from ebpfhooks.elf.resolve import (
            resolve_address,
            resolve_binary,
            resolve_file_offset,
            resolve_symbol,
        )

        path = resolve_binary(self.binary, self.pid)
        loc = self.location
        if isinstance(loc, Symbol):
            target = resolve_symbol(path, loc.name, loc.offset)
        elif isinstance(loc, Address):
            target = resolve_address(path, loc.vaddr)
        else:
            target = resolve_file_offset(path, loc.offset)
        return UprobeResolution(self, target=target, note=target.note)

    @classmethod
    def _resolve_batch(cls, hooks: Sequence[Hook]) -> list[Resolution | Exception]:
        """Resolve many uprobes: the binary once per (binary, pid), symbols in bulk per file.

        The same answers as ``resolve()`` one by one (a wildcard of 1,000 functions in
        one library resolves ~5x faster).
        """
        from ebpfhooks.elf.resolve import resolve_binary, resolve_symbols

        out: list[Resolution | Exception | None] = [None] * len(hooks)
        groups: dict[tuple[str, int | None], list[int]] = {}
        for i, hook in enumerate(hooks):
            assert isinstance(hook, UserProbeHook)
            if isinstance(hook.location, Symbol):
                groups.setdefault((hook.binary, hook.pid), []).append(i)
            else:
                out[i] = super()._resolve_batch([hook])[0]
        for (binary, pid), idxs in groups.items():
            try:
                path = resolve_binary(binary, pid)
                targets = resolve_symbols(path, [
                    (loc.name, loc.offset) for loc in
                    (cast(Symbol, cast(UserProbeHook, hooks[i]).location) for i in idxs)])
            except EbpfHooksError as err:
                for i in idxs:
                    out[i] = err
                continue
            for i, target in zip(idxs, targets, strict=True):
                out[i] = (target if isinstance(target, Exception) else
                          UprobeResolution(hooks[i], target=target, note=target.note))
        assert all(r is not None for r in out)
        return cast("list[Resolution | Exception]", out)

    def _attach_resolved(
        self, program: Program, resolution: Resolution
    ) -> tuple[Callable[[], None], int | None]:
        assert isinstance(resolution, UprobeResolution)
        detach = _bcc.attach_uprobe(
            program.bpf,
            program.fn_name,
            str(resolution.path),
            resolution.file_offset,
            pid=self.pid,
            ret=self.is_return,
            what=str(self),
        )
        return detach, None


@attrs.frozen
class Uprobe(UserProbeHook):
    """User function entry: ``uprobe:BINARY:SYMBOL[+OFF]`` or ``uprobe:BINARY:0xVADDR``.

    >>> hook = Uprobe("/bin/bash", "readline")
    >>> str(hook)
    'uprobe:/bin/bash:readline'
    >>> str(Uprobe("c", Symbol("malloc"), pid=1234))
    'uprobe:c:malloc[pid=1234]'

    Fires when any process (or only ``pid``) calls the function. Minimum
    kernel 4.3.
    """

    kind = "uprobe"
    fires = "at the start of a user-space function call"
    bcc_entry = "attach_uprobe"


@attrs.frozen
class Uretprobe(UserProbeHook):
    """User function return: ``uretprobe:BINARY:SYMBOL`` (no offset).

    >>> str(Uretprobe("/bin/bash", "readline"))
    'uretprobe:/bin/bash:readline'

    Fires when the function returns; ``PT_REGS_RC(ctx)`` is its return value.
    Minimum kernel 4.3.
    """

    kind = "uretprobe"
    fires = "when a user-space function returns"
    bcc_entry = "attach_uretprobe"
    is_return = True

    def __attrs_post_init__(self) -> None:
        if isinstance(self.location, Symbol) and self.location.offset:
            raise SpecError(
                "offset not allowed on a uretprobe: a return probe fires at the function's "
                f"return, not inside it; use uretprobe:{self.binary}:{self.location.name} "
                f"or uprobe:{self.binary}:{self.location}",
            )
