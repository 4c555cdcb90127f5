"""What every hook kind shares: :class:`Hook` (a frozen value), :class:`Resolution`,
:class:`Pattern`, and the field checks behind them.

Data flows one way: spec text -> :mod:`ebpfhooks.spec` (the tokenizer) -> the kind's
``parse_target`` -> a :class:`Hook` -> :meth:`Hook.resolve` asks ``kernel/`` or ``elf/``
-> a :class:`Resolution` -> :meth:`Hook.attach` hands it to the adapter -> a
:class:`ebpfhooks.Link` (:mod:`ebpfhooks.hooks.link`) owns the attachment.

This module and the kind modules are light on purpose: they import neither attrs nor bcc
nor anything that reads the system, because ``ebpfhooks list`` imports them and must
start faster than ``bpftrace -l``. Hooks are therefore hand-written frozen value
objects (:class:`Value`): equality, hash and repr over their fields, no attribute
can be set after ``__init__`` (importing attrs and generating its methods costs ~30 ms
plus ~1.5 ms per class of CPU on the project's machine).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

from ebpfhooks.errors import SpecError
from ebpfhooks.names import Problem

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Any, ClassVar, NoReturn, Self, TypeVar

    from ebpfhooks.hooks.link import Link, Program
    from ebpfhooks.spec import Body, SpecText

    H = TypeVar("H", bound="Hook")

__all__ = ["FrozenError", "Hook", "Pattern", "Resolution", "Value"]

# compiled on first use (re caches them): `ebpfhooks list` never needs them
_C_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_C_IDENT_CHARS = r"[^A-Za-z0-9_]"


class FrozenError(AttributeError):
    """Raised when a field of a frozen value (a hook, a resolution) is assigned."""


def _rebuild(cls: type[Value], values: tuple[object, ...]) -> Value:
    obj = object.__new__(cls)
    obj._init(**dict(zip(cls._fields, values, strict=True)))
    return obj


class Value:
    """A frozen value: ``_fields`` are its slots, compared, hashed and shown in order.

    >>> class Point(Value):
    ...     __slots__ = ("x", "y")
    ...     _fields = ("x", "y")
    ...     def __init__(self, x: int, y: int) -> None:
    ...         self._init(x=x, y=y)
    >>> Point(1, 2) == Point(1, 2), Point(1, 2)
    (True, Point(x=1, y=2))
    """

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def _init(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self.__class__.__name__}({shown})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise FrozenError(f"{self.__class__.__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise FrozenError(f"{self.__class__.__name__} is frozen: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Callable[..., Value], tuple[type[Value], tuple[object, ...]]]:
        return _rebuild, (self.__class__, self._values())


# --------------------------------------------------------------------------- field checks


def text_field(value: object, check: Callable[[str], Problem | None], field: str) -> str:
    """``value`` if it is a str that ``check`` accepts, else :class:`SpecError` naming ``field``.

    >>> text_field("vfs_read", lambda s: None, "kernel symbol")
    'vfs_read'
    """
    if not isinstance(value, str):
        raise SpecError(f"{field} must be a str, got {type(value).__name__} {value!r}")
    problem = check(value)
    if problem is not None:
        col, length, msg = problem
        raise SpecError(f"{field}: {msg}", spec=value, column=col, length=length)
    return value


def optional_text(value: object, check: Callable[[str], Problem | None],
                  field: str) -> str | None:
    """``None``, or what :func:`text_field` accepts."""
    return None if value is None else text_field(value, check, field)


def module_event_target(cls: type[H], body: Body, check: Callable[[str], Problem | None], *,
                        expected: str, libbpf_module: str | None = None) -> H | Pattern:
    """``[module ":"] event``, the target of the raw tracepoint family (``rawtracepoint``,
    ``tp_btf``): ``cls(event, module=...)``, or a :class:`Pattern` when ``body`` is one.

    ``expected`` is the hint for a third ``:`` part. In libbpf's spelling a ``:`` is a
    :class:`SpecError` saying ``libbpf_module`` when given, else part of the event name
    (which ``check`` then refuses).

    >>> from ebpfhooks.hooks import parse
    >>> parse("rawtracepoint:nf_tables:nft_trace").module  # doctest: +SKIP
    'nf_tables'
    """
    from ebpfhooks.names import check_module

    t = body.t
    start = body.start
    module = None
    colon = body.rfind(":")
    if colon != -1 and not (body.libbpf and libbpf_module is None):
        if body.libbpf:
            raise body.error(colon, colon + 1, str(libbpf_module),
                             f"write {cls.kind}:MODULE:EVENT")
        if body.find(":", start, colon) != -1:
            raise body.error(colon, colon + 1, "too many ':' parts", expected)
        module = t.name(start, colon, check_module)
        start = colon + 1
    event = t.name(start, body.end, check)
    if body.pattern:
        return Pattern(cls, module=module, event=event)
    return cls(event, module=module)  # type: ignore[call-arg]  # (event, *, module) in this family


def non_negative(value: object, field: str) -> int:
    """``value`` if it is an int in ``0 .. 2**63-1``, else :class:`SpecError` naming ``field``.

    >>> non_negative(16, "kprobe offset")
    16
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpecError(f"{field} must be a non-negative int, got {value!r}")
    if value >= 1 << 63:
        raise SpecError(f"{field} {value:#x} is out of range (below 2**63 expected)")
    return value


