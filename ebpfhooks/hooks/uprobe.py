"""User-space function probes: :class:`Uprobe` (entry) and :class:`Uretprobe` (return).

Where in the file is a tagged union, not keyword bundles: a :class:`Symbol` (with an
offset into it), an ELF virtual :class:`Address` (as ``nm`` prints it, the bcc and
bpftrace meaning of ``0x...``), or a raw :class:`FileOffset` (libbpf's meaning).
ebpfhooks resolves the file and the offset itself (:mod:`ebpfhooks.elf`) and hands the
kernel exactly what :meth:`UserProbeHook.resolve` reports.
"""

from __future__ import annotations

from collections.abc import Sequence

from ebpfhooks import caps
from ebpfhooks.errors import EbpfHooksError, SpecError
from ebpfhooks.hooks.base import Found, Hook, Pattern, Resolution, Value, non_negative, text_field
from ebpfhooks.names import check_path, check_user_symbol

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any, ClassVar, Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.elf.resolve import UserTarget
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.spec import Body

__all__ = [
    "Address",
    "FileOffset",
    "Location",
    "Symbol",
    "Uprobe",
    "UprobeResolution",
    "Uretprobe",
    "UserProbeHook",
    "parse_location",
]


class Symbol(Value):
    """A function symbol, optionally versioned, plus an offset into it.

    >>> str(Symbol("malloc"))
    'malloc'
    >>> str(Symbol("readline", 4))
    'readline+0x4'
    """

    __slots__ = ("name", "offset")
    _fields = ("name", "offset")
    name: str
    offset: int

    def __init__(self, name: str, offset: int = 0) -> None:
        self._init(name=text_field(name, check_user_symbol, "symbol"),
                   offset=non_negative(offset, "symbol offset"))

    def __str__(self) -> str:
        return self.name + (f"+{self.offset:#x}" if self.offset else "")


class Address(Value):
    """An ELF virtual address, as ``nm``/``readelf -s`` print it (PIE or not).

    >>> str(Address(0x1139))
    '0x1139'
    """

    __slots__ = ("vaddr",)
    _fields = ("vaddr",)
    vaddr: int

    def __init__(self, vaddr: int) -> None:
        self._init(vaddr=non_negative(vaddr, "virtual address"))

    def __str__(self) -> str:
        return f"{self.vaddr:#x}"


class FileOffset(Value):
    """A raw offset in the file (libbpf's ``uprobe/PATH:0x...``), passed to the kernel as is.

    >>> str(FileOffset(0x1139))
    'file_offset=0x1139'
    """

    __slots__ = ("offset",)
    _fields = ("offset",)
    offset: int

    def __init__(self, offset: int) -> None:
        self._init(offset=non_negative(offset, "file offset"))

    def __str__(self) -> str:
        return f"file_offset={self.offset:#x}"


Location = Symbol | Address | FileOffset


def _location(body: Body, start: int, end: int) -> Location:
    """``symbol[+offset]``, ``0xVADDR``/``VADDR`` or ``file_offset=N`` in the spec's
    ``start:end``; a number in libbpf's spelling is a file offset."""
    t = body.t
    loc_text = t.text[start:end]
    if loc_text.startswith("file_offset="):
        vstart = start + len("file_offset=")
        return FileOffset(t.number(vstart, end, "file offset"))
    if loc_text[:1].isdigit():
        value = t.number(start, end, "address")
        # libbpf's raw offsets are file offsets; bpftrace's and bcc's are virtual addresses
        return FileOffset(value) if body.libbpf else Address(value)
    name_end, offset, _ = t.split_offset(start, end)
    return Symbol(t.name(start, name_end, check_user_symbol), offset)


def parse_location(text: str) -> Location:
    """Parse a uprobe location as a spec writes it (what ``Uprobe(binary, "...")`` takes).

    >>> parse_location("readline+4")
    Symbol(name='readline', offset=4)
    >>> parse_location("0x1139"), parse_location("file_offset=0x1139")
    (Address(vaddr=4409), FileOffset(offset=4409))

    Raises :class:`SpecError` with a caret under the bad column.
    """
    from ebpfhooks.spec import Body, SpecText

    if not text:
        raise SpecError("empty uprobe location", hint="expected SYMBOL[+OFFSET], 0xVADDR or "
                        "file_offset=N, e.g. 'readline' or 'readline+4'")
    return _location(Body(SpecText(text), 0, len(text), ""), 0, len(text))


