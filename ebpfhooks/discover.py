"""Finding hooks: list with wildcards, expand to hooks, describe one, suggest the right one.

The seed's "how to find an event" (``bpftrace -l``), "how to see its definition"
(``bpftrace -lv``), reading ``/proc/kallsyms`` and "how to choose" (a stable
tracepoint before a kprobe), as a library::

    >>> import ebpfhooks
    >>> ebpfhooks.list_hooks("tracepoint:syscalls:sys_enter_execve*")  # doctest: +SKIP
    ['tracepoint:syscalls:sys_enter_execve', 'tracepoint:syscalls:sys_enter_execveat']
    >>> hooks = ebpfhooks.expand("t:syscalls:sys_enter_open*")           # doctest: +SKIP
    >>> with hooks.attach(bpf, fn_name="on_open") as group: ...          # doctest: +SKIP
    >>> print(ebpfhooks.info("tracepoint:sched:sched_switch"))           # doctest: +SKIP
    >>> ebpfhooks.suggest("execve").recommended                          # doctest: +SKIP
    'tracepoint:syscalls:sys_enter_execve'

Pattern grammar (``*`` any run of characters, ``?`` one character, in every part)::

    pattern    := WORD                          (bare: tracepoint:*:WORD,
                                                 rawtracepoint:WORD, kprobe:WORD)
                | KIND ":" EVENT                (tracepoint: any category)
                | KIND ":" CATEGORY ":" EVENT   (tracepoint)
                | KIND ":" [MODULE ":"] NAME     (kprobe, kretprobe, rawtracepoint)
                | KIND ":" BINARY ":" SYMBOL     (uprobe, uretprobe; BINARY may be a glob)
                | KIND ":" IFACE                (xdp, raw_socket)

Every literal character is checked with :mod:`ebpfhooks.names` (the alphabet of that
part) and patterns become anchored regular expressions built from escaped literals,
so no text of the pattern is ever interpreted as anything but itself.

Where the names come from: tracepoints from tracefs (the ``events/`` directories,
the same set as ``available_events``; never kallsyms); raw tracepoints from the
``btf_trace_*`` types of the kernel's BTF (exactly the names that attach; the
``__traceiter_*`` symbols of /proc/kallsyms on a kernel without BTF); kernel functions from
``available_filter_functions`` minus the kprobe blacklist when kprobes work and that
file is readable, else from /proc/kallsyms text symbols. On a kernel without kprobes,
kprobe and kretprobe lines are left out (they could not attach) unless
``include_unsupported=True`` (``ebpfhooks list --all``); ``search()`` says so in its
``notes``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ebpfhooks.errors import (
    EbpfHooksError,
    HookNotFoundError,
    HookPermissionError,
    NotSupportedError,
    SpecError,
)
from ebpfhooks.names import (
    KIND_ALIASES,
    WILDCARDS,
    Problem,
    check_interface,
    check_kernel_symbol,
    check_module,
    check_path,
    check_trace_name,
    check_user_symbol,
)

# typing is not imported at run time (start-up time of `ebpfhooks list`); mypy reads the
# TYPE_CHECKING blocks as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, overload

    from ebpfhooks.hooks.base import Hook, LinkGroup, Program, Resolution
    from ebpfhooks.kernel.kallsyms import KSym
    from ebpfhooks.kernel.tracefs import TracepointField

__all__ = [
    "Candidate",
    "HookInfo",
    "HookSet",
    "Listing",
    "Suggestion",
    "expand",
    "info",
    "kallsyms",
    "list_hooks",
    "search",
    "suggest",
]

#: Canonical kind words as specs spell them, in listing order.
KIND_WORDS = ("kprobe", "kretprobe", "tracepoint", "rawtracepoint", "uprobe", "uretprobe",
              "xdp", "raw_socket")

KALLSYMS_FILE = Path("/proc/kallsyms")


# --------------------------------------------------------------------------- patterns


def has_wildcard(text: str) -> bool:
    """True when ``text`` contains ``*`` or ``?``.

    >>> has_wildcard("sys_enter_*"), has_wildcard("vfs_read")
    (True, False)
    """
    return any(ch in text for ch in WILDCARDS)


def compile_wildcard(pattern: str) -> re.Pattern[str]:
    """Turn a wildcard pattern into an anchored regex: ``*`` any run, ``?`` one character.

    Every other character is escaped, so the pattern only ever matches literally.

    >>> bool(compile_wildcard("sys_enter_open*").fullmatch("sys_enter_openat"))
    True
    >>> bool(compile_wildcard("a.b").fullmatch("axb"))
    False
    """
    out: list[str] = []
    for ch in pattern:
        if ch == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.S)


def _matcher(pattern: str) -> Callable[[str], bool]:
    if not has_wildcard(pattern):
        return pattern.__eq__
    rx = compile_wildcard(pattern)
    return lambda name: rx.fullmatch(name) is not None


def _check_part(
    check: Callable[[str], Problem | None], part: str
) -> Problem | None:
    """Validate a pattern part: wildcards allowed, every other character by ``check``."""
    if not part:
        return check(part)
    # each wildcard stands for at least a letter here; the checker sees only literals
    probe = "".join("a" if ch in WILDCARDS else ch for ch in part)
    if not has_wildcard(part):
        return check(part)
    problem = check(probe)
    if problem is not None and "longer than" in problem[2]:
        return None
    return problem


class _Query:
    """One kind's share of a pattern: the kind and its (validated) parts."""

    __slots__ = ("kind", "parts", "start")

    def __init__(self, kind: str, parts: tuple[str | None, ...], start: int) -> None:
        self.kind = kind
        self.parts = parts
        self.start = start


def _err(text: str, col: int, length: int, message: str, hint: str | None = None) -> SpecError:
    err = SpecError.at(text, col, length, message, hint)
    return err


def _validate(text: str, start: int, part: str, check: Callable[[str], Problem | None],
              ) -> None:
    problem = _check_part(check, part)
    if problem is not None:
        col, length, msg = problem
        raise _err(text, start + col, length, msg.replace("invalid hook spec: ", ""))


def _split_kind(text: str) -> tuple[str, int] | None:
    colon = text.find(":")
    if colon == -1:
        return None
    return text[:colon], colon + 1


def _kinds_for(text: str, word: str) -> list[str]:
    """The kinds a (maybe wildcard) kind word names."""
    if not word:
        raise _err(text, 0, 1, "expected a hook kind before ':'",
                   f"kinds: {', '.join(KIND_WORDS)}")
    if has_wildcard(word):
        bad = next((i for i, ch in enumerate(word)
                    if not (ch.isalnum() or ch in "_." or ch in WILDCARDS)), None)
        if bad is not None:
            raise _err(text, bad, 1, f"character {word[bad]!r} cannot be in a kind")
        match = _matcher(word)
        kinds = [w for w in KIND_WORDS if match(w)]
        if not kinds:
            raise _err(text, 0, len(word), f"no hook kind matches {word!r}",
                       f"kinds: {', '.join(KIND_WORDS)}")
        return kinds
    kind = KIND_ALIASES.get(word.lower())
    if kind is None:
        from ebpfhooks.spec import parse

        parse(text)  # raises the spec parser's error for the kind word
        raise _err(text, 0, len(word), f"unknown hook kind {word!r}")  # pragma: no cover
    return [kind]