# --------------------------------------------------------------------------- resolution


class Resolution(Value):
    """What a hook resolved to on this system, before anything is attached.

    Each kind's subclass adds its facts (kernel symbol and address, tracepoint path,
    ELF file offset, interface index). ``note`` explains any choice made for the user
    (a syscall wrapper, a renamed clone, an IFUNC).
    """

    __slots__ = ("hook", "note")
    _fields: ClassVar[tuple[str, ...]] = ("hook", "note")
    hook: Hook
    note: str | None

    def __init__(self, hook: Hook, *, note: str | None = None) -> None:
        self._init(hook=hook, note=note)

    def describe(self) -> str:
        """One line saying what will be probed (the kind's own facts)."""
        return str(self.hook)

    def __str__(self) -> str:
        text = self.describe()
        if self.note:
            text += f" ({self.note})"
        return text


class Pattern(Value):
    """A listing pattern of one kind: the kind's target fields, wildcards allowed.

    Built by a kind's ``parse_target`` when the spec text is a pattern
    (``Body.pattern``); ``fields`` maps each target field to its pattern, or ``None``
    when the pattern leaves it out (``kprobe:vfs_*`` has no module).
    """

    __slots__ = ("fields", "kind")
    _fields = ("kind", "fields")
    kind: type[Hook]
    fields: tuple[tuple[str, str | None], ...]

    def __init__(self, kind: type[Hook], **fields: str | None) -> None:
        self._init(kind=kind, fields=tuple(fields.items()))

    def __getitem__(self, name: str) -> str | None:
        return dict(self.fields)[name]


# --------------------------------------------------------------------------- hook


