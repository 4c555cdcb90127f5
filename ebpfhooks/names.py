"""What a name of each kind may contain: the one validator behind specs and hook fields.

Names reach tracefs paths, bcc's event names and generated C, so anything
outside these alphabets is refused before it goes anywhere. Each checker
returns ``None`` for a good name, or ``(column, length, message)`` for the
first problem.

>>> check_kernel_symbol("vfs_read") is None
True
>>> check_kernel_symbol("vfs read")
(3, 1, "character ' ' cannot be in a kernel symbol name (letters, digits, '_' and '.')")
"""

from __future__ import annotations

import re

Problem = tuple[int, int, str]

KSYM_NAME_LEN = 511  # KSYM_NAME_LEN (512) less the NUL
MODULE_NAME_LEN = 55  # MODULE_NAME_LEN (64 - sizeof(unsigned long)) less the NUL
TRACE_NAME_LEN = 255
IFNAMSIZ = 15  # IFNAMSIZ (16) less the NUL
USER_SYMBOL_LEN = 4096
PATH_LEN = 4095

WILDCARDS = "*?"

# Each alphabet is one regex character class: the first character's and the rest's.
# Compiled on first use (in `_check`): each compile costs `ebpfhooks list` ~0.1 ms.
_KSYM_FIRST = "[A-Za-z_]"
_KSYM_REST = "[A-Za-z0-9_.]"
_MODULE = "[A-Za-z0-9_-]"
_TRACE = "[A-Za-z0-9_]"
_IFACE = "[A-Za-z0-9_.-]"
_USYM_FIRST = "[A-Za-z_.$]"
_USYM_REST = "[A-Za-z0-9_.$@]"


def _show(ch: str) -> str:
    return repr(ch)


_WHOLE: dict[tuple[str, str], re.Pattern[str]] = {}


def _check(
    name: str,
    what: str,
    first: str,
    rest: str,
    alphabet: str,
    max_len: int,
) -> Problem | None:
    whole = _WHOLE.get((first, rest))
    if whole is None:
        whole = _WHOLE[first, rest] = re.compile(first + rest + "*")
    if len(name) <= max_len and whole.fullmatch(name):
        return None  # the common case in one regex; the loop below finds what is wrong
    if not name:
        return (0, 1, f"empty {what}")
    for i, ch in enumerate(name):
        if ch in WILDCARDS:
            return (
                i,
                1,
                f"wildcard {ch!r} in a single-hook spec: a hook names exactly one {what}; "
                "list the matches with `ebpfhooks list 'PATTERN'`, or attach them all with "
                "`ebpfhooks.expand(spec).attach(...)`",
            )
        if not re.match(first if i == 0 else rest, ch):
            where = "start" if i == 0 and re.match(rest, ch) else "be in"
            return (i, 1, f"character {_show(ch)} cannot {where} a {what} ({alphabet})")
    if len(name) > max_len:
        return (max_len, len(name) - max_len, f"{what} longer than {max_len} characters")
    return None


def check_kernel_symbol(name: str) -> Problem | None:
    """A kernel function name as /proc/kallsyms spells it (``do_sys_openat2``, ``foo.isra.0``)."""
    return _check(name, "kernel symbol name", _KSYM_FIRST, _KSYM_REST,
                  "letters, digits, '_' and '.'", KSYM_NAME_LEN)


def check_module(name: str) -> Problem | None:
    """A kernel module name (``nf_conntrack``)."""
    return _check(name, "kernel module name", _MODULE, _MODULE,
                  "letters, digits, '_' and '-'", MODULE_NAME_LEN)


def check_trace_name(name: str, what: str = "tracepoint name") -> Problem | None:
    """A tracepoint category or event name (``syscalls``, ``sys_enter_openat``)."""
    return _check(name, what, _TRACE, _TRACE, "letters, digits and '_'", TRACE_NAME_LEN)


def check_interface(name: str) -> Problem | None:
    """A network interface name (``lo``, ``eth0``, ``veth-a.10``); at most 15 characters."""
    if name in (".", ".."):
        return (0, len(name), f"{name!r} is not an interface name")
    return _check(name, "network interface name", _IFACE, _IFACE,
                  "letters, digits, '_', '.' and '-'", IFNAMSIZ)


def check_user_symbol(name: str) -> Problem | None:
    """A user-space ELF symbol, mangled, optionally versioned (``malloc@@GLIBC_2.2.5``)."""
    return _check(name, "symbol name", _USYM_FIRST, _USYM_REST,
                  "letters, digits, '_', '.', '$' and '@' for a version", USER_SYMBOL_LEN)


def check_path(path: str) -> Problem | None:
    """A uprobe target: a path or a name; it is opened as a path, never pasted into text."""
    if not path:
        return (0, 1, "empty binary path or name")
    if path.isprintable() and "*" not in path and "?" not in path and len(path) <= PATH_LEN:
        return None  # the common case; the loop below finds what is wrong
    for i, ch in enumerate(path):
        if ch == "\x00" or not ch.isprintable():
            return (i, 1, f"control character {ch!r} in a binary path")
        if ch in WILDCARDS:
            return (i, 1, f"wildcard {ch!r} in a single-hook spec; name one binary "
                    "(`ebpfhooks list 'uprobe:/dir/lib*:SYMBOL'` lists a glob's matches)")
    if len(path) > PATH_LEN:
        return (PATH_LEN, len(path) - PATH_LEN, f"path longer than {PATH_LEN} characters")
    return None