def _queries(text: str) -> list[_Query]:
    """Parse a listing pattern into one query per kind it can name (see the module doc)."""
    if not isinstance(text, str):
        raise SpecError(f"a pattern must be a str, got {type(text).__name__} {text!r}")
    if not text or text != text.strip():
        raise _err(text, 0, 1, "empty pattern or white space around it",
                   "e.g. 'tracepoint:syscalls:sys_enter_open*' or '*execve*'")
    for i, ch in enumerate(text):
        if not ch.isprintable() or ch.isspace():
            raise _err(text, i, 1, f"character {ch!r} cannot be in a pattern")
    if text.endswith("]"):
        raise _err(text, text.rfind("["), len(text) - max(text.rfind("["), 0),
                   "options ([pid=N], [maxactive=N]) are not part of a listing pattern",
                   "list the hooks, then attach with options through the hook classes")
    split = _split_kind(text)
    if split is None:
        return _bare(text)
    word, body = split
    kinds = _kinds_for(text, word)
    rest = text[body:]
    wildcard_kind = len(kinds) > 1 or has_wildcard(word)
    out: list[_Query] = []
    first_error: SpecError | None = None
    for kind in kinds:
        if wildcard_kind and kind in ("uprobe", "uretprobe") and "/" not in rest:
            # '*:sched:sched_switch' names a tracepoint, not a binary called 'sched': a
            # kind wildcard reaches user space only through a path
            continue
        try:
            out.append(_kind_query(text, kind, body, rest))
        except SpecError as err:
            if not wildcard_kind:
                raise
            first_error = first_error or err
    if not out:
        assert first_error is not None
        raise first_error
    return out


def _bare(text: str) -> list[_Query]:
    """A pattern without ':' searches every kernel kind, as ``bpftrace -l WORD`` does."""
    out: list[_Query] = []
    if _check_part(check_trace_name, text) is None:
        out.append(_Query("tracepoint", ("*", text), 0))
        out.append(_Query("rawtracepoint", (None, text), 0))
    if _check_part(check_kernel_symbol, text) is None:
        out.append(_Query("kprobe", (None, text), 0))
    if not out:
        _validate(text, 0, text, check_kernel_symbol)
    return out


def _kind_query(text: str, kind: str, body: int, rest: str) -> _Query:
    if not rest:
        raise _err(text, body, 1, f"missing target after {text[:body]!r}",
                   f"e.g. {kind}:*")
    if kind == "tracepoint":
        parts = rest.split(":")
        if len(parts) > 2:
            extra = body + len(parts[0]) + len(parts[1]) + 1
            raise _err(text, extra, 1, "too many ':' parts",
                       "expected tracepoint:CATEGORY:EVENT or tracepoint:EVENT")
        if len(parts) == 1:
            _validate(text, body, rest, lambda s: check_trace_name(s, "tracepoint event"))
            return _Query(kind, ("*", rest), body)
        cat, ev = parts
        _validate(text, body, cat, lambda s: check_trace_name(s, "tracepoint category"))
        _validate(text, body + len(cat) + 1, ev,
                  lambda s: check_trace_name(s, "tracepoint event"))
        return _Query(kind, (cat, ev), body)
    if kind in ("kprobe", "kretprobe", "rawtracepoint"):
        parts = rest.split(":")
        if len(parts) > 2:
            extra = body + len(parts[0]) + len(parts[1]) + 1
            raise _err(text, extra, 1, "too many ':' parts",
                       f"expected {kind}:[MODULE:]NAME")
        module = parts[0] if len(parts) == 2 else None
        name = parts[-1]
        if module is not None:
            _validate(text, body, module, check_module)
        name_at = body + (len(module) + 1 if module is not None else 0)
        if kind == "rawtracepoint":
            _validate(text, name_at, name, lambda s: check_trace_name(s, "raw tracepoint name"))
        else:
            if "+" in name:
                raise _err(text, name_at + name.index("+"), 1,
                           "offsets are not part of a listing pattern")
            _validate(text, name_at, name, check_kernel_symbol)
        return _Query(kind, (module, name), body)
    if kind in ("uprobe", "uretprobe"):
        colon = rest.rfind(":")
        if colon == -1:
            raise _err(text, len(text), 1, "missing ':SYMBOL' after the binary",
                       f"expected {kind}:BINARY:PATTERN, e.g. {kind}:/bin/bash:read*")
        binary, sym = rest[:colon], rest[colon + 1:]
        _validate(text, body, binary, check_path)
        if has_wildcard(binary) and not binary.startswith("/"):
            raise _err(text, body, len(binary),
                       "a wildcard in the binary needs an absolute path",
                       f"e.g. {kind}:/usr/lib/x86_64-linux-gnu/libc.so*:malloc")
        _validate(text, body + colon + 1, sym, check_user_symbol)
        return _Query(kind, (binary, sym), body)
    # xdp, raw_socket
    iface = rest
    if kind == "xdp" and ":" in rest:
        iface = rest.split(":", 1)[0]
    _validate(text, body, iface, check_interface)
    return _Query(kind, (iface,), body)


# --------------------------------------------------------------------------- sources


_FUNC_LINE = re.compile(
    rb"^[0-9a-fA-F]+ [TtWw] ([A-Za-z_][A-Za-z0-9_.]*)(?:\t\[([A-Za-z0-9_-]+)\])?$", re.M
)
# starts with a literal, so the regex engine skips ahead with a fast search
_TRACEITER = re.compile(rb"__traceiter_([A-Za-z0-9_]+)(?:\t\[([A-Za-z0-9_-]+)\])?\n")
_kallsyms_bytes: dict[Path, bytes] = {}


def _kallsyms_data(path: Path = KALLSYMS_FILE) -> bytes:
    """The raw kallsyms text, read once (one read of ~10 MB of kernel output)."""
    data = _kallsyms_bytes.get(path)
    if data is None:
        from ebpfhooks.errors import HookPermissionError

        try:
            data = path.read_bytes()
        except PermissionError as err:
            raise HookPermissionError(
                f"cannot read {path}: permission denied; rerun as root",
                capability="CAP_SYSLOG",
            ) from err
        _kallsyms_bytes[path] = data
    return data


def clear_cache() -> None:
    """Forget cached kallsyms text (read again on the next query).

    >>> clear_cache()
    """
    _kallsyms_bytes.clear()


