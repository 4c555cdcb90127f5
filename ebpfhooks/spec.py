"""The spec tokenizer: heads, options, names, numbers, and errors with a caret.

A spec names one hook; a pattern (``ebpfhooks list``, :func:`ebpfhooks.expand`) names
many with ``*`` and ``?``. Both are read here, by the same code: the head (the kind
word, the separator, ``[options]``) by :func:`parse_spec` / :func:`parse_pattern`, the
target by the kind's own ``parse_target`` (in its module under :mod:`ebpfhooks.hooks`)
with the helpers of :class:`Body`; a pattern is the same grammar with wildcards
allowed in names (``Body.pattern``). Which kind a word names is the registry's answer
(:mod:`ebpfhooks.hooks`), passed in as ``kinds``.

Grammar (kind words are case-insensitive; ``[...]`` means optional)::

    spec        := bpftrace | libbpf
    bpftrace    := KIND ":" target [ "[" option ("," option)* "]" ]
    libbpf      := SECTION "/" target
    option      := NAME "=" number
    number      := decimal | "0x" HEX       (non-negative, below 2**63)

    pattern     := WORD                      (a bare word: every kind that takes one)
                 | KIND-PATTERN ":" target   (the kind word may hold wildcards)
                 | SECTION "/" target        (libbpf's spelling)

Each kind writes its ``target`` grammar in its ``parse_target`` docstring.

>>> import ebpfhooks
>>> ebpfhooks.from_spec("k:vfs_read+16")
Kprobe(symbol='vfs_read', module=None, offset=16)
>>> str(ebpfhooks.from_spec("tp/syscalls/sys_enter_openat"))
'tracepoint:syscalls:sys_enter_openat'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ebpfhooks.errors import SpecError
from ebpfhooks.names import WILDCARDS, Problem

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Protocol

    from ebpfhooks.hooks.base import Hook, Pattern

    class Kinds(Protocol):
        """What the parser needs of the registry (:data:`ebpfhooks.hooks.REGISTRY`)."""

        #: The canonical kind words, in the registry's order.
        canonical: tuple[str, ...]
        #: Every word a spec may start with, lower case.
        words: tuple[str, ...]
        #: Kinds other tools know that ebpfhooks does not attach.
        other: frozenset[str]

        def get(self, word: str) -> type[Hook] | None:
            """The kind a word names (any case), or ``None``."""

        def all(self) -> Sequence[type[Hook]]:
            """Every kind, in the registry's order."""

__all__ = ["Body", "SpecText", "has_wildcard", "parse_pattern", "parse_spec"]

# Compiled where used (``re.compile`` caches them): a spec or a pattern needs only some,
# and each compile at import would cost `ebpfhooks list` ~0.1 ms.
_NUMBER = r"(0[xX][0-9a-fA-F]+|[0-9]+)\Z"
_KIND_WORD = r"[A-Za-z_.]*"
_PATTERN_KIND_WORD = r"[A-Za-z_.*?]*"
_OPTIONS = r"\[([^\[\]]*)\]\Z"


def has_wildcard(text: str) -> bool:
    """True when ``text`` contains ``*`` or ``?``.

    >>> has_wildcard("sys_enter_*"), has_wildcard("vfs_read")
    (True, False)
    """
    return any(ch in text for ch in WILDCARDS)


