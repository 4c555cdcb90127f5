"""Kernel tracepoints with parsed arguments: :class:`Tracepoint`."""

from __future__ import annotations

import os

from ebpfhooks import caps
from ebpfhooks.errors import HookPermissionError, TracepointNotFoundError
from ebpfhooks.hooks.base import Found, Hook, Pattern, Resolution, text_field
from ebpfhooks.names import Problem, check_trace_name

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.kernel.tracefs import TracepointField
    from ebpfhooks.spec import Body, SpecText

__all__ = ["Tracepoint", "TracepointResolution"]


def _category(name: str) -> Problem | None:
    return check_trace_name(name, "tracepoint category")


def _event(name: str) -> Problem | None:
    return check_trace_name(name, "tracepoint event")


class TracepointResolution(Resolution):
    """A tracepoint present in tracefs; ``path`` is its events directory."""

    __slots__ = ("path",)
    _fields = ("hook", "note", "path")
    path: str

    def __init__(self, hook: Hook, *, path: str, note: str | None = None) -> None:
        self._init(hook=hook, note=note, path=path)

    def describe(self) -> str:
        return f"{self.hook} -> {self.path}"


class Tracepoint(Hook):
    """A kernel tracepoint with parsed arguments: ``tracepoint:category:event``.

    >>> hook = Tracepoint("syscalls", "sys_enter_openat")
    >>> str(hook)
    'tracepoint:syscalls:sys_enter_openat'

    Fires each time the kernel passes the tracepoint; bcc builds the argument
    struct from the event's tracefs ``format`` file: name the function freely and
    give it that struct
    (``int on_open(struct tracepoint__syscalls__sys_enter_openat *args) { ...
    args->filename ... }``). A ``TRACEPOINT_PROBE`` (bcc attaches those itself at
    compile time) is adopted by the link of its own tracepoint only.
    A stable interface: prefer it over a kprobe when both exist.
    Minimum kernel 4.7.
    """

    __slots__ = ("category", "event")
    _fields = ("category", "event")
    category: str
    event: str

    kind = "tracepoint"
    bcc_prefix = "tracepoint"
    aliases = ("t",)
    libbpf = ("tp",)
    example = "syscalls:sys_enter_openat"
    target_noun = "tracepoint"
    target_shape = "CATEGORY:EVENT"
    bare = True
    hooks = "kernel tracepoint"
    fires = "when the kernel passes the tracepoint"
    attach_via = "bcc attach_tracepoint (perf_event_open of the tracepoint's id)"
    bcc_entry = "attach_tracepoint"
    stable = True
    overhead = "moderate"
    min_kernel = (4, 7)
    program_type = "TRACEPOINT"
    feature = "tracefs"
    capabilities = caps.TRACING

    def __init__(self, category: str, event: str) -> None:
        self._init(category=text_field(category, _category, "tracepoint category"),
                   event=text_field(event, _event, "tracepoint event"))

    def _target_names(self) -> tuple[str, str]:
        return f"{self.category}__{self.event}", self.event

    def spec(self) -> str:
        """``tracepoint:category:event``."""
        return f"tracepoint:{self.category}:{self.event}"

    # -- grammar and listing ---------------------------------------------------------

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``category ":" event`` (libbpf: ``category "/" event``); a pattern may leave
        the category out (``tracepoint:EVENT``, any category, as bpftrace reads it)."""
        t = body.t
        start, end = body.start, body.end
        sep = "/" if body.libbpf else ":"
        mid = body.find(sep)
        if mid == -1:
            if body.pattern:
                event = t.name(start, end, _event)
                return Pattern(cls, category="*", event=event)
            raise body.error(end, end + 1, f"missing '{sep}event' after the category",
                             "expected tracepoint:category:event, "
                             f"e.g. tracepoint:{cls.example}")
        extra = body.find(sep, mid + 1)
        if extra != -1:
            raise body.error(extra, extra + 1, f"too many '{sep}' parts",
                             "expected tracepoint:category:event")
        if mid == start:
            raise body.error(start, start + 1, "empty tracepoint category")
        category = t.name(start, mid, _category)
        if mid + 1 >= end:
            raise body.error(mid + 1, mid + 2, "empty tracepoint event")
        event = t.name(mid + 1, end, _event)
        if body.pattern:
            return Pattern(cls, category=category, event=event)
        return cls(category, event)

    @classmethod
    def bare_pattern(cls, t: SpecText) -> Pattern:
        """A bare word is an event pattern in any category (``t:*:WORD``)."""
        return Pattern(cls, category="*", event=t.name(0, len(t.text), _event))

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """The event directories of tracefs (the set ``available_events`` lists)."""
        from ebpfhooks.kernel.mounts import tracefs_dir
        from ebpfhooks.spec import matcher

        cat_ok, ev_ok = matcher(pattern["category"]), matcher(pattern["event"])
        assert cat_ok is not None and ev_ok is not None
        events = os.path.join(tracefs_dir(), "events")
        for cat, ev in _event_dirs(events, cat_ok):
            if ev_ok(ev):
                found.add(f"tracepoint:{cat}:{ev}", cls, cat, ev)
        found.sources[cls.kind] = f"{events}/CATEGORY/EVENT (what available_events lists)"

    # -- against the running system --------------------------------------------------

    def resolve(self) -> TracepointResolution:
        """Check the event exists in tracefs.

        Raises :class:`TracepointNotFoundError` with the closest events, or
        :class:`ebpfhooks.TracefsNotMountedError` saying how to mount tracefs.
        """
        from ebpfhooks._util import close_matches
        from ebpfhooks.kernel.tracefs import list_tracepoints, tracefs_root, tracepoint_exists

        root = tracefs_root()
        if tracepoint_exists(self.category, self.event):
            path = root / "events" / self.category / self.event
            return TracepointResolution(self, path=str(path))
        names = [f"{c}:{e}" for c, e in list_tracepoints()]
        same_cat = [n for n in names if n.startswith(self.category + ":")]
        wanted = f"{self.category}:{self.event}"
        candidates = close_matches(wanted, same_cat) or close_matches(wanted, names)
        raise TracepointNotFoundError(
            wanted,
            where=f"{root}/events",
            candidates=[f"tracepoint:{c}" for c in candidates],
            hint="list tracepoints with: ebpfhooks list 'tracepoint:*PART*'",
        )

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """The parsed ``format``: ID, each field's type, offset, size and signedness,
        the print fmt (what ``bpftrace -lv`` shows)."""
        from ebpfhooks.kernel.tracefs import read_format, tracefs_root

        self.resolve()  # TracepointNotFoundError with close names
        fmt = read_format(self.category, self.event)
        path = tracefs_root() / "events" / self.category / self.event / "format"
        facts.update({"id": fmt.id, "format_file": str(path),
                      "fields": [_field_dict(f) for f in fmt.fields],
                      "common_fields": [_field_dict(f) for f in fmt.common_fields],
                      "print_fmt": fmt.print_fmt})
        text.append(f"    ID: {fmt.id}   format: {path}")
        width = max((len(f.declaration) for f in fmt.fields), default=0)
        for f in fmt.fields:
            text.append(f"    {f.declaration:<{width}}   offset {f.offset:<4} "
                        f"size {f.size:<3} {'signed' if f.signed else 'unsigned'}")
        text.append(f"    print fmt: {fmt.print_fmt}")

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import _bcc

        return _bcc.attach_tracepoint(program.bpf, program.fn_name, self.category,
                                      self.event, what=str(self))


def _event_dirs(events: str, category_ok: Callable[[str], bool]) -> list[tuple[str, str]]:
    """(category, event) of the event directories of tracefs, for matching categories.

    Walking ``events/`` is the same set as ``available_events`` but ~50 times faster
    (the kernel builds ``available_events`` under locks, event by event). The
    ``ftrace`` category holds the function tracer's own records, which
    ``available_events`` leaves out (they cannot be enabled or attached), so it is
    left out here too.
    """
    out: list[tuple[str, str]] = []
    try:
        categories = [c for c in os.scandir(events) if c.is_dir() and c.name != "ftrace"]
    except PermissionError as err:
        raise HookPermissionError(
            f"cannot read {events}: permission denied; tracefs is readable by root only, "
            "rerun as root (e.g. with sudo)", capability="CAP_DAC_READ_SEARCH") from err
    for cat in categories:
        if not category_ok(cat.name):
            continue
        with os.scandir(cat.path) as entries:
            out.extend((cat.name, e.name) for e in entries if e.is_dir())
    return out


def _field_dict(f: TracepointField) -> dict[str, Any]:
    return {"name": f.name, "type": f.type, "declaration": f.declaration, "offset": f.offset,
            "size": f.size, "signed": f.signed}
