"""The C that reads a USDT probe's arguments, generated from validated values only.

:func:`reader_source` writes one ``static __always_inline`` function per probe for a
bcc program to include::

    int PREFIX_arg(struct pt_regs *ctx, int n, u64 *val)

It stores argument ``n`` (0-based, as bpftrace's ``arg0`` and libbpf's
``bpf_usdt_arg``) in ``*val``, sign-extended to 64 bits when the argument is signed,
and returns 0; or returns -1 when the probe has no argument ``n`` or its memory could
not be read. ``PREFIX_NARGS`` is the number of arguments.

Nothing of the ELF file's text reaches the C: each argument is an
:class:`~ebpfhooks.elf.usdt.UsdtArg` (a size of 1, 2, 4 or 8, a ``struct pt_regs``
field from :data:`~ebpfhooks.elf.usdt.REGISTERS`, integers), the comments are rebuilt
from those values, and the prefix is checked to be a C identifier.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ebpfhooks.elf.usdt import REGISTERS, UsdtArg

__all__ = ["check_prefix", "reader_source"]

_C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_FIELDS = frozenset(field for field, _, _ in REGISTERS.values())
_TYPES = {1: "8", 2: "16", 4: "32", 8: "64"}


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can start C function names (an identifier of at most 64 characters).

    >>> check_prefix("usdt_python_gc__start")
    'usdt_python_gc__start'
    """
    from ebpfhooks.errors import SpecError

    if not isinstance(prefix, str) or not _C_IDENT.match(prefix):
        raise SpecError(f"USDT reader prefix {prefix!r} is not a C identifier (letters, "
                        "digits and '_', not starting with a digit, at most 64 characters)")
    return prefix


def _extend(arg: UsdtArg, raw: str) -> str:
    """``raw`` (a u64 expression) cut to the argument's size, sign-extended if signed."""
    bits = _TYPES[arg.size]
    if arg.size == 8:
        return raw
    if arg.signed:
        return f"(u64)(s64)(s{bits})(u{bits})({raw})"
    return f"(u64)(u{bits})({raw})"


def _constant(arg: UsdtArg) -> int:
    value = arg.offset & ((1 << (8 * arg.size)) - 1)
    if arg.signed and value >> (8 * arg.size - 1):
        value -= 1 << (8 * arg.size)
    return value & ((1 << 64) - 1)


def _case(i: int, arg: UsdtArg, indent: str) -> list[str]:
    assert arg.size in _TYPES and isinstance(arg.offset, int) and isinstance(arg.shift, int)
    head = f"{indent}case {i}:  /* {arg.spec()}: {arg.describe()} */"
    if arg.where == "constant":
        return [head, f"{indent}    *val = {_constant(arg):#x}ULL;", f"{indent}    return 0;"]
    assert arg.field in _FIELDS, arg
    reg = f"r_{arg.field}"
    if arg.where == "register":
        raw = f"({reg} >> {arg.shift})" if arg.shift else reg
        return [head, f"{indent}    *val = {_extend(arg, raw)};", f"{indent}    return 0;"]
    assert arg.where == "memory", arg
    addr = f"{reg} + {arg.offset}" if arg.offset >= 0 else f"{reg} - {-arg.offset}"
    return [head,
            f"{indent}    if (bpf_probe_read_user(&raw, {arg.size}, (void *)({addr})))",
            f"{indent}        return -1;",
            f"{indent}    *val = {_extend(arg, 'raw')};",
            f"{indent}    return 0;"]


def _switch(args: Sequence[UsdtArg], indent: str) -> list[str]:
    lines = [f"{indent}switch (n) {{"]
    for i, arg in enumerate(args):
        lines += _case(i, arg, indent)
    return [*lines, f"{indent}}}", f"{indent}return -1;"]


def reader_source(prefix: str, title: str, locations: Sequence[Sequence[UsdtArg]], *,
                  cookies: bool) -> str:
    """The C text of ``PREFIX_arg`` for a probe whose locations have these arguments.

    One location, or several with equal arguments: one switch on ``n``. Several with
    different arguments: ``cookies`` must be true, and the function first switches on
    ``bpf_get_attach_cookie(ctx)``, which ebpfhooks sets to the location's index when it
    attaches. ``title`` (a comment) must already be safe: ``PROVIDER:NAME``, checked.

    >>> from ebpfhooks.elf.usdt import parse_usdt_args
    >>> print(reader_source("gc", "python:gc__start", [parse_usdt_args("-4@112(%rsp)")],
    ...                     cookies=False))  # doctest: +ELLIPSIS
    /* ebpfhooks: argument reader of USDT probe python:gc__start (1 location) */
    ...
    static __always_inline int gc_arg(struct pt_regs *ctx, int n, u64 *val)
    ...
    """
    check_prefix(prefix)
    assert re.fullmatch(r"[A-Za-z0-9_]+:[A-Za-z0-9_]+", title), title
    first = tuple(locations[0])
    same = all(tuple(args) == first for args in locations)
    if not same and not cookies:
        raise ValueError("locations with different arguments need cookies")
    count = len(first)
    if any(len(args) != count for args in locations):
        raise ValueError("locations with different numbers of arguments")
    memory = any(a.where == "memory" for args in locations for a in args)
    plural = "s" if len(locations) != 1 else ""
    lines = [f"/* ebpfhooks: argument reader of USDT probe {title} ({len(locations)} "
             f"location{plural}) */",
             "#include <uapi/linux/ptrace.h>",
             f"#define {prefix.upper()}_NARGS {count}",
             f"static __always_inline int {prefix}_arg(struct pt_regs *ctx, int n, u64 *val)",
             "{"]
    if memory:
        lines.append("    u64 raw = 0;")
    fields = sorted({a.field for args in locations for a in args if a.field is not None})
    if fields:
        # every register this probe reads, loaded once from ctx + a constant before any
        # branch, and pinned there: clang would otherwise share one ctx + offset pointer
        # between branches, a "modified ctx ptr" the verifier refuses
        lines.append("    u64 " + ", ".join(f"r_{f} = ctx->{f}" for f in fields) + ";")
        lines.append('    asm volatile("" : ' + ", ".join(f'"+r"(r_{f})' for f in fields)
                     + ");")
    if same:
        lines += _switch(first, "    ")
    else:
        lines.append("    switch (bpf_get_attach_cookie(ctx)) {  /* the location's index */")
        for i, args in enumerate(locations):
            lines.append(f"    case {i}:")
            lines += _switch(args, "        ")
        lines += ["    }", "    return -1;"]
    lines += ["}", ""]
    return "\n".join(lines)