class SpecText:
    """A spec (or pattern) being parsed, and the errors that point into it."""

    __slots__ = ("pattern", "text")

    def __init__(self, text: str, pattern: bool = False) -> None:
        self.text = text
        self.pattern = pattern

    def error(self, start: int, end: int, message: str, hint: str | None = None) -> SpecError:
        """A :class:`SpecError` with a caret under ``text[start:end]``."""
        return SpecError.at(self.text, start, max(1, end - start), message, hint)

    def check(self, problem: Problem | None, start: int) -> None:
        """Raise ``problem`` (from a :mod:`ebpfhooks.names` checker) at ``start``."""
        if problem is not None:
            col, length, message = problem
            raise self.error(start + col, start + col + length, message)

    def name(self, start: int, end: int, check: Callable[[str], Problem | None]) -> str:
        """``text[start:end]`` checked by ``check``; in a pattern, wildcards may stand in it."""
        part = self.text[start:end]
        if self.pattern and part and has_wildcard(part):
            # each wildcard stands for at least a letter; the checker sees only literals
            problem = check("".join("a" if ch in WILDCARDS else ch for ch in part))
            if problem is not None and "longer than" in problem[2]:
                problem = None
        else:
            problem = check(part)
        self.check(problem, start)
        return part

    def number(self, start: int, end: int, what: str) -> int:
        """A decimal or ``0x`` number in ``text[start:end]``, below 2**63."""
        text = self.text[start:end]
        if not text:
            raise self.error(start, start + 1, f"missing {what}",
                             "expected a number like 16 or 0x10")
        if text.startswith("-"):
            raise self.error(start, end, f"negative {what} {text!r}",
                             "offsets and values are non-negative")
        if not re.match(_NUMBER, text):
            raise self.error(start, end, f"{what} {text!r} is not a number",
                             "expected decimal (16) or hex (0x10)")
        value = int(text, 0) if text.lower().startswith("0x") else int(text, 10)
        if value >= 1 << 63:
            raise self.error(start, end, f"{what} {text} is out of range")
        return value

    def split_offset(self, start: int, end: int) -> tuple[int, int, int]:
        """``name[+offset]`` in ``text[start:end]``: (name end, offset, where ``+`` is).

        Offsets are not part of a pattern.
        """
        text = self.text
        plus = text.find("+", start, end)
        minus = text.find("-", start, end)
        if minus != -1 and (plus == -1 or minus < plus):
            raise self.error(minus, end, "negative offset", "offsets count forward: name+0x10")
        if plus == -1:
            return end, 0, end
        if self.pattern:
            raise self.error(plus, plus + 1, "offsets are not part of a listing pattern")
        return plus, self.number(plus + 1, end, "offset"), plus


class Body:
    """The target part of one spec or pattern, as a kind's ``parse_target`` receives it.

    ``text[start:end]`` is the target; ``word`` the kind word as written, ``libbpf``
    whether it came after ``SECTION/`` (libbpf's spelling) and ``options`` the
    ``[key=N]`` values. ``pattern`` is the spec text's: wildcards allowed, build a
    :class:`ebpfhooks.hooks.base.Pattern` instead of a hook.
    """

    __slots__ = ("end", "libbpf", "options", "start", "t", "word")

    def __init__(self, t: SpecText, start: int, end: int, word: str, libbpf: bool = False,
                 options: dict[str, int] | None = None) -> None:
        self.t = t
        self.start = start
        self.end = end
        self.word = word
        self.libbpf = libbpf
        self.options = options or {}

    @property
    def pattern(self) -> bool:
        """Whether this is a listing pattern (wildcards allowed)."""
        return self.t.pattern

    @property
    def text(self) -> str:
        """The target as written."""
        return self.t.text[self.start:self.end]

    def error(self, start: int, end: int, message: str, hint: str | None = None) -> SpecError:
        """A :class:`SpecError` with a caret under the spec's ``start:end``."""
        return self.t.error(start, end, message, hint)

    def find(self, sep: str, start: int | None = None, end: int | None = None) -> int:
        """Where ``sep`` first is in the target (from ``start``), or -1."""
        return self.t.text.find(sep, self.start if start is None else start,
                                self.end if end is None else end)

    def rfind(self, sep: str, start: int | None = None, end: int | None = None) -> int:
        """Where ``sep`` last is in the target (before ``end``), or -1."""
        return self.t.text.rfind(sep, self.start if start is None else start,
                                 self.end if end is None else end)


# --------------------------------------------------------------------------- specs