class Hook(Value):
    """Base class of the hook kinds: a frozen, validated, hashable value.

    Build one from a spec with :meth:`from_spec` or from a kind's class::

        >>> import ebpfhooks
        >>> hook = ebpfhooks.Hook.from_spec("t:syscalls:sys_enter_openat")
        >>> hook
        Tracepoint(category='syscalls', event='sys_enter_openat')
        >>> str(hook)
        'tracepoint:syscalls:sys_enter_openat'

    A kind declares itself in class data. Its spellings (read by the spec parser and
    the registry, :mod:`ebpfhooks.hooks`): ``kind`` (the one canonical word: spec
    prefix, JSON, CLI), ``aliases`` (other words a spec may start with, e.g. ``k``),
    ``libbpf`` (libbpf ``SEC()`` prefixes), ``options`` (``[key=N]`` it takes),
    ``example`` (a target, for hints). Its facts: ``hooks`` (what it hooks), ``fires``
    (when the program runs), ``attach_via`` (what ebpfhooks does to attach it),
    ``bcc_entry`` (the bcc call that attaches it, or that ``attach_via`` replaces),
    ``stable`` (a stable kernel ABI?), ``overhead`` (the rating of docs/hooks.md),
    ``min_kernel``, ``program_type`` (bcc's ``BPF.<TYPE>``) and ``capabilities``.
    """

    __slots__ = ()

    kind: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    libbpf: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[tuple[str, ...]] = ()
    example: ClassVar[str] = ""
    #: What the target names ("kernel function", "interface"...), for messages.
    target_noun: ClassVar[str] = ""
    #: The target's shape ("BINARY:SYMBOL"...), for the message about a kind word alone.
    target_shape: ClassVar[str] = ""
    #: Whether libbpf takes this kind's section name alone (``SEC("uprobe")``: the tool
    #: that attaches it gives the target), for the same message.
    libbpf_bare: ClassVar[bool] = False
    #: Whether a bare listing word (``ebpfhooks list '*execve*'``) searches this kind.
    bare: ClassVar[bool] = False
    #: Whether the target starts with a file path: a kind wildcard reaches this kind
    #: only through a path (``*:/bin/bash:readline``, never ``*:sched:sched_switch``).
    by_path: ClassVar[bool] = False
    hooks: ClassVar[str] = ""
    fires: ClassVar[str] = ""
    attach_via: ClassVar[str] = ""
    bcc_entry: ClassVar[str] = ""
    stable: ClassVar[bool] = False
    overhead: ClassVar[str] = ""
    min_kernel: ClassVar[tuple[int, int]] = (0, 0)
    program_type: ClassVar[str] = ""
    #: The C parameter this kind's programs take (what ``ebpfhooks trace`` declares).
    program_ctx: ClassVar[str] = "void *ctx"
    #: The word bcc's own function naming uses for this kind (``kprobe__vfs_read``).
    bcc_prefix: ClassVar[str] = ""
    #: The :mod:`ebpfhooks.kernel.features` probe (or doctor check) this kind needs,
    #: beside privileges and bcc (``None``: nothing more).
    feature: ClassVar[str | None] = None
    #: Sets of capabilities any one of which is enough to attach this kind
    #: (one table: :mod:`ebpfhooks.caps`).
    capabilities: ClassVar[tuple[frozenset[str], ...]] = ()

    # -- the kind's grammar and listing ---------------------------------------------

    @classmethod
    def from_spec(cls, text: str) -> Hook:
        """Parse a hook spec (bpftrace or libbpf spelling) into a hook.

        Called on a kind's class, the spec must be of that kind.

        >>> Hook.from_spec("kprobe:vfs_read+0x10")
        Kprobe(symbol='vfs_read', module=None, offset=16)

        Raises :class:`ebpfhooks.SpecError` (a ``ValueError``) with a caret under the
        offending column.
        """
        from ebpfhooks.hooks import parse

        hook = parse(text)
        if cls is not Hook and not isinstance(hook, cls):
            raise SpecError(
                f"expected a {cls.kind} spec, got a {hook.kind} one",
                spec=text,
                column=0,
                length=len(text.split(":", 1)[0]),
                hint=f"use Hook.from_spec() for any kind, or write '{cls.kind}:...'",
            )
        return hook

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """The kind's target grammar: a hook, or a :class:`Pattern` when ``body.pattern``."""
        raise NotImplementedError

    @classmethod
    def bare_pattern(cls, t: SpecText) -> Pattern:
        """The pattern a bare listing word (all of ``t.text``) means for this kind.

        Only for ``bare`` kinds; raises :class:`SpecError` when the word cannot name a
        target of this kind.
        """
        raise NotImplementedError

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """Add every hook matching ``pattern`` to ``found``, naming the source used."""
        raise NotImplementedError

    def spec(self) -> str:
        """The canonical spec; ``Hook.from_spec(hook.spec()) == hook``."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.spec()

    # -- against the running system --------------------------------------------------

    def resolve(self) -> Resolution:
        """Check the target against the running system, without attaching."""
        raise NotImplementedError

    @classmethod
    def _resolve_batch(cls, hooks: Sequence[Hook]) -> list[Resolution | Exception]:
        """``resolve()`` each hook of this class; an error is returned in its place.

        A wildcard resolves hundreds of hooks at once: kinds that can share work
        (uprobes: one binary lookup and one symbol index per file) override this.
        """
        from ebpfhooks.errors import EbpfHooksError

        out: list[Resolution | Exception] = []
        for hook in hooks:
            try:
                out.append(hook.resolve())
            except EbpfHooksError as err:
                out.append(err)
        return out

    def check_supported(self) -> None:
        """Raise :class:`ebpfhooks.NotSupportedError` if this kernel cannot attach the kind."""

    def _require(
        self,
        lacking: str,
        missing: str,
        alternative: Callable[[], str | None] | None = None,
    ) -> None:
        """Raise :class:`ebpfhooks.NotSupportedError` when the probe of the kind's
        ``feature`` (``features.<feature>()``) says no.

        "Could not tell" lets the attach go ahead (the kernel will answer).
        """
        from ebpfhooks.errors import NotSupportedError
        from ebpfhooks.kernel import features
        from ebpfhooks.kernel.features import FeatureStatus

        assert self.feature is not None
        result = getattr(features, self.feature)()
        if result.status is FeatureStatus.NO:
            raise NotSupportedError(
                f"{self} cannot attach: this kernel has no {lacking} ({result.reason})",
                missing=missing,
                alternative=alternative() if alternative is not None else None,
            )

    def check_privileges(self) -> None:
        """Raise :class:`ebpfhooks.HookPermissionError` naming the capability that is missing.

        Reads the effective capabilities of this thread; one of the sets in
        ``capabilities`` must be held.
        """
        from ebpfhooks.caps import require

        require(self.capabilities, f"attaching {self}")

    def _target_names(self) -> tuple[str, str] | None:
        """(the target in bcc's function naming, the target's own name), or ``None``."""
        return None

    def function_names(self) -> tuple[str, ...]:
        """The names a BPF function written for this hook may have, best first: bcc's
        ``KIND__TARGET``, the target's own name, ``on_TARGET`` (C identifiers only).

        ``hook.attach(bpf)`` without ``fn_name`` takes the module's one function, or the
        one function named by these rules (docs/hooks.md).

        >>> Hook.from_spec("tracepoint:sched:sched_switch").function_names()
        ('tracepoint__sched__sched_switch', 'sched_switch', 'on_sched_switch')
        """
        names = self._target_names()
        if names is None:
            return ()
        bcc_target, target = (re.sub(_C_IDENT_CHARS, "_", n) for n in names)
        found = (f"{self.bcc_prefix}__{bcc_target}", target, f"on_{target}")
        return tuple(n for n in dict.fromkeys(found) if re.fullmatch(_C_IDENT, n))

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """Add what ``ebpfhooks.info`` reports for this kind (JSON facts, text lines)."""

    # -- attaching -------------------------------------------------------------------

    def attach(self, prog: Program | Any, fn_name: str | None = None) -> Link:
        """Resolve the hook and attach ``prog`` to it; return the owning :class:`ebpfhooks.Link`.

        ``prog`` is an :class:`ebpfhooks.Program`, or a bcc ``BPF`` object with
        ``fn_name``, or without it: then the module's only function, or its one function
        named for this hook (:meth:`function_names`: ``uprobe__readline``, ``readline``,
        ``on_readline``); ``link.program.fn_name`` says which. The link stays attached
        until ``link.detach()``, the end of a ``with`` block, or interpreter exit (not
        garbage collection).

        Raises :class:`ebpfhooks.ProgramTypeError` when ``prog`` is not a program,
        :class:`ebpfhooks.NotSupportedError` when the kernel cannot do this kind, a
        ``LookupError`` subclass when the target is missing,
        :class:`ebpfhooks.HookPermissionError` without the needed capability and
        :class:`ebpfhooks.AttachError` when the kernel refuses.
        """
        from ebpfhooks.hooks.link import Program

        program = Program.coerce(prog, fn_name, self)
        self.check_privileges()
        self.check_supported()
        return self._attach_checked(program, self.resolve())

    def _attach_checked(self, program: Program, resolution: Resolution) -> Link:
        """Attach once privileges, kernel support and the target have been checked."""
        from ebpfhooks.hooks.link import Link

        return Link(self, resolution, program, self._attach_resolved(program, resolution))

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Any:
        """Make the attachment; return the adapter's :class:`ebpfhooks._bcc.Attachment`."""
        raise NotImplementedError


