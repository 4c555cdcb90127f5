"""The hook spec parser: bpftrace and libbpf spellings to a :class:`~ebpfhooks.Hook`.

Grammar (kind words are case-insensitive; ``[...]`` means optional)::

    spec        := bpftrace | libbpf
    bpftrace    := KIND ":" body [ "[" option ("," option)* "]" ]
    libbpf      := SECTION "/" libbpf-body

    kprobe      := ("kprobe" | "k") ":" [module ":"] function ["+" offset]
    kretprobe   := ("kretprobe" | "kr") ":" [module ":"] function    options: maxactive=N
    tracepoint  := ("tracepoint" | "t") ":" category ":" event
    rawtp       := ("rawtracepoint" | "raw_tracepoint" | "rt") ":" [module ":"] event
    uprobe      := ("uprobe" | "u") ":" binary ":" location          options: pid=N
    uretprobe   := ("uretprobe" | "ur") ":" binary ":" location      options: pid=N
    location    := symbol ["+" offset] | "0x" HEX (ELF virtual address)
                 | "file_offset=" offset (raw file offset)
    xdp         := "xdp" ":" interface [":" ("auto"|"skb"|"generic"|"drv"|"native"|"hw")]
    raw_socket  := "raw_socket" ":" interface

    libbpf-body (libbpf SEC() names):
      kprobe/function[+offset]   kretprobe/function   tp/category/event
      tracepoint/category/event  raw_tp/event  raw_tracepoint/event
      uprobe/binary:symbol[+offset]   uretprobe/binary:symbol
      uprobe/binary:OFFSET  (a raw *file offset*, as libbpf means it)

    offset      := decimal | "0x" HEX       (non-negative)

The binary of a uprobe is everything up to the last ``:`` before the
location, so ``uprobe//usr/bin/python3:main`` and ``uprobe:/usr/bin/python3:main``
name the same file. A wildcard (``*``, ``?``) is refused: a spec names one
hook (list or expand patterns with the listing API).

>>> import ebpfhooks
>>> ebpfhooks.from_spec("k:vfs_read+16")
Kprobe(symbol='vfs_read', module=None, offset=16)
>>> str(ebpfhooks.from_spec("tp/syscalls/sys_enter_openat"))
'tracepoint:syscalls:sys_enter_openat'
"""

from __future__ import annotations

import difflib
import re

from ebpfhooks.errors import SpecError
from ebpfhooks.hooks.base import Hook
from ebpfhooks.hooks.kprobe import Kprobe, Kretprobe
from ebpfhooks.hooks.net import RawSocket, Xdp, XdpMode
from ebpfhooks.hooks.tracepoint import RawTracepoint, Tracepoint
from ebpfhooks.hooks.uprobe import Address, FileOffset, Location, Symbol, Uprobe, Uretprobe
from ebpfhooks.names import (
    KIND_ALIASES,
    Problem,
    check_interface,
    check_kernel_symbol,
    check_module,
    check_path,
    check_trace_name,
    check_user_symbol,
)

__all__ = ["KIND_ALIASES", "parse", "parse_location"]

#: Kinds other tools know that ebpfhooks does not attach.
_OTHER_KINDS = {
    "fentry", "fexit", "kfunc", "kretfunc", "f", "fr", "usdt", "profile", "interval",
    "software", "hardware", "watchpoint", "asyncwatchpoint", "begin", "end", "lsm",
    "ksyscall", "kretsyscall", "kprobe.multi", "kretprobe.multi", "uprobe.multi",
    "uretprobe.multi", "uprobe.s", "uretprobe.s", "fentry.s", "fexit.s", "tc", "tcx",
    "cgroup", "iter", "struct_ops", "sk_skb", "sk_msg", "perf_event", "tp_btf", "socket",
    "flow_dissector", "netfilter",
}

_KINDS_TEXT = "kprobe, kretprobe, tracepoint, rawtracepoint, uprobe, uretprobe, xdp, raw_socket"
_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]+|[0-9]+)\Z")
_KIND_WORD = re.compile(r"[A-Za-z_.]*")
_OPTIONS = re.compile(r"\[([^\[\]]*)\]\Z")