def parse_spec(text: str, kinds: Kinds) -> Hook:
    """Parse one spec into a hook of the kind it names.

    >>> from ebpfhooks.hooks import REGISTRY
    >>> parse_spec("uretprobe:/bin/bash:readline", REGISTRY)
    Uretprobe(binary='/bin/bash', location=Symbol(name='readline', offset=0), pid=None)

    Raises :class:`SpecError` whose message shows the spec with a caret under the
    offending column and says what was expected there.
    """
    if not isinstance(text, str):
        raise SpecError(f"a hook spec must be a str, got {type(text).__name__} {text!r}")
    t = SpecText(text)
    kinds_text = ", ".join(kinds.canonical)
    if not text.strip():
        raise t.error(0, 1, "empty spec", f"expected KIND:TARGET, KIND one of {kinds_text}")
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    if start or end != len(text):
        col = 0 if start else end
        raise t.error(col, col + 1, "white space around the spec", "remove it")
    word = re.match(_KIND_WORD, text).group(0)  # type: ignore[union-attr]
    sep_at = len(word)
    kind = _kind(t, word, kinds)
    if sep_at >= len(text) or text[sep_at] not in ":/":
        if sep_at >= len(text):  # the kind word alone
            shape = kind.target_shape
            fix = (f"write {kind.kind}:{shape}, " if shape else "") + \
                f"e.g. {kind.kind}:{kind.example}"
            if kind.libbpf_bare and word == kind.kind:
                fix += (f" (libbpf's bare SEC(\"{word}\") leaves the target to the tool that "
                        "attaches it; a spec names it)")
            raise t.error(0, len(word), f"'{word}' names no {kind.target_noun}", fix)
        got = f", got {text[sep_at]!r}" if sep_at < len(text) else ""
        raise t.error(sep_at, sep_at + 1, f"expected ':' after the kind '{word}'{got}",
                      f"e.g. {kind.kind}:{kind.example}")
    sep = text[sep_at]
    body_start = sep_at + 1
    body_end, options = _options(t, body_start, kind)
    if body_start >= body_end:
        raise t.error(body_start, body_start + 1, f"missing target after '{word}{sep}'",
                      f"e.g. {kind.kind}:{kind.example}")
    hook = kind.parse_target(Body(t, body_start, body_end, word, sep == "/", options))
    assert not t.pattern
    return hook  # type: ignore[return-value]


