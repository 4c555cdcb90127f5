"""The live ``/proc/kallsyms``, read once per process, and filters over its raw bytes.

:func:`read` reads the file once (one binary ``read``), :func:`index` builds its
:class:`~ebpfhooks.kernel.kallsyms.Kallsyms` once; listings filter the bytes instead
(:func:`functions`, :func:`traceiters`, :func:`select`), which costs no per-symbol
objects. :func:`clear_cache` forgets both::

    >>> traceiters(b"ffffffff81000000 T __traceiter_sched_switch\\n")
    [(None, 'sched_switch')]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ebpfhooks.errors import HookPermissionError
from ebpfhooks.kernel.kallsyms.parse import KALLSYMS_FILE, KSym, parse_kallsyms
from ebpfhooks.kernel.kallsyms.table import Kallsyms

__all__ = ["clear_cache", "functions", "index", "read", "select", "traceiters"]

_data: dict[Path, bytes] = {}
_index: dict[Path, Kallsyms] = {}


def read(path: Path = KALLSYMS_FILE, reload: bool = False) -> bytes:
    """The raw bytes of ``/proc/kallsyms``, read once per process (one binary ``read``).

    >>> b" T " in read()  # doctest: +SKIP
    True

    Raises:
        HookPermissionError: the file cannot be read.
    """
    path = Path(path)
    data = None if reload else _data.get(path)
    if data is None:
        try:
            with path.open("rb") as handle:
                data = handle.read()
        except PermissionError as err:
            raise HookPermissionError(
                f"cannot read {path}: permission denied; rerun as root",
                capability="CAP_SYSLOG",
            ) from err
        _data[path] = data
        _index.pop(path, None)
    return data


def index(reload: bool = False, path: Path = KALLSYMS_FILE) -> Kallsyms:
    """The :class:`Kallsyms` index of the live table (built once from :func:`read`).

    Cached for the process; ``reload=True`` reads the file again (after loading a module).

    >>> index().lookup("do_sys_openat2")[0].type  # doctest: +SKIP
    't'

    Raises:
        HookPermissionError: the file cannot be read.
        KallsymsFormatError: the file is not in kallsyms format.
    """
    path = Path(path)
    data = read(path, reload)
    table = _index.get(path)
    if table is None:
        table = _index[path] = Kallsyms.from_bytes(data)
    return table


_FUNCTION_LINE = re.compile(
    rb"^[0-9a-fA-F]+ [TtWw] ([A-Za-z_][A-Za-z0-9_.]*)(?:\t\[([A-Za-z0-9_-]+)\])?$", re.M
)
# starts with a literal, so the regex engine skips ahead with a fast search
_TRACEITER = re.compile(rb"__traceiter_([A-Za-z0-9_]+)(?:\t\[([A-Za-z0-9_-]+)\])?\n")


def functions(data: bytes) -> list[tuple[str | None, str]]:
    """(module or ``None``, name) of every function symbol (T/t/W/w) but ``__pfx_`` padding.

    >>> functions(b"ffffffff81000000 T vfs_read\\nffffffffa0000000 t f\\t[m]\\n")
    [(None, 'vfs_read'), ('m', 'f')]

    One regular expression over the raw bytes: a listing of every kernel function costs
    no per-symbol objects.
    """
    return [(mod.decode() if mod else None, name.decode())
            for name, mod in _FUNCTION_LINE.findall(data) if not name.startswith(b"__pfx_")]


def traceiters(data: bytes) -> list[tuple[str | None, str]]:
    """(module or ``None``, NAME) of every ``__traceiter_NAME`` symbol: the tracepoints.

    >>> traceiters(b"ffffffff81000000 T __traceiter_sched_switch\\n")
    [(None, 'sched_switch')]
    """
    out = []
    for m in _TRACEITER.finditer(data):
        if data[m.start() - 1] == 0x20:  # preceded by "TYPE ": not __pfx___traceiter_
            mod = m.group(2)
            out.append((mod.decode() if mod else None, m.group(1).decode()))
    return out


def select(
    data: bytes,
    name: Callable[[str], bool] | None = None,
    *,
    module: Callable[[str], bool] | None = None,
    types: str | None = None,
) -> list[KSym]:
    """The symbols of kallsyms ``data`` whose name, module and type letter fit (no I/O).

    ``name`` and ``module`` test a name (the core kernel's module is ``vmlinux``);
    ``types`` holds the type letters wanted (case matters: ``T`` global text, ``t``
    local). Hidden addresses (all zero: ``kptr_restrict``, or not root) are marked on
    every symbol, never presented as real.

    >>> [str(s) for s in select(b"0000000000000000 T vfs_read\\n"
    ...                          b"0000000000000000 t nf_hook\\t[nf_tables]\\n",
    ...                          lambda n: n.startswith("nf_"))]
    ['(hidden) t nf_hook [nf_tables]']

    Raises :class:`KallsymsFormatError` for a malformed line that fits.
    """
    text = data.decode("utf-8", errors="surrogateescape")
    hidden = re.search(r"^0*[1-9a-fA-F][0-9a-fA-F]* ", text, re.M) is None and bool(
        text.strip())
    picked: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        if name is not None and not name(parts[2]):
            continue
        if types is not None and parts[1] not in types:
            continue
        if module is not None and not module(parts[3][1:-1] if len(parts) > 3 else "vmlinux"):
            continue
        picked.append(line)
    return [KSym(s.address, s.type, s.name, s.module, hidden)
            for s in parse_kallsyms("\n".join(picked))]


def clear_cache() -> None:
    """Forget what was read and indexed (the next call reads /proc/kallsyms again).

    >>> clear_cache()
    """
    _data.clear()
    _index.clear()
