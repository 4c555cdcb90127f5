"""Portable hooks: fallback chains (:func:`first_of`) and optional groups (:func:`attach_all`).

Kernel functions are renamed, split and inlined between releases; a script written
once should still attach on every kernel it meets, and say what it chose::

    chain = ebpfhooks.first_of(
        "kprobe:__blk_account_io_start",
        "kprobe:blk_account_io_start",
        "tracepoint:block:block_io_start",
    )
    with chain.attach(bpf, fn_name="on_io") as link:
        print("attached", link.hook, "; passed over:", link.passed_over)

The spec spelling of a chain is the alternatives joined by ``|``
(``"kprobe:do_sys_openat2 | tracepoint:syscalls:sys_enter_openat"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

from ebpfhooks.errors import (
    AttachError,
    EbpfHooksError,
    HookPermissionError,
    ProgramError,
    SpecError,
)
from ebpfhooks.hooks.base import Hook, Resolution
from ebpfhooks.hooks.link import (
    Link,
    LinkGroup,
    Program,
    _not_a_program,
    check_fn_name,
    is_bcc_module,
)

__all__ = ["Alternative", "Choice", "FirstOf", "NoAlternativeError", "attach_all", "first_of"]


class NoAlternativeError(EbpfHooksError, LookupError):
    """No hook of a fallback chain can attach here; ``reasons`` lists why, hook by hook."""

    def __init__(self, reasons: Sequence[tuple[Hook, Exception]]) -> None:
        self.reasons = tuple(reasons)
        lines = ["no alternative of the chain can attach on this kernel:"]
        for hook, err in self.reasons:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            first = first.removeprefix(f"{hook} ")  # "kprobe:x cannot attach: ..." -> "cannot ..."
            lines.append(f"  {hook}: {first}")
        super().__init__("\n".join(lines))

    def __str__(self) -> str:
        return str(self.args[0])


@attrs.frozen
class Alternative:
    """One hook of a chain, with the BPF function to attach there (``None``: the chain's)."""

    hook: Hook
    fn_name: str | None = None

    def __str__(self) -> str:
        return str(self.hook)


@attrs.frozen
class Choice:
    """What a chain chose on this kernel: the alternative, its resolution, and why earlier ones
    were passed over (each with the typed error that ruled it out)."""

    alternative: Alternative
    resolution: Resolution
    passed_over: tuple[tuple[Hook, Exception], ...]

    @property
    def hook(self) -> Hook:
        """The chosen hook."""
        return self.alternative.hook


def _coerce(item: object) -> Alternative:
    if isinstance(item, Alternative):
        return item
    if isinstance(item, Hook):
        return Alternative(item)
    if isinstance(item, str):
        return Alternative(Hook.from_spec(item))
    if isinstance(item, tuple) and len(item) == 2:
        hook, fn_name = item
        if not isinstance(fn_name, str):
            raise SpecError(
                f"a chain pair is (spec, fn_name); fn_name must be a str, got {fn_name!r}")
        return Alternative(_coerce(hook).hook, check_fn_name(fn_name))
    raise SpecError(
        f"a chain alternative is a spec, a Hook, or a (spec, fn_name) pair; got {item!r}"
    )


def _split(text: str) -> list[str]:
    parts = [p.strip() for p in text.split("|")]
    for i, part in enumerate(parts):
        if not part:
            col = sum(len(p) + 1 for p in text.split("|")[:i])
            raise SpecError.at(text, min(col, max(len(text) - 1, 0)), 1,
                               "empty alternative in a chain",
                               "write alternatives as 'SPEC | SPEC | ...'")
    return parts


def _rules_out(err: Exception) -> bool:
    """Whether this error means "not here, try the next" (not "your program is wrong")."""
    return isinstance(err, EbpfHooksError) and not isinstance(err, (HookPermissionError,
                                                                    ProgramError))


def _as_tuple(value: Iterable[Alternative]) -> tuple[Alternative, ...]:
    return tuple(value)


@attrs.frozen
class FirstOf:
    """A fallback chain: the first alternative that resolves and can attach here is used.

    >>> chain = first_of("kprobe:do_sys_openat2 | tracepoint:syscalls:sys_enter_openat")
    >>> str(chain)
    'kprobe:do_sys_openat2 | tracepoint:syscalls:sys_enter_openat'

    Minimum kernel: that of the alternative chosen.
    """

    alternatives: tuple[Alternative, ...] = attrs.field(converter=_as_tuple)

    @alternatives.validator
    def _check(self, _attr: object, value: tuple[Alternative, ...]) -> None:
        if not value:
            raise SpecError("a chain needs at least one alternative")

    def __str__(self) -> str:
        return " | ".join(str(a) for a in self.alternatives)

    def __iter__(self) -> Iterator[Alternative]:
        return iter(self.alternatives)

    def __len__(self) -> int:
        return len(self.alternatives)

    def choose(self) -> Choice:
        """Pick the first alternative this kernel supports and whose target exists.

        Raises :class:`NoAlternativeError` listing every reason when none fits,
        and :class:`ebpfhooks.HookPermissionError` at once when privileges are
        missing (every alternative would fail the same way).
        """
        passed: list[tuple[Hook, Exception]] = []
        for alt in self.alternatives:
            try:
                alt.hook.check_privileges()
                alt.hook.check_supported()
                resolution = alt.hook.resolve()
            except Exception as err:
                if not _rules_out(err):
                    raise
                passed.append((alt.hook, err))
                continue
            return Choice(alt, resolution, tuple(passed))
        raise NoAlternativeError(passed)

    def attach(self, prog: Program | Any, fn_name: str | None = None) -> Link:
        """Attach the first alternative that works; the link's ``hook`` says which.

        ``link.passed_over`` lists the alternatives passed over with their errors.
        An alternative the kernel refuses at attach time (``AttachError``) is
        passed over too. Each alternative uses its own ``fn_name`` when it has
        one, else ``fn_name`` (or the :class:`ebpfhooks.Program`'s).
        """
        if not isinstance(prog, Program) and not is_bcc_module(prog):
            raise _not_a_program(prog, "attach()")
        passed: list[tuple[Hook, Exception]] = []
        for alt in self.alternatives:
            try:
                alt.hook.check_privileges()
                alt.hook.check_supported()
                resolution = alt.hook.resolve()
            except Exception as err:
                if not _rules_out(err):
                    raise
                passed.append((alt.hook, err))
                continue
            if alt.fn_name is not None:
                bpf = prog.bpf if isinstance(prog, Program) else prog
                program = Program(bpf, alt.fn_name)
            else:
                program = Program.coerce(prog, fn_name, alt.hook)
            try:
                link = alt.hook._attach_checked(program, resolution)  # resolved once
            except AttachError as err:
                passed.append((alt.hook, err))
                continue
            link.passed_over = tuple(passed)
            return link
        raise NoAlternativeError(passed)


def first_of(*alternatives: object) -> FirstOf:
    """Build a fallback chain from specs, hooks or ``(spec, fn_name)`` pairs.

    A single string may hold the whole chain, alternatives joined by ``|``.

    >>> first_of("kprobe:blk_account_io_start", ("tracepoint:block:block_io_start", "on_tp"))
    ... # doctest: +ELLIPSIS
    FirstOf(alternatives=(Alternative(hook=Kprobe(...), fn_name=None), ...))
    """
    items: list[object] = []
    for alt in alternatives:
        if isinstance(alt, str) and "|" in alt:
            items.extend(_split(alt))
        else:
            items.append(alt)
    return FirstOf(tuple(_coerce(item) for item in items))


def attach_all(
    hooks: Iterable[Hook | str],
    prog: Program | Any,
    fn_name: str | None = None,
    *,
    optional: bool = False,
) -> LinkGroup:
    """Attach ``prog`` to several hooks as one :class:`ebpfhooks.LinkGroup`.

    Strict by default (all or nothing). With ``optional=True`` hooks whose
    target is missing or whose kind this kernel lacks are skipped and listed
    in ``group.skipped`` (bpftrace's ``missing_probes = warn``). Uprobes on one
    file are attached as one batch (one uprobe_multi link on kernels 6.6+), each
    with its index in ``hooks`` as its BPF cookie (``link.cookie``, read with
    ``bpf_get_attach_cookie``): see :class:`ebpfhooks.LinkGroup`.

    >>> group = attach_all(["t:sched:sched_switch", "kprobe:nope"], bpf, "fn",
    ...                    optional=True)                         # doctest: +SKIP
    >>> [str(h) for h, _ in group.skipped]                         # doctest: +SKIP
    ['kprobe:nope']
    """
    resolved = [h if isinstance(h, Hook) else Hook.from_spec(h) for h in hooks]
    return LinkGroup.attach_all(resolved, prog, fn_name, optional=optional)