def _kind(t: SpecText, word: str, kinds: Kinds) -> type[Hook]:
    kind = kinds.get(word)
    if kind is not None:
        return kind
    kinds_text = ", ".join(kinds.canonical)
    if not word:
        raise t.error(0, 1, "expected a hook kind at the start", f"kinds: {kinds_text}")
    if word.lower() in kinds.other:
        raise t.error(0, len(word), f"ebpfhooks does not attach '{word}' hooks",
                      f"the kinds it attaches: {kinds_text}")
    import difflib  # only for this hint (~1.5 ms of `ebpfhooks list`'s start otherwise)

    close = difflib.get_close_matches(word.lower(), list(kinds.words), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise t.error(0, len(word), f"unknown hook kind '{word}'", f"{hint}kinds: {kinds_text}")


def _options(t: SpecText, body_start: int, kind: type[Hook]) -> tuple[int, dict[str, int]]:
    """Split a trailing ``[key=value,...]`` off; return the body's end and the options."""
    text = t.text
    if not text.endswith("]"):
        return len(text), {}
    m = re.compile(_OPTIONS).search(text, body_start)
    if m is None:
        raise t.error(len(text) - 1, len(text), "unbalanced ']' at the end",
                      "options are written [key=value,...]")
    open_at = m.start()
    allowed = kind.options
    if not allowed:
        raise t.error(open_at, len(text), f"{kind.kind} hooks take no options")
    options: dict[str, int] = {}
    pos = open_at + 1
    for item in m.group(1).split(","):
        item_start, item_end = pos, pos + len(item)
        pos = item_end + 1
        key, eq, _ = item.partition("=")
        if not eq:
            raise t.error(item_start, item_end, f"option {item!r} is not key=value",
                          f"options of {kind.kind}: " + ", ".join(f"{k}=N" for k in allowed))
        if key not in allowed:
            raise t.error(item_start, item_start + len(key),
                          f"unknown option {key!r} for {kind.kind}",
                          f"options of {kind.kind}: " + ", ".join(f"{k}=N" for k in allowed))
        if key in options:
            raise t.error(item_start, item_end, f"option {key!r} given twice")
        options[key] = t.number(item_start + len(key) + 1, item_end, f"{key} value")
    return open_at, options


# --------------------------------------------------------------------------- patterns


def parse_pattern(text: str, kinds: Kinds) -> list[Pattern]:
    """Parse a listing pattern into one :class:`~ebpfhooks.hooks.base.Pattern` per kind.

    >>> from ebpfhooks.hooks import REGISTRY
    >>> [p.kind.kind for p in parse_pattern("*execve*", REGISTRY)]
    ['kprobe', 'tracepoint', 'rawtracepoint']

    A bare word searches every kind that takes one (kernel functions, tracepoints of
    any category, raw tracepoints), as ``bpftrace -l WORD`` does; a kind word with
    wildcards (``*:sched:sched_switch``, ``k*:vfs_read``) every kind it matches, each
    with its own grammar (one that does not fit is left out; a kind whose target is a
    file path only when the pattern names a path). Every literal character is checked
    against the alphabet of its part.

    Raises :class:`SpecError` with a caret under the bad column.
    """
    if not isinstance(text, str):
        raise SpecError(f"a pattern must be a str, got {type(text).__name__} {text!r}")
    t = SpecText(text, pattern=True)
    if not text or text != text.strip():
        raise t.error(0, 1, "empty pattern or white space around it",
                      "e.g. 'tracepoint:syscalls:sys_enter_open*' or '*execve*'")
    for i, ch in enumerate(text):
        if not ch.isprintable() or ch.isspace():
            raise t.error(i, i + 1, f"character {ch!r} cannot be in a pattern")
    if text.endswith("]"):
        at = max(text.rfind("["), 0)
        raise t.error(at, len(text),
                      "options ([pid=N], [maxactive=N]) are not part of a listing pattern",
                      "list the hooks, then attach with options through the hook classes")
    word = re.match(_PATTERN_KIND_WORD, text).group(0)  # type: ignore[union-attr]
    if len(word) >= len(text) or text[len(word)] not in ":/":
        return _bare(t, kinds)
    body, libbpf = len(word) + 1, text[len(word)] == "/"
    chosen = _kinds_for(t, word, kinds)
    if body >= len(text):
        raise t.error(body, body + 1, f"missing target after {text[:body]!r}",
                      f"e.g. {chosen[0].kind}:*")
    wildcard_kind = has_wildcard(word)
    out: list[Pattern] = []
    first_error: SpecError | None = None
    for kind in chosen:
        if wildcard_kind and kind.by_path and "/" not in text[body:]:
            # '*:sched:sched_switch' names a tracepoint, not a binary called 'sched'
            continue
        try:
            pattern = kind.parse_target(Body(t, body, len(text), word, libbpf))
        except SpecError as err:
            if not wildcard_kind:
                raise
            first_error = first_error or err
            continue
        out.append(pattern)  # type: ignore[arg-type]  # a pattern's body gives a Pattern
    if not out:
        if first_error is None:
            raise t.error(0, len(word), f"no hook kind matches {word!r} with this target")
        raise first_error
    return out


def _bare(t: SpecText, kinds: Kinds) -> list[Pattern]:
    out: list[Pattern] = []
    first_error: SpecError | None = None
    for kind in kinds.all():
        if not kind.bare:
            continue
        try:
            pattern = kind.bare_pattern(t)
        except SpecError as err:
            first_error = first_error or err
            continue
        if pattern is not None:
            out.append(pattern)
    if not out:
        assert first_error is not None
        raise first_error
    return out


def _kinds_for(t: SpecText, word: str, kinds: Kinds) -> list[type[Hook]]:
    """The kinds a (maybe wildcard) kind word names."""
    if not word:
        raise t.error(0, 1, "expected a hook kind before ':'",
                      f"kinds: {', '.join(kinds.canonical)}")
    if has_wildcard(word):
        bad = next((i for i, ch in enumerate(word)
                    if not (ch.isalnum() or ch in "_." or ch in WILDCARDS)), None)
        if bad is not None:
            raise t.error(bad, bad + 1, f"character {word[bad]!r} cannot be in a kind")
        rx = compile_wildcard(word.lower())
        found = [k for k in kinds.all() if rx.fullmatch(k.kind)]
        if not found:
            raise t.error(0, len(word), f"no hook kind matches {word!r}",
                          f"kinds: {', '.join(kinds.canonical)}")
        return found
    return [_kind(SpecText(t.text), word, kinds)]


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


def matcher(pattern: str | None) -> Callable[[str], bool] | None:
    """A test for names against ``pattern`` (``None`` for a part the pattern leaves out).

    >>> matcher("vfs_*")("vfs_read"), matcher("vfs_read")("vfs_reads")
    (True, False)
    """
    if pattern is None:
        return None
    if not has_wildcard(pattern):
        return pattern.__eq__
    # the common shapes without a regex: a listing tests thousands of names (~3x faster)
    head, _, rest = pattern.partition("*")
    tail = rest.strip("*")
    if "?" not in pattern and "*" not in tail:
        if not head and not tail:
            return lambda name: True
        if not head and rest.endswith("*"):  # *WORD*
            return lambda name: tail in name
        if not tail:  # WORD*
            return lambda name: name.startswith(head)
        if not head:  # *WORD
            return lambda name: name.endswith(tail)
    rx = compile_wildcard(pattern)
    return lambda name: rx.fullmatch(name) is not None
