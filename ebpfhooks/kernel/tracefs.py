"""tracefs: where it is mounted, which tracepoints exist and what their records look like.

Pure parsers (:func:`parse_mounts`, :func:`parse_available_events`, :func:`parse_format`,
:func:`parse_kprobe_blacklist`, :func:`parse_filter_functions`) work on text and do no
I/O; the readers around them are thin and cached (:func:`clear_cache` forgets
everything)::

    from ebpfhooks.kernel import tracefs
    root = tracefs.tracefs_root()                  # PosixPath('/sys/kernel/tracing')
    fmt = tracefs.read_format("sched", "sched_switch")
    [f.declaration for f in fmt.fields][:2]        # ['char prev_comm[16]', 'pid_t prev_pid']

Minimum kernel: tracefs exists since 4.1; before that the same files are under
``<debugfs>/tracing``, which :func:`tracefs_root` also accepts.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import attrs

from ebpfhooks._util import close_matches
from ebpfhooks.errors import (
    EbpfHooksError,
    HookPermissionError,
    SpecError,
    TracefsFormatError,
    TracefsNotMountedError,
    TracepointNotFoundError,
)
from ebpfhooks.kernel import mounts as _mounts

# Finding and mounting tracefs lives in ebpfhooks.kernel.mounts (no attrs import, so
# `ebpfhooks list` starts fast); the names stay importable from here.
from ebpfhooks.kernel.mounts import (
    MOUNTS_FILE,
    Mount,
    debugfs_root,
    mount_tracefs,
    parse_mounts,
    tracefs_root,
)

__all__ = [
    "MOUNTS_FILE",
    "Mount",
    "TracefsFormatError",
    "TracepointField",
    "TracepointFormat",
    "available_filter_functions",
    "clear_cache",
    "debugfs_root",
    "kprobe_blacklist",
    "list_tracepoints",
    "mount_tracefs",
    "parse_available_events",
    "parse_filter_functions",
    "parse_format",
    "parse_kprobe_blacklist",
    "parse_mounts",
    "read_format",
    "suggest_tracepoints",
    "tracefs_root",
    "tracepoint_exists",
]

# --------------------------------------------------------------------------- listing


def parse_available_events(text: str) -> list[tuple[str, str]]:
    """Parse ``available_events`` (``category:event`` per line) into sorted pairs.

    >>> parse_available_events("sched:sched_switch\\nirq:irq_handler_entry\\n")
    [('irq', 'irq_handler_entry'), ('sched', 'sched_switch')]

    Raises:
        TracefsFormatError: a non-empty line without ``:``.
    """
    out: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        category, sep, event = line.partition(":")
        if not sep or not category or not event:
            raise TracefsFormatError(
                f"expected 'category:event', got {line!r}", source="available_events",
                line=number,
            )
        out.append((category, event))
    out.sort()
    return out


@functools.lru_cache(maxsize=4)
def _list_tracepoints_in(root: Path) -> tuple[tuple[str, str], ...]:
    text = _read_text(root / "available_events")
    return tuple(parse_available_events(text))


def list_tracepoints(reload: bool = False) -> list[tuple[str, str]]:
    """Return every tracepoint as a sorted ``(category, event)`` list, from ``available_events``.

    Cached; ``reload=True`` reads the file again (tracepoints appear when modules load).

    >>> ("sched", "sched_switch") in list_tracepoints()  # doctest: +SKIP
    True

    Raises:
        TracefsNotMountedError: tracefs is not mounted.
        HookPermissionError: tracefs is not readable (not root).
    """
    root = tracefs_root()
    if reload:
        _list_tracepoints_in.cache_clear()
    return list(_list_tracepoints_in(root))


def _check_component(value: str, what: str) -> None:
    """Refuse names that could escape the events directory (defence in depth)."""
    if not value or "/" in value or "\0" in value or value in (".", ".."):
        raise SpecError(
            f"{what} {value!r} is not a valid tracefs name: expected a non-empty name "
            "without '/', NUL, '.' or '..'",
            hint="tracepoint names look like 'sched:sched_switch'",
        )


def tracepoint_exists(category: str, event: str) -> bool:
    """Tell whether tracepoint ``category:event`` exists (its ``events/`` directory is there).

    Not cached: one ``stat``.

    >>> tracepoint_exists("sched", "sched_switch")  # doctest: +SKIP
    True

    Raises:
        SpecError: ``category`` or ``event`` is empty or contains ``/``, NUL or is ``..``.
        TracefsNotMountedError: tracefs is not mounted, so this cannot be told.
    """
    _check_component(category, "tracepoint category")
    _check_component(event, "tracepoint event")
    return (tracefs_root() / "events" / category / event).is_dir()


# --------------------------------------------------------------------------- format


_LOC_PREFIXES = ("__data_loc ", "__rel_loc ")


@attrs.frozen
class TracepointField:
    """One field of a tracepoint record, as the ``format`` file describes it.

    ``type`` is the C type with array dimensions folded in (``char comm[16]`` has type
    ``char[16]``; ``__data_loc char[] name`` keeps type ``__data_loc char[]``), ``name``
    the bare field name; ``offset`` and ``size`` are in bytes.

    >>> f = TracepointField("char[16]", "comm", 8, 16, False)
    >>> f.declaration, f.array_length
    ('char comm[16]', 16)
    """

    type: str
    name: str
    offset: int
    size: int
    signed: bool

    @property
    def is_data_loc(self) -> bool:
        """True for dynamic fields (``__data_loc``/``__rel_loc``): a 32-bit offset/length pair.

        >>> TracepointField("__data_loc char[]", "name", 8, 4, False).is_data_loc
        True
        """
        return self.type.startswith(_LOC_PREFIXES)

    @property
    def is_array(self) -> bool:
        """True for fixed-size arrays such as ``char comm[16]`` (not for ``__data_loc``).

        >>> TracepointField("char[16]", "comm", 8, 16, False).is_array
        True
        """
        return not self.is_data_loc and "[" in self.type

    @property
    def array_length(self) -> int | None:
        """Number of elements of a fixed array's first dimension, else ``None``.

        >>> TracepointField("u8[4]", "saddr", 8, 4, False).array_length
        4
        """
        if not self.is_array:
            return None
        match = re.search(r"\[(\d+)\]", self.type)
        return int(match.group(1)) if match else None

    @property
    def declaration(self) -> str:
        """The field as a C declaration, exactly as the format file (and ``bpftrace -lv``) write it.

        Arrays put the dimension after the name; ``__data_loc`` keeps ``[]`` on the type.

        >>> TracepointField("__data_loc char[]", "name", 8, 4, False).declaration
        '__data_loc char[] name'
        >>> TracepointField("const char *", "filename", 16, 8, False).declaration
        'const char * filename'
        """
        if self.is_array:
            base, bracket, dims = self.type.partition("[")
            return f"{base} {self.name}{bracket}{dims}"
        return f"{self.type} {self.name}"

    @property
    def bpftrace_type(self) -> str:
        """How ``bpftrace -lv`` prints this field (the declaration; common fields are hidden).

        >>> TracepointField("char[16]", "comm", 8, 16, False).bpftrace_type
        'char comm[16]'
        """
        return self.declaration


@attrs.frozen
class TracepointFormat:
    """A parsed tracepoint ``format`` file: event ``name``, numeric ``id``, record layout.

    ``common_fields`` are the ``common_*`` header every record starts with; ``fields``
    are the event's own; ``print_fmt`` is the raw ``print fmt:`` text.

    >>> fmt = read_format("sched", "sched_switch")  # doctest: +SKIP
    >>> fmt.field("prev_pid").offset  # doctest: +SKIP
    24
    """

    name: str
    id: int
    fields: tuple[TracepointField, ...]
    common_fields: tuple[TracepointField, ...]
    print_fmt: str

    def field(self, name: str) -> TracepointField:
        """Return the field called ``name`` (own fields first, then common ones).

        >>> fmt = parse_format("name: e\\nID: 1\\nformat:\\n"
        ...     "\\tfield:int x;\\toffset:8;\\tsize:4;\\tsigned:1;\\n\\nprint fmt: \\"\\"\\n")
        >>> fmt.field("x").size
        4

        Raises:
            KeyError: no such field; the message lists the field names.
        """
        for f in (*self.fields, *self.common_fields):
            if f.name == name:
                return f
        names = ", ".join(f.name for f in self.fields) or "(none)"
        raise KeyError(f"tracepoint {self.name!r} has no field {name!r}; its fields: {names}")


_FIELD_LINE = re.compile(
    r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
    r"(?:\s*signed:(?P<signed>-?\d+);)?\s*$"
)
_DECLARATION = re.compile(
    r"^(?P<type>.*?)\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<dims>(?:\[[^\]]*\])*)\s*$"
)


def _parse_declaration(decl: str, source: str, line: int) -> tuple[str, str]:
    """Split ``unsigned char addr[6]`` into (``unsigned char[6]``, ``addr``)."""
    decl = decl.strip()
    match = _DECLARATION.match(decl)
    if match is None or not match.group("type"):
        raise TracefsFormatError(
            f"expected a C declaration 'TYPE NAME' in the field, got {decl!r}",
            source=source, line=line,
        )
    return match.group("type") + match.group("dims"), match.group("name")


def parse_format(text: str) -> TracepointFormat:
    """Parse the text of a tracepoint ``format`` file into a :class:`TracepointFormat`.

    Grammar (one item per line)::

        name: NAME
        ID: NUMBER
        format:
        <TAB>field:DECL;<TAB>offset:N;<TAB>size:N;<TAB>signed:0|1;   (common fields)
        <blank line>
        <TAB>field:DECL;<TAB>offset:N;<TAB>size:N;<TAB>signed:0|1;   (event fields)
        <blank line>
        print fmt: TEXT (may span several lines, to the end)

    The first block of fields is the common header. ``signed`` is optional (very old
    kernels omit it; it then reads as ``False``).

    >>> fmt = parse_format(
    ...     "name: sched_switch\\nID: 372\\nformat:\\n"
    ...     "\\tfield:unsigned short common_type;\\toffset:0;\\tsize:2;\\tsigned:0;\\n\\n"
    ...     "\\tfield:char prev_comm[16];\\toffset:8;\\tsize:16;\\tsigned:0;\\n\\n"
    ...     "print fmt: \\"prev_comm=%s\\", REC->prev_comm\\n")
    >>> fmt.fields[0].type, fmt.fields[0].name, fmt.common_fields[0].name
    ('char[16]', 'prev_comm', 'common_type')

    Raises:
        TracefsFormatError: a missing ``name:``/``ID:`` header or a malformed field line;
            the message names the line.
    """
    source = "tracepoint format"
    lines = text.split("\n")
    name: str | None = None
    ident: int | None = None
    blocks: list[list[TracepointField]] = [[]]
    print_fmt = ""
    in_format = False
    for number, line in enumerate(lines, 1):
        if line.startswith("print fmt:"):
            rest = "\n".join([line[len("print fmt:"):], *lines[number:]])
            print_fmt = rest.strip()
            break
        if not in_format:
            if line.startswith("name:"):
                name = line[len("name:"):].strip()
            elif line.startswith("ID:"):
                raw = line[len("ID:"):].strip()
                if not (raw.isascii() and raw.isdigit()):
                    raise TracefsFormatError(
                        f"expected a decimal event ID after 'ID:', got {raw!r}",
                        source=source, line=number,
                    )
                ident = int(raw)
            elif line.strip() == "format:":
                in_format = True
            elif line.strip():
                raise TracefsFormatError(
                    f"expected 'name:', 'ID:' or 'format:', got {line!r}",
                    source=source, line=number,
                )
            continue
        if not line.strip():
            if blocks[-1]:
                blocks.append([])
            continue
        match = _FIELD_LINE.match(line)
        if match is None:
            raise TracefsFormatError(
                "expected 'field:DECL; offset:N; size:N; signed:N;', got " + repr(line.strip()),
                source=source, line=number,
            )
        ftype, fname = _parse_declaration(match.group("decl"), source, number)
        blocks[-1].append(
            TracepointField(
                type=ftype,
                name=fname,
                offset=int(match.group("offset")),
                size=int(match.group("size")),
                signed=match.group("signed") not in (None, "0"),
            )
        )
    if name is None or ident is None:
        missing = "'name:'" if name is None else "'ID:'"
        raise TracefsFormatError(f"missing the {missing} header line", source=source)
    blocks = [b for b in blocks if b]
    common: list[TracepointField] = []
    own: list[TracepointField] = []
    if blocks and all(f.name.startswith("common_") for f in blocks[0]):
        common = blocks[0]
        blocks = blocks[1:]
    for block in blocks:
        own.extend(block)
    return TracepointFormat(
        name=name, id=ident, fields=tuple(own), common_fields=tuple(common), print_fmt=print_fmt
    )


def _read_text(path: Path) -> str:
    """Read a tracefs/debugfs file, mapping EACCES to :class:`HookPermissionError`."""
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except PermissionError as err:
        raise HookPermissionError(
            f"cannot read {path}: permission denied (readable by root only; this process "
            f"is uid {os.geteuid()}); rerun as root (e.g. with sudo), or give the process "
            "CAP_DAC_READ_SEARCH",
            capability="CAP_DAC_READ_SEARCH",
        ) from err


@functools.lru_cache(maxsize=1024)
def _read_format_cached(root: Path, category: str, event: str) -> TracepointFormat:
    path = root / "events" / category / event / "format"
    parsed = parse_format(_read_text(path))
    return parsed


def read_format(category: str, event: str, reload: bool = False) -> TracepointFormat:
    """Read and parse ``events/CATEGORY/EVENT/format`` from tracefs.

    Cached per event; ``reload=True`` reads it again (dynamic events such as uprobes can
    be re-created with another layout).

    >>> read_format("syscalls", "sys_enter_openat").field("filename").type  # doctest: +SKIP
    'const char *'

    Minimum kernel: 2.6.31 (format files); through tracefs 4.1.

    Raises:
        SpecError: a name containing ``/``, NUL, or ``..``.
        TracepointNotFoundError: no such tracepoint; ``candidates`` holds the closest
            names, from the same category first.
        TracefsNotMountedError: tracefs is not mounted.
        HookPermissionError: tracefs is not readable.
    """
    _check_component(category, "tracepoint category")
    _check_component(event, "tracepoint event")
    root = tracefs_root()
    if reload:
        _read_format_cached.cache_clear()
    try:
        return _read_format_cached(root, category, event)
    except (FileNotFoundError, NotADirectoryError) as err:
        raise _tracepoint_not_found(root, category, event) from err


def _tracepoint_not_found(root: Path, category: str, event: str) -> TracepointNotFoundError:
    try:
        known = list_tracepoints(reload=True)
    except (OSError, EbpfHooksError):
        known = []
    return TracepointNotFoundError(
        f"{category}:{event}",
        where=f"{root}/available_events",
        candidates=suggest_tracepoints(category, event, known),
        hint=f"list a category's events with: grep '^{category}:' {root}/available_events",
    )


def suggest_tracepoints(
    category: str, event: str, known: list[tuple[str, str]], n: int = 5
) -> list[str]:
    """Return up to ``n`` ``cat:event`` names close to ``category:event``, same category first.

    Pure: ``known`` is a list from :func:`list_tracepoints`.

    >>> suggest_tracepoints("sched", "sched_swich", [("sched", "sched_switch"), ("irq", "x")])
    ['sched:sched_switch']
    """
    same = [ev for cat, ev in known if cat == category]
    out = [f"{category}:{ev}" for ev in close_matches(event, same, n=n)]
    if len(out) < n:
        everything = [f"{cat}:{ev}" for cat, ev in known]
        for cand in close_matches(f"{category}:{event}", everything, n=n):
            if cand not in out:
                out.append(cand)
    if len(out) < n:
        # the event name alone may exist under another category (``syscall:`` typo)
        for cat, ev in known:
            if ev == event and f"{cat}:{ev}" not in out:
                out.append(f"{cat}:{ev}")
    return out[:n]


# --------------------------------------------------------------------------- kprobe lists


def parse_kprobe_blacklist(text: str) -> frozenset[str]:
    """Parse debugfs ``kprobes/blacklist`` (``0xSTART-0xEND<TAB>name [module]`` lines).

    >>> sorted(parse_kprobe_blacklist("0xffffffff81000000-0xffffffff81000010\\tdo_int3\\n"
    ...                               "0xffffffffa0000000-0xffffffffa0000040\\tfoo\\t[mod]\\n"))
    ['do_int3', 'foo']
    """
    names: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            names.add(parts[1])
    return frozenset(names)


def parse_filter_functions(text: str) -> frozenset[str]:
    """Parse ``available_filter_functions`` (``name`` or ``name [module]`` per line).

    >>> sorted(parse_filter_functions("vfs_read\\nnf_hook_slow [nf_tables]\\n"))
    ['nf_hook_slow', 'vfs_read']
    """
    return frozenset(parts[0] for parts in map(str.split, text.splitlines()) if parts)


_list_cache: dict[str, frozenset[str] | None] = {}


def kprobe_blacklist(reload: bool = False) -> frozenset[str]:
    """Return the function names kprobes refuse (``<debugfs>/kprobes/blacklist``).

    An empty set when the file is absent (no debugfs mounted, or a kernel without
    kprobes). Cached; ``reload=True`` reads it again.

    >>> "do_int3" in kprobe_blacklist()  # doctest: +SKIP
    True

    Minimum kernel: 4.6 (the blacklist file).

    Raises:
        HookPermissionError: the file exists but is not readable (not root).
    """
    key = "blacklist"
    if reload or key not in _list_cache:
        debugfs = debugfs_root()
        names: frozenset[str] = frozenset()
        if debugfs is not None:
            try:
                names = parse_kprobe_blacklist(_read_text(debugfs / "kprobes" / "blacklist"))
            except (FileNotFoundError, NotADirectoryError):
                names = frozenset()
        _list_cache[key] = names
    return _list_cache[key] or frozenset()


def available_filter_functions(reload: bool = False) -> frozenset[str] | None:
    """Return the functions ftrace can hook (``available_filter_functions``), or ``None``.

    ``None`` when tracefs is not mounted or the file is missing or unreadable (kernels
    without ``CONFIG_FUNCTION_TRACER`` answer EPERM). Module suffixes ``[mod]`` are
    stripped. Cached; ``reload=True`` reads it again.

    >>> funcs = available_filter_functions()  # doctest: +SKIP
    >>> funcs is None or "vfs_read" in funcs  # doctest: +SKIP
    True
    """
    key = "filter_functions"
    if reload or key not in _list_cache:
        try:
            path = tracefs_root() / "available_filter_functions"
            _list_cache[key] = parse_filter_functions(
                path.read_text(encoding="utf-8", errors="surrogateescape")
            )
        except (OSError, TracefsNotMountedError):
            _list_cache[key] = None
    return _list_cache[key]


def clear_cache() -> None:
    """Forget every cached answer of this module (root, tracepoint list, formats, lists).

    >>> clear_cache()
    """
    _mounts.clear_cache()
    _list_tracepoints_in.cache_clear()
    _read_format_cached.cache_clear()
    _list_cache.clear()