def _as_location(value: object) -> Location:
    """What a uprobe location may be: see :class:`UserProbeHook`."""
    if isinstance(value, (Symbol, Address, FileOffset)):
        return value
    if isinstance(value, str):
        return parse_location(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Address(value)
    raise SpecError(
        f"uprobe location must be a Symbol, Address or FileOffset, a str as a spec writes "
        f"it ('readline', 'readline+4', '0x1139', 'file_offset=0x1139') or an int (a "
        f"virtual address), got {type(value).__name__} {value!r}"
    )


def _pid(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 1 << 22:
        raise SpecError(f"pid must be a positive int (at most 4194303), got {value!r}")
    return value


class UprobeResolution(Resolution):
    """The file and offset the kernel will probe; ``target`` has every ELF fact."""

    __slots__ = ("target",)
    _fields = ("hook", "note", "target")
    target: UserTarget

    def __init__(self, hook: Hook, *, target: UserTarget, note: str | None = None) -> None:
        self._init(hook=hook, note=note, target=target)

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

    __slots__ = ("binary", "location", "pid")
    _fields = ("binary", "location", "pid")
    binary: str
    location: Location
    pid: int | None

    options = ("pid",)
    example = "/bin/bash:readline"
    target_noun = "user-space function"
    target_shape = "BINARY:SYMBOL"
    libbpf_bare = True
    by_path = True
    hooks = "user-space function"
    attach_via = ("perf_event_open on the uprobe PMU + PERF_EVENT_IOC_SET_BPF, ebpfhooks' "
                  "own (libbcc's bpf_attach_uprobe where that is refused); in a group, the "
                  "uprobes on one file are one uprobe_multi link (BPF_LINK_CREATE, 6.6+)")
    stable = False
    overhead = "very low"
    min_kernel = (4, 3)
    program_type = "KPROBE"
    program_ctx = "struct pt_regs *ctx"
    feature = "uprobes"
    capabilities = caps.TRACING
    is_return: ClassVar[bool] = False

    def __init__(self, binary: str, location: Location | str | int, *,
                 pid: int | None = None) -> None:
        self._init(binary=text_field(binary, check_path, "binary"),
                   location=_as_location(location), pid=_pid(pid))
        if self.is_return and isinstance(self.location, Symbol) and self.location.offset:
            raise SpecError(
                "offset not allowed on a uretprobe: a return probe fires at the function's "
                f"return, not inside it; use uretprobe:{self.binary}:{self.location.name} "
                f"or uprobe:{self.binary}:{self.location}",
            )

    def _target_names(self) -> tuple[str, str] | None:
        if not isinstance(self.location, Symbol):
            return None
        name = self.location.name.split("@", 1)[0]  # malloc@@GLIBC_2.2.5 -> malloc
        return name, name

    def spec(self) -> str:
        """``KIND:BINARY:LOCATION[[pid=N]]``."""
        pid = f"[pid={self.pid}]" if self.pid else ""
        return f"{self.kind}:{self.binary}:{self.location}{pid}"

    # -- grammar and listing ---------------------------------------------------------

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``binary ":" location`` (``options: pid=N``); the binary is everything up to
        the last ``:`` (libbpf: ``uprobe//usr/bin/python3:main``); see :func:`parse_location`.
        In a pattern the location is a symbol pattern and a wildcard in the binary needs
        an absolute path (a glob)."""
        from ebpfhooks.spec import has_wildcard

        t = body.t
        start, end = body.start, body.end
        colon = body.rfind(":")
        if colon == -1:
            raise body.error(end, end + 1, "missing ':SYMBOL' after the binary",
                             f"expected {cls.kind}:BINARY:SYMBOL, e.g. {cls.kind}:{cls.example}")
        binary = t.name(start, colon, check_path)
        loc_start = colon + 1
        if loc_start >= end:
            raise body.error(loc_start, loc_start + 1,
                             "missing symbol or address after the binary")
        if body.pattern:
            if has_wildcard(binary) and not binary.startswith("/"):
                raise body.error(start, colon, "a wildcard in the binary needs an absolute path",
                                 f"e.g. {cls.kind}:/usr/lib/x86_64-linux-gnu/libc.so*:malloc")
            return Pattern(cls, binary=binary, symbol=t.name(loc_start, end, check_user_symbol))
        location = _location(body, loc_start, end)
        if cls.is_return and isinstance(location, Symbol) and location.offset:
            off_at = body.find("+", loc_start)
            raise body.error(off_at, end, "offset not allowed on a uretprobe",
                             "a return probe fires when the function returns; "
                             f"use uprobe:{binary}:{t.text[loc_start:end]} for an offset")
        pid = body.options.get("pid")
        if pid is not None and not 0 < pid < 1 << 22:
            raise body.error(end, len(t.text), f"pid {pid} is out of range",
                             "expected 1..4194303")
        return cls(binary, location, pid=pid)

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """The binary's ELF function symbols (``.dynsym``, ``.symtab``, a debug file);
        a glob binary lists every ELF file it matches."""
        import glob
        import os
        from pathlib import Path

        from ebpfhooks.elf.resolve import function_symbols, resolve_binary
        from ebpfhooks.spec import has_wildcard, matcher

        binary, sym = pattern["binary"], pattern["symbol"]
        assert binary is not None and sym is not None
        if has_wildcard(binary):
            paths = [(p, Path(p)) for p in sorted(glob.glob(binary)) if os.path.isfile(p)]
        else:
            paths = [(binary, resolve_binary(binary))]
        ok = matcher(sym)
        assert ok is not None
        for shown, path in paths:
            try:
                symbols = function_symbols(path)
            except EbpfHooksError:
                if len(paths) == 1:
                    raise
                continue  # a glob may catch files that are not ELF
            for s in symbols:
                if ok(s.name) and check_user_symbol(s.name) is None:
                    found.add(f"{cls.kind}:{shown}:{s.name}", cls, shown, Symbol(s.name))
        found.sources[cls.kind] = "the binary's ELF symbol tables (.dynsym, .symtab, debug file)"

    # -- against the running system --------------------------------------------------

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` when the kernel has no uprobes."""
        self._require("uprobe support", "CONFIG_UPROBE_EVENTS")

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
                locations = [hooks[i].location for i in idxs]  # type: ignore[attr-defined]
                targets = resolve_symbols(path, [(loc.name, loc.offset) for loc in locations])
            except EbpfHooksError as err:
                for i in idxs:
                    out[i] = err
                continue
            for i, target in zip(idxs, targets, strict=True):
                out[i] = (target if isinstance(target, Exception) else
                          UprobeResolution(hooks[i], target=target, note=target.note))
        assert all(r is not None for r in out)
        return out  # type: ignore[return-value]  # every None was replaced

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """File, symbol, virtual address, file offset, size, binding, type, version."""
        t = self.resolve().target
        facts.update({"file": str(t.path), "symbol": t.symbol, "version": t.version,
                      "vaddr": t.vaddr, "file_offset": t.file_offset, "offset": t.offset,
                      "size": t.size, "binding": t.binding, "type": t.type, "ifunc": t.ifunc,
                      "note": t.note, "pid": self.pid})
        text.append(f"    file: {t.path}")
        text.append(f"    symbol: {t.symbol or '-'}" + (f"@{t.version}" if t.version else "")
                    + (f" +{t.offset:#x}" if t.offset else ""))
        text.append(f"    virtual address: {t.vaddr:#x}   file offset: {t.file_offset:#x}   "
                    f"size: {t.size}")
        text.append(f"    binding: {t.binding or '-'}   type: {t.type or '-'}   "
                    f"version: {t.version or '-'}")
        if t.note:
            text.append(f"    note: {t.note}")

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import _bcc

        assert isinstance(resolution, UprobeResolution)
        return _bcc.attach_uprobe(
            program.bpf,
            program.fn_name,
            str(resolution.path),
            resolution.file_offset,
            pid=self.pid,
            ret=self.is_return,
            what=str(self),
        )

    # -- many at once (LinkGroup.attach_all) ------------------------------------------

    def _batch_key(self, resolution: Resolution) -> tuple[object, ...]:
        """Hooks of one group that can share one attach: the same kind (entry or return),
        file and pid (the group adds: the same program)."""
        assert isinstance(resolution, UprobeResolution)
        return (type(self), str(resolution.path), self.pid)

    @classmethod
    def _attach_batch(cls, program: Program, hooks: Sequence[Hook],
                      resolutions: Sequence[Resolution], cookies: Sequence[int],
                      fatal: Callable[[Exception], bool]) -> list[Any]:
        """Attach ``program`` to hooks of one :meth:`_batch_key`, ``cookies[i]`` for hook
        ``i``: one uprobe_multi link where the kernel has them (6.6+), else a perf event
        each (:func:`ebpfhooks._bcc.attach_uprobe_batch`). Each hook gets
        ``(Attachment, cookie or None)`` or its error."""
        from ebpfhooks import _bcc

        first = hooks[0]
        assert isinstance(first, UserProbeHook)
        offsets = []
        for res in resolutions:
            assert isinstance(res, UprobeResolution)
            offsets.append(res.file_offset)
        path = str(resolutions[0].path)  # type: ignore[attr-defined]
        return list(_bcc.attach_uprobe_batch(
            program.bpf, program.fn_name, path, offsets, list(cookies), pid=first.pid,
            ret=cls.is_return, whats=[str(h) for h in hooks], fatal=fatal))


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

    __slots__ = ()
    kind = "uprobe"
    bcc_prefix = "uprobe"
    aliases = ("u",)
    libbpf = ()
    fires = "at the start of a user-space function call"
    bcc_entry = "attach_uprobe"


class Uretprobe(UserProbeHook):
    """User function return: ``uretprobe:BINARY:SYMBOL`` (no offset).

    >>> str(Uretprobe("/bin/bash", "readline"))
    'uretprobe:/bin/bash:readline'

    Fires when the function returns; ``PT_REGS_RC(ctx)`` is its return value.
    Minimum kernel 4.3.
    """

    __slots__ = ()
    kind = "uretprobe"
    bcc_prefix = "uretprobe"
    aliases = ("ur",)
    libbpf = ()
    fires = "when a user-space function returns"
    bcc_entry = "attach_uretprobe"
    is_return = True