def _kernel_functions_kallsyms(data: bytes) -> list[tuple[str | None, str]]:
    """(module, name) of every function symbol (T/t/W/w) but ``__pfx_`` padding."""
    out = []
    for name_b, mod_b in _FUNC_LINE.findall(data):
        if name_b.startswith(b"__pfx_"):
            continue
        out.append((mod_b.decode() if mod_b else None, name_b.decode()))
    return out


def _raw_tracepoints_btf_or_kallsyms() -> tuple[list[tuple[str | None, str]], str]:
    """(module, name) of every raw tracepoint, and where they came from.

    From BTF's ``btf_trace_`` types (:mod:`ebpfhooks.kernel.rawtp`: exactly what
    attaches, in milliseconds); from /proc/kallsyms ``__traceiter_`` symbols when the
    kernel has no BTF.
    """
    from ebpfhooks.kernel.rawtp import raw_tracepoints

    found = raw_tracepoints()
    if found is not None:
        return found, "/sys/kernel/btf/vmlinux and /sys/kernel/btf/MODULE (btf_trace_* types)"
    return (_raw_tracepoints(_kallsyms_data()),
            f"{KALLSYMS_FILE} (__traceiter_* symbols; the kernel has no BTF)")


def _raw_tracepoints(data: bytes) -> list[tuple[str | None, str]]:
    """(module, name) of every ``ADDR TYPE __traceiter_NAME [MODULE]`` line."""
    out = []
    for m in _TRACEITER.finditer(data):
        if data[m.start() - 1] == 0x20:  # preceded by "TYPE ": not __pfx___traceiter_
            mod = m.group(2)
            out.append((mod.decode() if mod else None, m.group(1).decode()))
    return out


def _filter_functions_with_modules(text: str) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        mod = parts[1][1:-1] if len(parts) > 1 and parts[1].startswith("[") else None
        out.append((mod, parts[0]))
    return out


def _tracepoints(events: Path, category_ok: Callable[[str], bool]) -> list[tuple[str, str]]:
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
        from ebpfhooks.errors import HookPermissionError

        raise HookPermissionError(
            f"cannot read {events}: permission denied; tracefs is readable by root only, "
            "rerun as root (e.g. with sudo)", capability="CAP_DAC_READ_SEARCH") from err
    for cat in categories:
        if not category_ok(cat.name):
            continue
        with os.scandir(cat.path) as entries:
            out.extend((cat.name, e.name) for e in entries if e.is_dir())
    return out


def _kprobes_supported() -> bool:
    """Cheap form of ``features.kprobes()`` (which may decompress /proc/config.gz)."""
    from ebpfhooks.kernel.mounts import tracefs_root

    if Path("/sys/bus/event_source/devices/kprobe").exists():  # features.PMU_DIR
        return True
    try:
        return (tracefs_root() / "kprobe_events").exists()
    except EbpfHooksError:
        from ebpfhooks.kernel import features
        from ebpfhooks.kernel.features import FeatureStatus

        return features.kprobes().status is not FeatureStatus.NO


class _KernelFunctions:
    """Where kernel function names come from on this machine, and why."""

    def __init__(self, include_unsupported: bool) -> None:
        self.include_unsupported = include_unsupported
        self._names: list[tuple[str | None, str]] | None = None
        self.source = ""
        self.note: str | None = None
        self.supported: bool | None = None

    def names(self) -> list[tuple[str | None, str]]:
        if self._names is not None:
            return self._names
        self.supported = _kprobes_supported()
        if not self.supported and not self.include_unsupported:
            self.note = ("kprobe/kretprobe hooks not listed: this kernel has no kprobes "
                         "(CONFIG_KPROBES; see `ebpfhooks doctor`); `ebpfhooks list --all` "
                         "(include_unsupported=True) lists its functions from /proc/kallsyms")
            self.source = "none (kprobes not supported)"
            self._names = []
            return self._names
        names: list[tuple[str | None, str]] | None = None
        if self.supported:
            from ebpfhooks.kernel.tracefs import kprobe_blacklist, tracefs_root

            try:
                path = tracefs_root() / "available_filter_functions"
                text = path.read_text(encoding="utf-8", errors="surrogateescape")
                black = kprobe_blacklist()
                names = [(m, n) for m, n in _filter_functions_with_modules(text)
                         if n not in black and check_kernel_symbol(n) is None]
                self.source = f"{path} minus <debugfs>/kprobes/blacklist"
            except (OSError, EbpfHooksError):
                names = None
        if names is None:
            names = _kernel_functions_kallsyms(_kallsyms_data())
            self.source = f"{KALLSYMS_FILE} (function symbols T/t/W/w)"
            if not self.supported:
                self.source += ", listed although this kernel cannot attach kprobes"
        self._names = names
        return names