class _Text:
    """The spec and helpers to raise errors pointing into it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def error(self, start: int, end: int, message: str, hint: str | None = None) -> SpecError:
        return SpecError.at(self.text, start, max(1, end - start), message, hint)

    def check(self, problem: Problem | None, start: int) -> None:
        if problem is not None:
            col, length, message = problem
            raise self.error(start + col, start + col + length, message)


def parse(text: str) -> Hook:
    """Parse ``text`` into a hook of the kind it names (``ebpfhooks.from_spec``).

    >>> import ebpfhooks
    >>> ebpfhooks.from_spec("uretprobe:/bin/bash:readline")
    Uretprobe(binary='/bin/bash', location=Symbol(name='readline', offset=0), pid=None)

    Raises :class:`SpecError` whose message shows the spec with a caret under
    the offending column and says what was expected there.
    """
    if not isinstance(text, str):
        raise SpecError(f"a hook spec must be a str, got {type(text).__name__} {text!r}")
    t = _Text(text)
    if not text.strip():
        raise t.error(0, 1, "empty spec", f"expected KIND:TARGET, KIND one of {_KINDS_TEXT}")
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    if start or end != len(text):
        col = 0 if start else end
        raise t.error(col, col + 1, "white space around the spec", "remove it")
    word = _KIND_WORD.match(text).group(0)  # type: ignore[union-attr]
    sep_at = len(word)
    kind = _kind(t, word)
    if sep_at >= len(text):
        if kind in ("xdp",) or word.lower() == "socket":
            target = kind if kind == "xdp" else "raw_socket"
            raise t.error(0, len(word), f"'{word}' names no interface",
                          f"write {target}:IFACE, e.g. {target}:eth0")
        raise t.error(sep_at, sep_at + 1, f"expected ':' after the kind '{word}'",
                      f"e.g. {kind}:{_EXAMPLE[kind]}")
    sep = text[sep_at]
    if sep not in ":/":
        raise t.error(sep_at, sep_at + 1, f"expected ':' after the kind '{word}', got {sep!r}",
                      f"e.g. {kind}:{_EXAMPLE[kind]}")
    body_start = sep_at + 1
    body_end, options = _options(t, body_start, kind)
    if body_start >= body_end:
        raise t.error(body_start, body_start + 1, f"missing target after '{word}{sep}'",
                      f"e.g. {kind}:{_EXAMPLE[kind]}")
    libbpf = sep == "/"
    if kind in ("kprobe", "kretprobe"):
        return _kprobe(t, kind, body_start, body_end, options, libbpf)
    if kind == "tracepoint":
        return _tracepoint(t, body_start, body_end, libbpf)
    if kind == "rawtracepoint":
        return _raw_tracepoint(t, body_start, body_end, libbpf)
    if kind in ("uprobe", "uretprobe"):
        return _uprobe(t, kind, body_start, body_end, options, libbpf)
    if libbpf:
        raise t.error(sep_at, sep_at + 1, f"libbpf's SEC(\"{word}\") names no interface",
                      f"write {kind}:IFACE")
    if kind == "xdp":
        return _xdp(t, body_start, body_end)
    return _raw_socket(t, body_start, body_end)


_EXAMPLE = {
    "kprobe": "do_sys_openat2", "kretprobe": "do_sys_openat2",
    "tracepoint": "syscalls:sys_enter_openat", "rawtracepoint": "sched_switch",
    "uprobe": "/bin/bash:readline", "uretprobe": "/bin/bash:readline",
    "xdp": "eth0", "raw_socket": "eth0",
}

_ALLOWED_OPTIONS = {"kretprobe": ("maxactive",), "uprobe": ("pid",), "uretprobe": ("pid",)}


def _kind(t: _Text, word: str) -> str:
    kind = KIND_ALIASES.get(word.lower())
    if kind is not None:
        return kind
    if not word:
        raise t.error(0, 1, "expected a hook kind at the start",
                      f"kinds: {_KINDS_TEXT}")
    if word.lower() in _OTHER_KINDS:
        raise t.error(0, len(word), f"ebpfhooks does not attach '{word}' hooks",
                      f"the kinds it attaches: {_KINDS_TEXT}")
    close = difflib.get_close_matches(word.lower(), list(KIND_ALIASES), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise t.error(0, len(word), f"unknown hook kind '{word}'", f"{hint}kinds: {_KINDS_TEXT}")


def _options(t: _Text, body_start: int, kind: str) -> tuple[int, dict[str, int]]:
    """Split a trailing ``[key=value,...]`` off; return the body's end and the options."""
    text = t.text
    m = _OPTIONS.search(text, body_start)
    if not text.endswith("]"):
        return len(text), {}
    if m is None:
        raise t.error(len(text) - 1, len(text), "unbalanced ']' at the end",
                      "options are written [key=value,...]")
    open_at = m.start()
    allowed = _ALLOWED_OPTIONS.get(kind, ())
    if not allowed:
        raise t.error(open_at, len(text), f"{kind} hooks take no options")
    options: dict[str, int] = {}
    pos = open_at + 1
    for item in m.group(1).split(","):
        item_start, item_end = pos, pos + len(item)
        pos = item_end + 1
        key, eq, value = item.partition("=")
        if not eq:
            raise t.error(item_start, item_end, f"option {item!r} is not key=value",
                          f"options of {kind}: " + ", ".join(f"{k}=N" for k in allowed))
        if key not in allowed:
            raise t.error(item_start, item_start + len(key), f"unknown option {key!r} for {kind}",
                          f"options of {kind}: " + ", ".join(f"{k}=N" for k in allowed))
        if key in options:
            raise t.error(item_start, item_end, f"option {key!r} given twice")
        vstart = item_start + len(key) + 1
        options[key] = _number(t, value, vstart, f"{key} value")
    return open_at, options


