"""Finding hooks: list with wildcards, expand to hooks, describe one, suggest the right one.

``bpftrace -l`` and ``bpftrace -lv``, reading ``/proc/kallsyms``, and choosing a hook (a
stable tracepoint before a kprobe), as a library::

    >>> import ebpfhooks
    >>> ebpfhooks.list_hooks("tracepoint:syscalls:sys_enter_execve*")  # doctest: +SKIP
    ['tracepoint:syscalls:sys_enter_execve', 'tracepoint:syscalls:sys_enter_execveat']
    >>> hooks = ebpfhooks.expand("t:syscalls:sys_enter_open*")           # doctest: +SKIP
    >>> with hooks.attach(bpf, fn_name="on_open") as group: ...          # doctest: +SKIP
    >>> print(ebpfhooks.info("tracepoint:sched:sched_switch"))           # doctest: +SKIP
    >>> ebpfhooks.suggest("execve").recommended                          # doctest: +SKIP
    'tracepoint:syscalls:sys_enter_execve'

Three rooms over the kind registry (:mod:`ebpfhooks.hooks`): :mod:`.listing` (list,
expand, :class:`HookSet`), :mod:`.describe` (:func:`info`) and :mod:`.choose`
(:func:`suggest`); :func:`kallsyms` reads the symbol table through
:mod:`ebpfhooks.kernel.kallsyms`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from ebpfhooks.discover.choose import Candidate, Suggestion, suggest
    from ebpfhooks.discover.describe import HookInfo, info
    from ebpfhooks.discover.listing import HookSet, Listing, expand, list_hooks, search
    from ebpfhooks.kernel.kallsyms import KSym

    KALLSYMS_FILE: Path

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

#: Public name -> the room that defines it, imported on first use: ``ebpfhooks list``
#: needs only :mod:`.listing`, not ``suggest``'s and ``info``'s rooms (nor pathlib).
_ROOMS = {
    "Candidate": "choose", "Suggestion": "choose", "suggest": "choose",
    "HookInfo": "describe", "info": "describe",
    "HookSet": "listing", "Listing": "listing", "expand": "listing",
    "list_hooks": "listing", "search": "listing",
}


def __getattr__(name: str) -> Any:
    if name == "KALLSYMS_FILE":
        from ebpfhooks.kernel.kallsyms import KALLSYMS_FILE

        return KALLSYMS_FILE
    room = _ROOMS.get(name)
    if room is None:
        raise AttributeError(f"module 'ebpfhooks.discover' has no attribute {name!r}")
    module = f"ebpfhooks.discover.{room}"
    __import__(module)  # importlib itself would cost more than this room's import
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ROOMS) | {"KALLSYMS_FILE"})


def kallsyms(
    pattern: str | None = None,
    *,
    module: str | None = None,
    type: str | None = None,
    path: Path | str = "/proc/kallsyms",
) -> list[KSym]:
    """The kernel symbols matching ``pattern``/``module``/``type``, from /proc/kallsyms.

    >>> [s.type_description for s in kallsyms("do_sys_openat2")]  # doctest: +SKIP
    ['local text (code)']

    ``pattern`` matches the name (wildcards allowed), ``module`` the module
    (``vmlinux`` for the core kernel), ``type`` is one or more type letters (case
    matters: ``T`` global text, ``t`` local text). Each
    :class:`ebpfhooks.KSym` has ``address`` (use ``real_address``: ``None`` when
    kallsyms hides addresses), ``type`` and its ``type_description``, ``name`` and
    ``module``. The file is read once per process.

    Raises :class:`SpecError` for a pattern or module that is not a symbol name, and
    :class:`ebpfhooks.HookPermissionError` when the file cannot be read.
    """
    from pathlib import Path

    from ebpfhooks.errors import SpecError
    from ebpfhooks.kernel import kallsyms as table
    from ebpfhooks.names import check_kernel_symbol, check_module
    from ebpfhooks.spec import SpecText, matcher

    if pattern is not None:
        SpecText(pattern, pattern=True).name(0, len(pattern), check_kernel_symbol)
    if module is not None and module != "vmlinux":
        SpecText(module, pattern=True).name(0, len(module), check_module)
    if type is not None and (not type or not all(ch.isalpha() for ch in type)):
        raise SpecError(f"symbol type {type!r} is not one or more type letters",
                        hint="e.g. --type T (global text) or --type tT; see `ebpfhooks "
                             "kallsyms --help` for the letters")
    return table.select(table.read(Path(path)), matcher(pattern), module=matcher(module),
                        types=type)