class Listing:
    """What :func:`search` found: ``hooks`` (canonical specs), ``sources`` and ``notes``.

    ``sources`` maps each kind searched to where its names came from; ``notes`` say
    what was left out and why (kinds this kernel cannot attach, unreadable files);
    ``denied`` is the first :class:`ebpfhooks.HookPermissionError` met (the listing is
    then incomplete for this process), else ``None``.

    >>> Listing("x", [], {}, []).hooks
    []
    """

    __slots__ = ("_uprobe_parts", "denied", "hooks", "notes", "pattern", "sources")

    def __init__(self, pattern: str, hooks: list[str], sources: dict[str, str],
                 notes: list[str]) -> None:
        self.pattern = pattern
        self.hooks = hooks
        self.sources = sources
        self.notes = notes
        self.denied: HookPermissionError | None = None
        #: spec -> (kind, binary, symbol) of the uprobe lines, so expand() builds those
        #: hooks without parsing each spec again
        self._uprobe_parts: dict[str, tuple[str, str, str]] = {}

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

    Raises :class:`SpecError` for a malformed pattern (with a caret under the bad
    character), :class:`ebpfhooks.TracefsNotMountedError` when tracepoints are asked
    for and tracefs is not mounted, and the binary errors of uprobes.
    """
    queries = _queries(pattern)
    found: set[str] = set()
    sources: dict[str, str] = {}
    notes: list[str] = []
    funcs = _KernelFunctions(include_unsupported)
    wildcard_kind = len({q.kind for q in queries}) > 1
    uprobe_parts: dict[str, tuple[str, str, str]] = {}
    denied: HookPermissionError | None = None
    for q in queries:
        try:
            _run_query(q, found, sources, funcs, uprobe_parts)
        except EbpfHooksError as err:
            if not wildcard_kind:
                raise
            if isinstance(err, HookPermissionError) and denied is None:
                denied = err
            notes.append(f"{q.kind}: not listed: {err}")
    if funcs.note and any(q.kind in ("kprobe", "kretprobe") for q in queries):
        notes.append(funcs.note)
    listing = Listing(pattern, sorted(found), sources, notes)
    listing._uprobe_parts = uprobe_parts
    listing.denied = denied
    return listing


def _run_query(q: _Query, found: set[str], sources: dict[str, str],
               funcs: _KernelFunctions, uprobe_parts: dict[str, tuple[str, str, str]]) -> None:
    kind = q.kind
    if kind == "tracepoint":
        from ebpfhooks.kernel.mounts import tracefs_root

        cat_pat, ev_pat = q.parts
        assert cat_pat is not None and ev_pat is not None
        cat_ok, ev_ok = _matcher(cat_pat), _matcher(ev_pat)
        events = tracefs_root() / "events"
        found.update(f"tracepoint:{c}:{e}" for c, e in _tracepoints(events, cat_ok)
                     if ev_ok(e))
        sources["tracepoint"] = f"{events}/CATEGORY/EVENT (what available_events lists)"
    elif kind == "rawtracepoint":
        mod_pat, name_pat = q.parts
        assert name_pat is not None
        mod_ok = _matcher(mod_pat) if mod_pat is not None else None
        ok = _matcher(name_pat)
        raws, source = _raw_tracepoints_btf_or_kallsyms()
        for mod, name in raws:
            if ok(name) and (mod_ok is None or (mod is not None and mod_ok(mod))):
                found.add(f"rawtracepoint:{mod}:{name}" if mod else f"rawtracepoint:{name}")
        sources["rawtracepoint"] = source
    elif kind in ("kprobe", "kretprobe"):
        mod_pat, name_pat = q.parts
        assert name_pat is not None
        mod_ok = _matcher(mod_pat) if mod_pat is not None else None
        ok = _matcher(name_pat)
        for mod, name in funcs.names():
            if ok(name) and (mod_ok is None or (mod is not None and mod_ok(mod))):
                found.add(f"{kind}:{mod}:{name}" if mod else f"{kind}:{name}")
        sources[kind] = funcs.source
    elif kind in ("uprobe", "uretprobe"):
        binary, sym = q.parts
        assert binary is not None and sym is not None
        _uprobe_query(kind, binary, sym, found, uprobe_parts)
        sources[kind] = "the binary's ELF symbol tables (.dynsym, .symtab, debug file)"
    else:
        from ebpfhooks.kernel.netdev import interfaces

        (iface_pat,) = q.parts
        assert iface_pat is not None
        ok = _matcher(iface_pat)
        found.update(f"{kind}:{name}" for name in interfaces() if ok(name))
        sources[kind] = "the interfaces of this network namespace"


def _uprobe_query(kind: str, binary: str, sym: str, found: set[str],
                  parts: dict[str, tuple[str, str, str]]) -> None:
    from ebpfhooks.elf.resolve import function_symbols, resolve_binary

    if has_wildcard(binary):
        import glob

        paths = [(p, Path(p)) for p in sorted(glob.glob(binary)) if os.path.isfile(p)]
    else:
        paths = [(binary, resolve_binary(binary))]
    ok = _matcher(sym)
    for shown, path in paths:
        try:
            symbols = function_symbols(path)
        except EbpfHooksError:
            if len(paths) == 1:
                raise
            continue  # a glob may catch files that are not ELF
        for s in symbols:
            if ok(s.name) and check_user_symbol(s.name) is None:
                spec = f"{kind}:{shown}:{s.name}"
                found.add(spec)
                parts[spec] = (kind, shown, s.name)


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


# --------------------------------------------------------------------------- expand


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
        from ebpfhooks.hooks.base import LinkGroup

        return LinkGroup.attach_all(list(self._hooks), prog, fn_name, optional=optional)

    def resolve(self) -> list[Resolution]:
        """Check every hook without attaching: what ``attach`` checks before the kernel.

        >>> [r.describe() for r in expand("t:sched:sched_switch").resolve()]  # doctest: +SKIP
        ['tracepoint:sched:sched_switch']

        Privileges and kernel support once per kind, then every target (uprobes in bulk:
        one binary lookup and symbol index per file). Raises the first error.
        """
        from ebpfhooks.hooks.base import check_and_resolve

        return [r for r in check_and_resolve(self._hooks) if not isinstance(r, Exception)]


def expand(spec: str, *, include_unsupported: bool = False) -> HookSet:
    """Turn a spec with wildcards into the hooks it matches (a spec without any: itself).

    >>> [str(h) for h in expand("t:sched:sched_switch")]  # doctest: +SKIP
    ['tracepoint:sched:sched_switch']

    Raises :class:`SpecError` for a malformed pattern,
    :class:`ebpfhooks.NotSupportedError` when the pattern names only kprobes on a kernel
    without them, :class:`ebpfhooks.HookNotFoundError` when nothing matches, and
    :class:`ebpfhooks.HookPermissionError` when a kind could not be read by this process.
    """
    if isinstance(spec, str) and not has_wildcard(spec):
        from ebpfhooks.spec import parse

        return HookSet(spec, [parse(spec)])
    listing = search(spec, include_unsupported=include_unsupported)
    if listing.denied is not None:
        raise listing.denied  # a partial set would be a wrong answer
    if not listing.hooks:
        kinds = {q.kind for q in _queries(spec)}
        if (kinds <= {"kprobe", "kretprobe"} and not include_unsupported
                and not _kprobes_supported()):
            from ebpfhooks.hooks.kprobe import stable_alternative

            parts = _queries(spec)[0].parts
            word = (parts[-1] or "").strip("*?")
            raise NotSupportedError(
                f"{spec} matches no hook: this kernel has no kprobe support",
                missing="CONFIG_KPROBES",
                alternative=stable_alternative(word, ret=kinds == {"kretprobe"}) if word
                else None,
            )
        raise HookNotFoundError(
            spec, where=", ".join(sorted(listing.sources.values())) or "this system",
            hint=(listing.notes[0] + "\n" if listing.notes else "")
            + "see what exists with: ebpfhooks list 'PATTERN' (e.g. '*WORD*')",
        )
    from ebpfhooks.hooks.uprobe import Symbol, Uprobe, Uretprobe
    from ebpfhooks.spec import parse

    classes = {"uprobe": Uprobe, "uretprobe": Uretprobe}
    hooks: list[Hook] = []
    for line in listing.hooks:
        part = listing._uprobe_parts.get(line)
        # a uprobe line is built from its parts (what parse() would build, ~10x faster:
        # a wildcard in a big library lists thousands)
        hooks.append(classes[part[0]](part[1], Symbol(part[2])) if part else parse(line))
    return HookSet(spec, hooks)


# --------------------------------------------------------------------------- kallsyms


def filter_kallsyms(
    text: str,
    pattern: str | None = None,
    *,
    module: str | None = None,
    type: str | None = None,
) -> list[KSym]:
    """Parse kallsyms text, keeping the symbols that match (pure, no I/O).

    ``pattern`` matches the name (wildcards allowed), ``module`` the module (``vmlinux``
    for the core kernel), ``type`` is one or more type letters (case matters: ``T``
    global text, ``t`` local text). Hidden addresses (all zero: ``kptr_restrict`` or not
    root) are marked on every symbol, never presented as real.

    >>> [str(s) for s in filter_kallsyms(
    ...     "0000000000000000 T vfs_read\\n0000000000000000 t nf_hook\\t[nf_tables]\\n",
    ...     "nf_*")]
    ['(hidden) t nf_hook [nf_tables]']

    Raises :class:`SpecError` for a pattern or module that is not a symbol name.
    """
    from ebpfhooks.kernel.kallsyms import KSym, parse_kallsyms

    if pattern is not None:
        _validate(pattern, 0, pattern, check_kernel_symbol)
    if module is not None and module != "vmlinux":
        _validate(module, 0, module, check_module)
    if type is not None and (not type or not all(ch.isalpha() for ch in type)):
        raise SpecError(f"symbol type {type!r} is not one or more type letters",
                        hint="e.g. --type T (global text) or --type tT; see `ebpfhooks "
                             "kallsyms --help` for the letters")
    hidden = _addresses_hidden(text)
    name_ok = _matcher(pattern) if pattern is not None else None
    mod_ok = _matcher(module) if module is not None else None
    picked: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        if name_ok is not None and not name_ok(parts[2]):
            continue
        if type is not None and parts[1] not in type:
            continue
        if mod_ok is not None:
            mod = parts[3][1:-1] if len(parts) > 3 else "vmlinux"
            if not mod_ok(mod):
                continue
        picked.append(line)
    syms = parse_kallsyms("\n".join(picked))
    return [KSym(s.address, s.type, s.name, s.module, hidden) for s in syms]


def _addresses_hidden(text: str) -> bool:
    """True when every address of the table is zero (kallsyms hides them)."""
    return re.search(r"^0*[1-9a-fA-F][0-9a-fA-F]* ", text, re.M) is None and bool(text.strip())


def kallsyms(
    pattern: str | None = None,
    *,
    module: str | None = None,
    type: str | None = None,
    path: Path | str = KALLSYMS_FILE,
) -> list[KSym]:
    """The kernel symbols matching ``pattern``/``module``/``type``, from /proc/kallsyms.

    >>> [s.type_description for s in kallsyms("do_sys_openat2")]  # doctest: +SKIP
    ['local text (code)']

    Each :class:`ebpfhooks.kernel.kallsyms.KSym` has ``address`` (use
    ``real_address``: ``None`` when kallsyms hides addresses), ``type`` and its
    ``type_description``, ``name`` and ``module``. The file is read once per process.
    """
    data = _kallsyms_data(Path(path))
    return filter_kallsyms(data.decode("utf-8", errors="surrogateescape"), pattern,
                           module=module, type=type)


#: Every kallsyms type letter, explained (lower case: local; upper case: global).
TYPE_LETTERS = {
    "A/a": "absolute value", "B/b": "uninitialised data (bss)", "D/d": "initialised data",
    "R/r": "read-only data", "T/t": "text (code): functions", "W/w": "weak symbol",
    "V/v": "weak object", "U": "undefined", "N": "debugging symbol",
}


# --------------------------------------------------------------------------- info


class HookInfo:
    """What one hook is on this system: its kind's facts plus what was found for it.

    ``spec`` is the canonical spec, ``kind`` the kind, ``facts`` a JSON-ready dict (the
    kind's details: format fields, kallsyms records, ELF symbol...), ``attachable``
    whether this kernel/machine can attach it and ``problem`` why not.
    ``str(info)`` is the readable report.
    """

    __slots__ = ("attachable", "facts", "kind", "problem", "spec", "text")

    def __init__(self, spec: str, kind: str, facts: dict[str, Any], text: list[str],
                 attachable: bool | None, problem: str | None) -> None:
        self.spec = spec
        self.kind = kind
        self.facts = facts
        self.text = text
        self.attachable = attachable
        self.problem = problem

    def __repr__(self) -> str:
        state = {True: "attachable", False: "not attachable", None: "attachable?"}
        return f"<HookInfo {self.spec} ({state[self.attachable]})>"

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {"spec": self.spec, "kind": self.kind, "attachable": self.attachable,
                "problem": self.problem, **self.facts}

    def __str__(self) -> str:
        return "\n".join(self.text)


def _field_dict(f: TracepointField) -> dict[str, Any]:
    return {"name": f.name, "type": f.type, "declaration": f.declaration, "offset": f.offset,
            "size": f.size, "signed": f.signed}


def _attachable(hook: Hook) -> tuple[bool | None, str | None]:
    try:
        hook.check_supported()
    except NotSupportedError as err:
        return False, str(err).splitlines()[0]
    return True, None


def info(spec: str) -> HookInfo:
    """Describe one hook (the seed's ``bpftrace -lv``, and more).

    >>> print(info("tracepoint:sched:sched_switch"))  # doctest: +SKIP
    tracepoint:sched:sched_switch  (stable; ID 372; /sys/kernel/tracing/events/...)
        char prev_comm[16]            offset 8    size 16  unsigned
        ...

    - tracepoint: the parsed ``format`` (ID, each field's type, offset, size and
      signedness, the print fmt);
    - kprobe/kretprobe: its /proc/kallsyms record(s) (address, type, module), whether
      it is in ``available_filter_functions`` and on the kprobe blacklist, the stable
      alternative, and its C signature from BTF (/sys/kernel/btf/vmlinux) where the
      kernel has one;
    - rawtracepoint: its ``__traceiter_`` symbol and the tracefs event of that name;
    - uprobe/uretprobe: file, symbol, virtual address, file offset, size, binding,
      type, version;
    - xdp/raw_socket: the interface index and any XDP program already attached.

    Raises :class:`SpecError` (wildcards: use :func:`list_hooks`) and the lookup
    errors of the hook's ``resolve()`` for a missing tracepoint, binary or interface.
    """
    from ebpfhooks.spec import parse

    if isinstance(spec, str) and has_wildcard(spec):
        raise SpecError(
            "info describes one hook; the spec has a wildcard", spec=spec,
            column=min(i for i, ch in enumerate(spec) if ch in WILDCARDS),
            hint=f"list the matches first: ebpfhooks list '{spec}'",
        )
    hook = parse(spec)
    attachable, problem = _attachable(hook)
    head = (f"{hook}  ({'stable' if hook.stable else 'unstable'} interface; fires "
            f"{hook.fires}; minimum kernel {hook.min_kernel[0]}.{hook.min_kernel[1]})")
    facts: dict[str, Any] = {
        "stable": hook.stable, "fires": hook.fires, "bcc_entry": hook.bcc_entry,
        "program_type": hook.program_type, "overhead": hook.overhead,
        "min_kernel": ".".join(map(str, hook.min_kernel)),
    }
    text = [head]
    kind = hook.kind
    if kind == "tracepoint":
        _info_tracepoint(hook, facts, text)
    elif kind in ("kprobe", "kretprobe"):
        _info_kprobe(hook, facts, text)
    elif kind == "rawtracepoint":
        _info_raw_tracepoint(hook, facts, text)
    elif kind in ("uprobe", "uretprobe"):
        _info_uprobe(hook, facts, text)
    else:
        _info_interface(hook, facts, text)
    text.append(f"    attachable here: {'yes' if attachable else 'no: ' + str(problem)}"
                + (_unprivileged_note(hook) if attachable else ""))
    return HookInfo(str(hook), kind, facts, text, attachable, problem)


def _unprivileged_note(hook: Hook) -> str:
    """``""``, or what this process lacks to attach ``hook`` itself."""
    try:
        hook.check_privileges()
    except HookPermissionError:
        needs = " or ".join("+".join(sorted(caps)) for caps in hook.capabilities)
        return f", by root ({needs}): not by this process, which lacks them"
    return ""


def _info_tracepoint(hook: Any, facts: dict[str, Any], text: list[str]) -> None:
    from ebpfhooks.kernel.tracefs import read_format, tracefs_root

    hook.resolve()  # TracepointNotFoundError with close names
    fmt = read_format(hook.category, hook.event)
    path = tracefs_root() / "events" / hook.category / hook.event / "format"
    facts.update({"id": fmt.id, "format_file": str(path),
                  "fields": [_field_dict(f) for f in fmt.fields],
                  "common_fields": [_field_dict(f) for f in fmt.common_fields],
                  "print_fmt": fmt.print_fmt})
    text.append(f"    ID: {fmt.id}   format: {path}")
    width = max((len(f.declaration) for f in fmt.fields), default=0)
    for f in fmt.fields:
        text.append(f"    {f.declaration:<{width}}   offset {f.offset:<4} size {f.size:<3} "
                    f"{'signed' if f.signed else 'unsigned'}")
    text.append(f"    print fmt: {fmt.print_fmt}")


def _info_kprobe(hook: Any, facts: dict[str, Any], text: list[str]) -> None:
    from ebpfhooks.hooks.kprobe import stable_alternative
    from ebpfhooks.kernel.tracefs import available_filter_functions, kprobe_blacklist

    syms = kallsyms(hook.symbol, module=hook.module)
    if not syms:
        res = hook.resolve()  # raises SymbolNotFoundError with the closest names
        syms = kallsyms(res.symbol, module=hook.module)
    facts["kallsyms"] = [_ksym_dict(s) for s in syms]
    for s in syms:
        text.append(f"    kallsyms: {_ksym_line(s)}")
    names = [hook.symbol, *(s.name for s in syms)]  # BTF is looked up by these
    try:
        res = hook.resolve()
        facts["resolves_to"] = str(res)
        text.append(f"    resolves to: {res}")
        names.insert(0, res.symbol)
    except EbpfHooksError as err:
        facts["resolves_to"] = None
        facts["resolve_error"] = str(err)
        text.append(f"    does not resolve: {str(err).splitlines()[0]}")
    funcs = available_filter_functions()
    traceable = None if funcs is None else hook.symbol in funcs
    facts["in_available_filter_functions"] = traceable
    text.append("    in available_filter_functions: "
                + ("unknown (the file is not readable here)" if traceable is None
                   else "yes" if traceable else "no (inlined, notrace or not a function)"))
    black = hook.symbol in kprobe_blacklist()
    facts["blacklisted"] = black
    text.append(f"    on the kprobe blacklist: {'yes' if black else 'no'}")
    alt = stable_alternative(hook.symbol)
    facts["stable_alternative"] = alt
    if alt:
        text.append(f"    stable alternative: {alt}")
    sig = _btf_signature(names)
    facts["btf_signature"] = sig
    text.append(f"    signature: {sig}" if sig else
                "    signature: unknown (no BTF for it in /sys/kernel/btf/vmlinux)")


def _btf_signature(symbols: list[str]) -> str | None:
    """The BTF prototype of the first of ``symbols`` (or its name before a ``.isra``-style
    suffix) that /sys/kernel/btf/vmlinux has; ``None`` without BTF or a match."""
    from ebpfhooks.errors import BtfFormatError
    from ebpfhooks.kernel.btf import vmlinux_btf

    try:
        btf = vmlinux_btf()
        if btf is None:
            return None
        for sym in symbols:
            for name in (sym, sym.split(".")[0]):
                if name and (sig := btf.function_signature(name)) is not None:
                    return sig
    except BtfFormatError:
        return None
    return None


def _ksym_dict(s: KSym) -> dict[str, Any]:
    return {"name": s.name, "type": s.type, "type_description": s.type_description,
            "address": s.real_address, "module": s.module}


def _ksym_line(s: KSym) -> str:
    addr = "(address hidden)" if s.address_hidden else f"{s.address:#018x}"
    mod = f" [{s.module}]" if s.module else ""
    return f"{addr} {s.type} {s.name}{mod}  ({s.type_description})"


def _info_raw_tracepoint(hook: Any, facts: dict[str, Any], text: list[str]) -> None:
    from ebpfhooks.kernel.tracefs import list_tracepoints

    res = hook.resolve()
    syms = kallsyms("__traceiter_" + hook.event, module=hook.module)
    facts["kallsyms"] = [_ksym_dict(s) for s in syms]
    facts["module"] = res.module
    for s in syms:
        text.append(f"    kallsyms: {_ksym_line(s)}")
    events: list[str] | None
    try:
        events = [f"tracepoint:{c}:{e}" for c, e in list_tracepoints() if e == hook.event]
    except EbpfHooksError as err:
        events = None
        text.append(f"    same tracepoint with parsed arguments: unknown ({err})")
    facts["tracepoint_events"] = events
    if events:
        text.append(f"    same tracepoint with parsed arguments: {', '.join(events)}")
    args = _raw_tracepoint_args(hook.event) if res.module is None else None
    facts["args"] = args
    if args is None:
        text.append("    arguments: ctx->args[0..] are the tracepoint's C arguments (TP_PROTO)")
    else:
        text.append(f"    arguments (BTF typedef btf_trace_{hook.event}):")
        text.extend(f"        ctx->args[{i}]: {a}" for i, a in enumerate(args))


def _raw_tracepoint_args(event: str) -> list[str] | None:
    """The C types of the raw tracepoint's args from vmlinux BTF, or ``None``."""
    from ebpfhooks.errors import BtfFormatError
    from ebpfhooks.kernel.btf import vmlinux_btf

    try:
        btf = vmlinux_btf()
        return None if btf is None else btf.raw_tracepoint_args(event)
    except BtfFormatError:
        return None


def _info_uprobe(hook: Any, facts: dict[str, Any], text: list[str]) -> None:
    res = hook.resolve()
    t = res.target
    facts.update({"file": str(t.path), "symbol": t.symbol, "version": t.version,
                  "vaddr": t.vaddr, "file_offset": t.file_offset, "offset": t.offset,
                  "size": t.size, "binding": t.binding, "type": t.type, "ifunc": t.ifunc,
                  "note": t.note, "pid": hook.pid})
    text.append(f"    file: {t.path}")
    text.append(f"    symbol: {t.symbol or '-'}" + (f"@{t.version}" if t.version else "")
                + (f" +{t.offset:#x}" if t.offset else ""))
    text.append(f"    virtual address: {t.vaddr:#x}   file offset: {t.file_offset:#x}   "
                f"size: {t.size}")
    text.append(f"    binding: {t.binding or '-'}   type: {t.type or '-'}   "
                f"version: {t.version or '-'}")
    if t.note:
        text.append(f"    note: {t.note}")


def _info_interface(hook: Any, facts: dict[str, Any], text: list[str]) -> None:
    res = hook.resolve()
    facts["interface"] = hook.interface
    facts["ifindex"] = res.ifindex
    text.append(f"    interface: {hook.interface}   ifindex: {res.ifindex}")
    if hook.kind == "xdp":
        from ebpfhooks.kernel.netdev import xdp_attached

        try:
            prog = xdp_attached(hook.interface)
        except EbpfHooksError:
            prog = None
        facts["xdp_program_attached"] = prog
        text.append("    XDP program attached now: "
                    + (f"id {prog} (attach would be refused)" if prog else "none"))


# --------------------------------------------------------------------------- suggest


class Candidate:
    """One way to observe WORD: ``spec``, ``kind``, ``stable``, ``attachable`` and ``why``.

    >>> Candidate("tracepoint:a:b", "tracepoint", True, True, "").stable
    True
    """

    __slots__ = ("attachable", "kind", "spec", "stable", "why")

    def __init__(self, spec: str, kind: str, stable: bool, attachable: bool | None,
                 why: str) -> None:
        self.spec = spec
        self.kind = kind
        self.stable = stable
        self.attachable = attachable
        self.why = why

    def __repr__(self) -> str:
        return (f"Candidate(spec={self.spec!r}, kind={self.kind!r}, stable={self.stable}, "
                f"attachable={self.attachable}, why={self.why!r})")

    def to_dict(self) -> dict[str, Any]:
        """The candidate as JSON-ready data."""
        return {"spec": self.spec, "kind": self.kind, "stable": self.stable,
                "attachable": self.attachable, "why": self.why}


class Suggestion:
    """Every candidate for a word, and the one to use (``recommended``) with the reason."""

    __slots__ = ("candidates", "more", "notes", "reason", "recommended", "ret", "word")

    def __init__(self, word: str, candidates: list[Candidate], recommended: str | None,
                 reason: str, more: dict[str, int], notes: list[str] | None = None,
                 ret: bool = False) -> None:
        self.word = word
        self.ret = ret
        self.notes = list(notes or [])
        self.candidates = candidates
        self.recommended = recommended
        self.reason = reason
        self.more = more

    def __repr__(self) -> str:
        return (f"<Suggestion {self.word!r}{' (return)' if self.ret else ''}: "
                f"recommended {self.recommended}, {len(self.candidates)} candidates>")

    def to_dict(self) -> dict[str, Any]:
        """The suggestion as JSON-ready data."""
        return {"word": self.word, "return": self.ret, "recommended": self.recommended,
                "reason": self.reason, "chain": self.chain(),
                "candidates": [c.to_dict() for c in self.candidates], "more": self.more,
                "notes": self.notes}

    def chain(self) -> str | None:
        """A fallback chain to paste into ``first_of``/``trace``, ordered by the seed's rule.

        >>> suggest("execve").chain()  # doctest: +SKIP
        'tracepoint:syscalls:sys_enter_execve | kprobe:__x64_sys_execve | ...'

        The recommended stable tracepoint first, then the kernel function itself, its
        syscall wrapper and ``do_``/``__`` variants and its compiler clones
        (``.isra.N``...) as kprobes (kretprobes for a suggestion about the return,
        ``suggest(word, ret=True)``): on a kernel where one is missing or renamed, the
        chain falls through to the next. ``None`` when nothing observes the word.
        """
        parts: list[str] = []
        if self.recommended and self.recommended.startswith("tracepoint:"):
            parts.append(self.recommended)
        probe = "kretprobe" if self.ret else "kprobe"
        for c in self.candidates:
            if c.kind != probe:
                continue
            name = c.spec.split(":", 1)[1]
            if (_func_rank(self.word, name)[0] <= 2 or name == f"__{self.word}"
                    or name.startswith(f"{self.word}.")):
                parts.append(c.spec)
        if self.recommended and self.recommended not in parts:
            parts.append(self.recommended)
        return " | ".join(dict.fromkeys(parts)) or None


#: Kernel functions whose stable replacement is not named after them (domain knowledge).

_MAX_KERNEL_FUNCS = 8


def _tp_rank(word: str, cat: str, ev: str, ret: bool = False) -> tuple[int, str, int, str]:
    first, second = ("sys_exit_", "sys_enter_") if ret else ("sys_enter_", "sys_exit_")
    if cat == "syscalls" and ev == f"{first}{word}":
        r = 0
    elif ev == word:
        r = 1
    elif cat == "syscalls" and ev == f"{second}{word}":
        r = 2
    elif cat == "syscalls" and ev.rstrip("0123456789") in (f"sys_enter_{word}",
                                                        f"sys_exit_{word}"):
        r = 3
    else:
        r = 4
    core = ev.replace("sys_enter_", "").replace("sys_exit_", "")
    return r, core, second in ev, f"{cat}:{ev}"


def suggest(word: str, *, ret: bool = False) -> Suggestion:
    """Every way to observe ``word`` on this kernel, and the one to use.

    >>> suggest("execve").recommended  # doctest: +SKIP
    'tracepoint:syscalls:sys_enter_execve'
    >>> suggest("openat", ret=True).recommended  # doctest: +SKIP
    'tracepoint:syscalls:sys_exit_openat'

    ``ret=True`` asks about the return (what a kretprobe would see): the syscall's
    ``sys_exit_*`` tracepoint (``args->ret`` is the return value) comes first, and
    the chain uses kretprobes.

    Candidates across kinds: tracepoints whose event contains ``word``, raw tracepoints,
    kernel functions (kprobe/kretprobe; the syscall wrapper among them), each marked
    stable or not and attachable here or not. The recommendation follows the seed's
    rule: a stable tracepoint first (the syscall entry ``sys_enter_WORD``, an event
    named ``WORD``, the tracepoint :func:`ebpfhooks.hooks.kprobe.stable_alternative`
    finds, or a known stable replacement such as ``sock:inet_sock_set_state`` for
    ``tcp_connect``), then a raw tracepoint, then a kprobe that can attach here.

    Raises :class:`SpecError` when ``word`` is not a plain name (letters, digits, ``_``).
    """
    from ebpfhooks.hooks.kprobe import KNOWN_STABLE, stable_alternative
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.features import FeatureStatus
    from ebpfhooks.kernel.tracefs import list_tracepoints

    if not isinstance(word, str):
        raise SpecError(f"suggest() takes a word (str), got {type(word).__name__}")
    _validate(word, 0, word, check_kernel_symbol)
    if has_wildcard(word):
        raise SpecError("suggest takes a word, not a pattern", spec=word,
                        column=min(i for i, ch in enumerate(word) if ch in WILDCARDS),
                        hint=f"list a pattern with: ebpfhooks list '{word}'")
    cands: list[Candidate] = []
    more: dict[str, int] = {}
    tps = list_tracepoints()
    have_tp = set(f"tracepoint:{c}:{e}" for c, e in tps)
    matching = sorted(((c, e) for c, e in tps if word in e),
                      key=lambda p: _tp_rank(word, p[0], p[1], ret))
    entry, leave = "the syscall's entry (stable ABI)", "the syscall's return (stable ABI)"
    for cat, ev in matching:
        rank = _tp_rank(word, cat, ev, ret)[0]
        why = {0: leave if ret else entry, 1: "an event named after it",
               2: entry if ret else leave, 3: "a variant of the syscall"}.get(rank,
                                                                              "contains it")
        cands.append(Candidate(f"tracepoint:{cat}:{ev}", "tracepoint", True, True, why))
    known = KNOWN_STABLE.get(word)
    if known and known[0] in have_tp and all(c.spec != known[0] for c in cands):
        cands.append(Candidate(known[0], "tracepoint", True, True, known[1]))
    alt = stable_alternative(word, ret=ret)
    if alt and all(c.spec != alt for c in cands):
        cands.append(Candidate(alt, "tracepoint", True, True,
                               "stable alternative of the kernel function"))
    raw_ok = features.raw_tracepoints().status is not FeatureStatus.NO
    try:
        data = _kallsyms_data()
    except EbpfHooksError:
        data = b""
    try:
        all_raws = _raw_tracepoints_btf_or_kallsyms()[0]
    except EbpfHooksError:
        all_raws = []
    raws = sorted({n for m, n in all_raws if word in n}, key=lambda n: (n != word, len(n), n))
    for name in raws:
        cands.append(Candidate(f"rawtracepoint:{name}", "rawtracepoint", True, raw_ok,
                               "raw arguments, cheaper than the tracepoint"))
    kp = features.kprobes()
    kp_ok = kp.status is not FeatureStatus.NO
    kp_why = "" if kp_ok else "not attachable here: this kernel has no kprobes"
    notes = [] if kp_ok else [f"kprobes: {kp.reason}"]
    funcs = sorted({n for m, n in _kernel_functions_kallsyms(data) if word in n},
                   key=lambda n: _func_rank(word, n))
    probe, other = ("kretprobe", "kprobe") if ret else ("kprobe", "kretprobe")
    for i, name in enumerate(funcs[:_MAX_KERNEL_FUNCS]):
        role = _func_role(word, name) + (" (its return value)" if ret else "")
        why = role + ("; " + kp_why if kp_why else "")
        cands.append(Candidate(f"{probe}:{name}", probe, False, kp_ok, why))
        if i == 0:
            cands.append(Candidate(f"{other}:{name}", other, False, kp_ok,
                                   ("its entry" if ret else "its return value")
                                   + ("; " + kp_why if kp_why else "")))
            if features.btf():
                cands.append(Candidate(
                    f"fentry:{name}", "fentry", False, False,
                    "BTF is present, but ebpfhooks does not attach fentry (bpftrace: "
                    f"kfunc:{name}; needs BPF trampolines, x86-64 5.5+)"))
    if len(funcs) > _MAX_KERNEL_FUNCS:
        more[probe] = len(funcs) - _MAX_KERNEL_FUNCS
    recommended, reason = _recommend(word, cands, known, alt, ret)
    return Suggestion(word, cands, recommended, reason, more, notes, ret)


def _func_rank(word: str, name: str) -> tuple[int, int, str]:
    from ebpfhooks.hooks.kprobe import SYSCALL_PREFIXES

    if name == word:
        r = 0
    elif any(name == p + word for p in SYSCALL_PREFIXES):
        r = 1 if name.startswith(("__x64_", "__arm64_", "__s390x_", "__riscv_")) else 3
    elif name in (f"do_{word}", f"__do_{word}", f"do_sys_{word}", f"ksys_{word}"):
        r = 2
    else:
        r = 4
    return r, len(name), name


def _func_role(word: str, name: str) -> str:
    from ebpfhooks.hooks.kprobe import SYSCALL_PREFIXES

    if name == word:
        return "the kernel function itself (unstable: renamed or inlined between kernels)"
    if any(name == p + word for p in SYSCALL_PREFIXES):
        return "syscall wrapper (unstable across architectures and versions)"
    return "kernel function containing the word (unstable)"


def _recommend(word: str, cands: list[Candidate], known: tuple[str, str] | None,
               alt: str | None, ret: bool = False) -> tuple[str | None, str]:
    tps = [c for c in cands if c.kind == "tracepoint"]
    syscall = f"tracepoint:syscalls:{'sys_exit_' if ret else 'sys_enter_'}{word}"
    for c in tps:
        if c.spec == syscall:
            return c.spec, ("a stable tracepoint: the syscall's return (args->ret)" if ret
                            else "a stable tracepoint: the syscall's entry, with parsed "
                            "arguments")
    named = [c for c in tps if c.spec.endswith(f":{word}")]
    if named:
        return named[0].spec, "a stable tracepoint named after it"
    if known and any(c.spec == known[0] for c in tps):
        return known[0], f"a stable tracepoint: {known[1]}"
    if alt and any(c.spec == alt for c in tps):
        return alt, "a stable tracepoint that observes the same thing"
    ranked = [c for c in tps if c.why != "contains it"]
    if ranked:
        return ranked[0].spec, "a stable tracepoint"
    raws = [c for c in cands if c.kind == "rawtracepoint" and c.attachable]
    if raws:
        return raws[0].spec, "a raw tracepoint (stable name, raw arguments)"
    probe = "kretprobe" if ret else "kprobe"
    kps = [c for c in cands if c.kind == probe and c.attachable]
    if kps:
        return kps[0].spec, f"no tracepoint covers it: a {probe} (unstable across kernels)"
    if tps:
        return tps[0].spec, "a stable tracepoint whose name contains the word"
    if any(c.kind == probe for c in cands):
        return None, (f"nothing on this kernel observes {word!r}: no tracepoint covers it, "
                      "and this kernel has no kprobes")
    return None, f"nothing on this kernel observes {word!r}: no tracepoint, raw tracepoint " \
                 "or kernel function has it in its name"