def _number(t: _Text, text: str, start: int, what: str) -> int:
    if not text:
        raise t.error(start, start + 1, f"missing {what}", "expected a number like 16 or 0x10")
    if text.startswith("-"):
        raise t.error(start, start + len(text), f"negative {what} {text!r}",
                      "offsets and values are non-negative")
    if not _NUMBER.match(text):
        raise t.error(start, start + len(text), f"{what} {text!r} is not a number",
                      "expected decimal (16) or hex (0x10)")
    value = int(text, 0) if text.lower().startswith("0x") else int(text, 10)
    if value >= 1 << 63:
        raise t.error(start, start + len(text), f"{what} {text} is out of range")
    return value


def _split_offset(t: _Text, start: int, end: int) -> tuple[int, int, int]:
    """Return (name_end, offset, offset_start) for ``name[+off]`` in text[start:end]."""
    text = t.text
    plus = text.find("+", start, end)
    minus = text.find("-", start, end)
    if minus != -1 and (plus == -1 or minus < plus):
        raise t.error(minus, end, "negative offset", "offsets count forward: name+0x10")
    if plus == -1:
        return end, 0, end
    return plus, _number(t, text[plus + 1:end], plus + 1, "offset"), plus


def _kprobe(t: _Text, kind: str, start: int, end: int, options: dict[str, int],
            libbpf: bool) -> Hook:
    text = t.text
    module = None
    colon = text.rfind(":", start, end)
    if colon != -1:
        if libbpf:
            raise t.error(colon, colon + 1, "libbpf's kprobe/ form takes no module",
                          f"write {kind}:MODULE:FUNCTION")
        if text.find(":", start, colon) != -1:
            extra = text.find(":", start, colon)
            raise t.error(extra, extra + 1, "too many ':' parts",
                          f"expected {kind}:[module:]function")
        module = text[start:colon]
        t.check(check_module(module), start)
        start = colon + 1
        if start >= end:
            raise t.error(start, start + 1, "missing function name after the module")
    name_end, offset, off_at = _split_offset(t, start, end)
    name = text[start:name_end]
    t.check(check_kernel_symbol(name), start)
    if kind == "kretprobe":
        if off_at != end:
            raise t.error(off_at, end, "offset not allowed on a kretprobe",
                          "a return probe fires when the function returns; "
                          f"use kprobe:{name}{text[off_at:end]} for an offset")
        return Kretprobe(name, module=module, maxactive=options.get("maxactive", 0))
    return Kprobe(name, offset, module=module)


def _tracepoint(t: _Text, start: int, end: int, libbpf: bool) -> Hook:
    text = t.text
    sep = "/" if libbpf else ":"
    mid = text.find(sep, start, end)
    if mid == -1:
        raise t.error(end, end + 1, f"missing '{sep}event' after the category",
                      "expected tracepoint:category:event, "
                      f"e.g. tracepoint:{_EXAMPLE['tracepoint']}")
    category, event = text[start:mid], text[mid + 1:end]
    if not category:
        raise t.error(start, start + 1, "empty tracepoint category")
    t.check(check_trace_name(category, "tracepoint category"), start)
    extra = text.find(sep, mid + 1, end)
    if extra != -1:
        raise t.error(extra, extra + 1, "too many parts",
                      "expected tracepoint:category:event")
    if not event:
        raise t.error(mid + 1, mid + 2, "empty tracepoint event")
    t.check(check_trace_name(event, "tracepoint event"), mid + 1)
    return Tracepoint(category, event)