class Found:
    """What a listing found: specs (with the fields that build each hook), sources, notes.

    Kinds add to it in :meth:`Hook.list_matching`; ``cache`` is shared by the kinds of
    one search (kprobe and kretprobe read the kernel's function names once).
    """

    __slots__ = ("cache", "include_unsupported", "notes", "sources", "specs")

    def __init__(self, include_unsupported: bool = False) -> None:
        self.include_unsupported = include_unsupported
        self.specs: dict[str, tuple[type[Hook], tuple[object, ...], dict[str, Any] | None]] = {}
        self.sources: dict[str, str] = {}
        self.notes: list[str] = []
        self.cache: dict[str, Any] = {}

    def add(self, spec: str, kind: type[Hook], *args: object, **kwargs: Any) -> None:
        """One hook: its canonical spec and the arguments that build it, unchecked yet
        (``kind(*args, **kwargs)``, only when :meth:`hooks` is asked for)."""
        self.specs[spec] = (kind, args, kwargs or None)

    def note(self, text: str) -> None:
        """Say what was left out and why (once)."""
        if text not in self.notes:
            self.notes.append(text)

    def hooks(self) -> Iterator[Hook]:
        """The hooks found, in spec order, built from their arguments."""
        for spec in sorted(self.specs):
            kind, args, kwargs = self.specs[spec]
            yield kind(*args, **(kwargs or {}))
