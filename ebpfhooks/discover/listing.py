"""Listing hooks (``bpftrace -l``) and expanding wildcards into hooks you can attach.

A pattern is parsed by the spec grammar with wildcards allowed (one
:class:`~ebpfhooks.hooks.base.Pattern` per kind it names, :mod:`ebpfhooks.spec`), and each
kind lists its own matches from its own source (``Hook.list_matching``): tracepoints from
tracefs, raw tracepoints from the kernel's BTF, kernel functions from
``available_filter_functions`` or /proc/kallsyms, user functions from the ELF file,
interfaces from the network namespace. Every literal character is checked against the
alphabet of its part, and patterns become anchored regular expressions of escaped
literals, so no text of the pattern is ever interpreted as anything but itself.

On a kernel without kprobes, kprobe and kretprobe lines are left out (they could not
attach) unless ``include_unsupported=True`` (``ebpfhooks list --all``); the listing's
``notes`` say so.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ebpfhooks.errors import EbpfHooksError, HookNotFoundError, HookPermissionError

TYPE_CHECKING = False  # typing is not imported at run time (start-up of `ebpfhooks list`)
if TYPE_CHECKING:
    from typing import Any, overload

    from ebpfhooks.hooks.base import Hook, Resolution
    from ebpfhooks.hooks.link import LinkGroup, Program

__all__ = ["HookSet", "Listing", "expand", "list_hooks", "search"]


class Listing:
    """What :func:`search` found: ``hooks`` (canonical specs), ``sources`` and ``notes``.

    ``sources`` maps each kind searched to where its names came from; ``notes`` say
    what was left out and why (kinds this kernel cannot attach, unreadable files);
    ``denied`` is the first :class:`ebpfhooks.HookPermissionError` met (the listing is
    then incomplete for this process), else ``None``.

    >>> Listing("x", [], {}, []).hooks
    []
    """

    __slots__ = ("_found", "denied", "hooks", "notes", "pattern", "sources")

    def __init__(self, pattern: str, hooks: list[str], sources: dict[str, str],
                 notes: list[str]) -> None:
        self.pattern = pattern
        self.hooks = hooks
        self.sources = sources
        self.notes = notes
        self.denied: HookPermissionError | None = None
        self._found: Any = None  # the kinds' Found, which builds the hooks for expand()

    def __repr__(self) -> str:
        return (f"<Listing {self.pattern!r}: {len(self.hooks)} hooks, "
                f"{len(self.notes)} notes>")

    def to_dict(self) -> dict[str, Any]:
        """The listing as JSON-ready data."""
        return {"pattern": self.pattern, "hooks": self.hooks, "sources": self.sources,
                "notes": self.notes}


def search(pattern: str, *, include_unsupported: bool = False) -> Listing:
    """List every hook matching ``pattern`` with where the names came from.

    >>> search("tracepoint:sched:sched_switch").hooks  # doctest: +SKIP
    ['tracepoint:sched:sched_switch']

    ``include_unsupported=True`` also lists kinds this kernel cannot attach (kprobes
    on a kernel without them, from /proc/kallsyms).

    Raises :class:`ebpfhooks.SpecError` for a malformed pattern (with a caret under the
    bad character), :class:`ebpfhooks.TracefsNotMountedError` when tracepoints are asked
    for and tracefs is not mounted, and the binary errors of uprobes.
    """
    from ebpfhooks.hooks import parse_pattern
    from ebpfhooks.hooks.base import Found

    patterns = parse_pattern(pattern)
    found = Found(include_unsupported)
    several = len({p.kind for p in patterns}) > 1
    denied: HookPermissionError | None = None
    for p in patterns:
        try:
            p.kind.list_matching(p, found)
        except EbpfHooksError as err:
            if not several:
                raise
            if isinstance(err, HookPermissionError) and denied is None:
                denied = err
            found.note(f"{p.kind.kind}: not listed: {err}")
    listing = Listing(pattern, sorted(found.specs), found.sources, found.notes)
    listing.denied = denied
    listing._found = found
    return listing


def list_hooks(pattern: str, *, include_unsupported: bool = False) -> list[str]:
    """Return the canonical spec of every hook matching ``pattern``, sorted, no duplicates.

    >>> list_hooks("tracepoint:sched:sched_sw*")  # doctest: +SKIP
    ['tracepoint:sched:sched_swap_numa', 'tracepoint:sched:sched_switch']
    >>> list_hooks("uprobe:/bin/bash:readline*")[:1]  # doctest: +SKIP
    ['uprobe:/bin/bash:readline']

    A bare word (``*execve*``) searches tracepoints (any category), raw tracepoints
    and kernel functions, like ``bpftrace -l``. Tracepoint lines equal ``bpftrace -l``'s
    for the same pattern. See :func:`search` for the sources and what is left out;
    raises what :func:`search` raises, and :class:`ebpfhooks.HookPermissionError` when
    a kind could not be read by this process (the list would be incomplete).
    """
    listing = search(pattern, include_unsupported=include_unsupported)
    if listing.denied is not None:
        raise listing.denied
    return listing.hooks


class HookSet(Sequence["Hook"]):
    """The hooks a wildcard spec expands to: a read-only sequence you can attach at once.

    >>> hooks = expand("tracepoint:syscalls:sys_enter_open*")        # doctest: +SKIP
    >>> with hooks.attach(bpf, fn_name="on_open") as group:          # doctest: +SKIP
    ...     print(len(group), "attached")

    :meth:`attach` is all-or-nothing (a failed attach detaches the ones already
    made), or with ``optional=True`` skips the hooks that cannot attach.
    """

    __slots__ = ("_hooks", "pattern")

    def __init__(self, pattern: str, hooks: Sequence[Hook]) -> None:
        self.pattern = pattern
        self._hooks: tuple[Hook, ...] = tuple(hooks)

    if TYPE_CHECKING:
        @overload
        def __getitem__(self, index: int) -> Hook: ...

        @overload
        def __getitem__(self, index: slice) -> tuple[Hook, ...]: ...

    def __getitem__(self, index: int | slice) -> Hook | tuple[Hook, ...]:
        return self._hooks[index]

    def __len__(self) -> int:
        return len(self._hooks)

    def __iter__(self) -> Iterator[Hook]:
        return iter(self._hooks)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HookSet):
            return self._hooks == other._hooks
        if isinstance(other, tuple):
            return self._hooks == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._hooks)

    def __repr__(self) -> str:
        return f"<HookSet {self.pattern!r}: {len(self._hooks)} hooks>"

    def attach(self, prog: Program | Any, fn_name: str | None = None, *,
               optional: bool = False) -> LinkGroup:
        """Attach ``prog`` to every hook; one :class:`ebpfhooks.LinkGroup` owns them all.

        Raises what :meth:`ebpfhooks.Hook.attach` raises (after undoing a partial
        attach), unless ``optional`` (then ``group.skipped`` lists what failed).
        """
        from ebpfhooks.hooks.link import LinkGroup

        return LinkGroup.attach_all(list(self._hooks), prog, fn_name, optional=optional)

    def resolve(self) -> list[Resolution]:
        """Check every hook without attaching: what ``attach`` checks before the kernel.

        >>> [r.describe() for r in expand("t:sched:sched_switch").resolve()]  # doctest: +SKIP
        ['tracepoint:sched:sched_switch']

        Privileges and kernel support once per kind, then every target (uprobes in bulk:
        one binary lookup and symbol index per file). Raises the first error.
        """
        from ebpfhooks.hooks.link import check_and_resolve

        return [r for r in check_and_resolve(self._hooks) if not isinstance(r, Exception)]


def expand(spec: str, *, include_unsupported: bool = False) -> HookSet:
    """Turn a spec with wildcards into the hooks it matches (a spec without any: itself).

    >>> [str(h) for h in expand("t:sched:sched_switch")]  # doctest: +SKIP
    ['tracepoint:sched:sched_switch']

    Raises :class:`ebpfhooks.SpecError` for a malformed pattern,
    :class:`ebpfhooks.NotSupportedError` when the pattern names only kprobes on a kernel
    without them, :class:`ebpfhooks.HookNotFoundError` when nothing matches, and
    :class:`ebpfhooks.HookPermissionError` when a kind could not be read by this process.
    """
    from ebpfhooks.spec import has_wildcard

    if isinstance(spec, str) and not has_wildcard(spec):
        from ebpfhooks.hooks import parse

        return HookSet(spec, [parse(spec)])
    listing = search(spec, include_unsupported=include_unsupported)
    if listing.denied is not None:
        raise listing.denied  # a partial set would be a wrong answer
    if not listing.hooks:
        raise _nothing_matches(spec, listing, include_unsupported)
    return HookSet(spec, list(listing._found.hooks()))


def _nothing_matches(spec: str, listing: Listing, include_unsupported: bool) -> Exception:
    from ebpfhooks.errors import NotSupportedError
    from ebpfhooks.hooks import parse_pattern
    from ebpfhooks.hooks.kprobe import KernelFunctionHook, kprobes_supported, stable_alternative

    patterns = parse_pattern(spec)
    kinds = {p.kind for p in patterns}
    if (all(issubclass(k, KernelFunctionHook) for k in kinds) and not include_unsupported
            and not kprobes_supported()):
        word = (patterns[0]["function"] or "").strip("*?")
        ret = all(k.is_return for k in kinds)  # type: ignore[attr-defined]
        return NotSupportedError(
            f"{spec} matches no hook: this kernel has no kprobe support",
            missing="CONFIG_KPROBES",
            alternative=stable_alternative(word, ret=ret) if word else None,
        )
    return HookNotFoundError(
        spec, where=", ".join(sorted(listing.sources.values())) or "this system",
        hint=(listing.notes[0] + "\n" if listing.notes else "")
        + "see what exists with: ebpfhooks list 'PATTERN' (e.g. '*WORD*')",
    )