def _raw_tracepoint(t: _Text, start: int, end: int, libbpf: bool) -> Hook:
    text = t.text
    module = None
    colon = text.rfind(":", start, end)
    if colon != -1 and not libbpf:
        first = text.find(":", start, colon)
        if first != -1:
            raise t.error(first, first + 1, "too many ':' parts",
                          "expected rawtracepoint:[module:]event")
        module = text[start:colon]
        t.check(check_module(module), start)
        start = colon + 1
    event = text[start:end]
    t.check(check_trace_name(event, "raw tracepoint name"), start)
    return RawTracepoint(event, module=module)


def _uprobe(t: _Text, kind: str, start: int, end: int, options: dict[str, int],
            libbpf: bool) -> Hook:
    text = t.text
    colon = text.rfind(":", start, end)
    if colon == -1:
        raise t.error(end, end + 1, "missing ':SYMBOL' after the binary",
                      f"expected {kind}:BINARY:SYMBOL, e.g. {kind}:{_EXAMPLE[kind]}")
    binary = text[start:colon]
    t.check(check_path(binary), start)
    loc_start = colon + 1
    if loc_start >= end:
        raise t.error(loc_start, loc_start + 1, "missing symbol or address after the binary")
    location = _location(t, loc_start, end, libbpf)
    if kind == "uretprobe" and isinstance(location, Symbol) and location.offset:
        off_at = text.find("+", loc_start, end)
        raise t.error(off_at, end, "offset not allowed on a uretprobe",
                      "a return probe fires when the function returns; "
                      f"use uprobe:{binary}:{text[loc_start:end]} for an offset")
    pid = options.get("pid")
    if pid is not None and not 0 < pid < 1 << 22:
        raise t.error(end, len(text), f"pid {pid} is out of range", "expected 1..4194303")
    cls = Uprobe if kind == "uprobe" else Uretprobe
    return cls(binary, location, pid=pid)


def _location(t: _Text, start: int, end: int, libbpf: bool = False) -> Location:
    """``symbol[+offset]``, ``0xVADDR``/``VADDR`` or ``file_offset=N`` in text[start:end]."""
    text = t.text
    loc_text = text[start:end]
    if loc_text.startswith("file_offset="):
        vstart = start + len("file_offset=")
        return FileOffset(_number(t, text[vstart:end], vstart, "file offset"))
    if loc_text[:1].isdigit():
        value = _number(t, loc_text, start, "address")
        # libbpf's raw offsets are file offsets; bpftrace's and bcc's are virtual addresses
        return FileOffset(value) if libbpf else Address(value)
    name_end, offset, _ = _split_offset(t, start, end)
    name = text[start:name_end]
    t.check(check_user_symbol(name), start)
    return Symbol(name, offset)


def parse_location(text: str) -> Location:
    """Parse a uprobe location as a spec writes it (what ``Uprobe(binary, "...")`` takes).

    >>> from ebpfhooks.spec import parse_location
    >>> parse_location("readline+4")
    Symbol(name='readline', offset=4)
    >>> parse_location("0x1139"), parse_location("file_offset=0x1139")
    (Address(vaddr=4409), FileOffset(offset=4409))

    Raises :class:`SpecError` with a caret under the bad column.
    """
    if not text:
        raise SpecError("empty uprobe location", hint="expected SYMBOL[+OFFSET], 0xVADDR or "
                        "file_offset=N, e.g. 'readline' or 'readline+4'")
    return _location(_Text(text), 0, len(text))


def _xdp(t: _Text, start: int, end: int) -> Hook:
    text = t.text
    colon = text.find(":", start, end)
    iface_end = end if colon == -1 else colon
    iface = text[start:iface_end]
    t.check(check_interface(iface), start)
    mode = XdpMode.AUTO
    if colon != -1:
        word = text[colon + 1:end]
        try:
            mode = XdpMode.from_word(word)
        except SpecError:
            raise t.error(colon + 1, end, f"unknown XDP mode {word!r}",
                          "expected auto, skb (generic), drv (native) or hw (offload)") from None
    return Xdp(iface, mode)


def _raw_socket(t: _Text, start: int, end: int) -> Hook:
    iface = t.text[start:end]
    t.check(check_interface(iface), start)
    return RawSocket(iface)
