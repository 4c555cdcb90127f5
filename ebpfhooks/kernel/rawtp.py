"""The raw tracepoints BPF can open on the running kernel, read from its BTF.

``BPF_RAW_TRACEPOINT_OPEN`` finds a name in the kernel's ``__bpf_raw_tp_map`` tables
(vmlinux's and each module's), and the kernel declares a ``btf_trace_NAME`` type beside
every entry (``include/trace/bpf_probe.h``). So the ``btf_trace_`` strings of
``/sys/kernel/btf/vmlinux`` and ``/sys/kernel/btf/MODULE`` are exactly the names that
attach, read in a few milliseconds (only the 2.3 MB string section of the 5.5 MB BTF;
reading /proc/kallsyms takes ~70 ms here). The ``__traceiter_`` symbols of /proc/kallsyms are a
superset: on 6.18 ``__traceiter_sched_set_state_tp`` exists, has no map entry, and
opening it fails with ENOENT::

    >>> from ebpfhooks.kernel import rawtp
    >>> (None, "sched_switch") in rawtp.raw_tracepoints()  # doctest: +SKIP
    True

Minimum kernel: 5.5 for vmlinux BTF, 5.11 for module BTF. Without BTF,
:func:`raw_tracepoints` returns ``None`` and callers use /proc/kallsyms instead.
"""

from __future__ import annotations

import functools
import os

# not the ebpfhooks.kernel.btf package: its type parser and pathlib would cost
# `ebpfhooks list` ~7 ms, and only the string sections are read here
from ebpfhooks.kernel.btfstrings import raw_tracepoint_names, read_string_section

TYPE_CHECKING = False  # typing is not imported at run time (start-up time of `list`)
if TYPE_CHECKING:
    from pathlib import Path

    #: Where the kernel publishes BTF: ``vmlinux`` and one file per loaded module.
    BTF_DIR: Path

__all__ = ["BTF_DIR", "clear_cache", "homes", "raw_tracepoints"]

_BTF_DIR = "/sys/kernel/btf"


def __getattr__(name: str) -> Path:
    # BTF_DIR is a Path, made on first use: importing pathlib costs `list` ~5 ms
    if name == "BTF_DIR":
        from pathlib import Path

        return Path(_BTF_DIR)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=4)
def _read(btf_dir: str) -> tuple[tuple[str | None, str], ...] | None:
    try:
        strings = read_string_section(os.path.join(btf_dir, "vmlinux"))
    except OSError:
        return None
    out: list[tuple[str | None, str]] = [(None, name) for name in raw_tracepoint_names(strings)]
    try:
        modules = sorted(e.name for e in os.scandir(btf_dir) if e.name != "vmlinux")
    except OSError:
        modules = []
    for module in modules:
        try:
            strings = read_string_section(os.path.join(btf_dir, module))
        except OSError:  # unloaded since the directory was read
            continue
        out.extend((module, name) for name in raw_tracepoint_names(strings))
    return tuple(out)


def raw_tracepoints(reload: bool = False, btf_dir: Path | str = _BTF_DIR
                    ) -> list[tuple[str | None, str]] | None:
    """(module or ``None`` for vmlinux, name) of every raw tracepoint BPF can open.

    >>> raw_tracepoints(btf_dir="/nonexistent") is None
    True

    ``None`` when the kernel publishes no BTF (CONFIG_DEBUG_INFO_BTF unset, or before
    5.5). Read once and cached; ``reload=True`` reads again (modules come and go).
    Raises :class:`ebpfhooks.BtfFormatError` if a BTF file is malformed.
    Minimum kernel: 5.5 (vmlinux), 5.11 (modules).
    """
    if reload:
        clear_cache()
    found = _read(os.fspath(btf_dir))
    return None if found is None else list(found)


@functools.lru_cache(maxsize=4)
def _homes(btf_dir: str) -> dict[str, tuple[str | None, ...]] | None:
    found = _read(btf_dir)
    if found is None:
        return None
    index: dict[str, list[str | None]] = {}
    for module, name in found:
        index.setdefault(name, []).append(module)
    return {name: tuple(mods) for name, mods in index.items()}


def homes(name: str, btf_dir: Path | str = _BTF_DIR) -> tuple[str | None, ...] | None:
    """Where raw tracepoint ``name`` lives: modules (``None`` for vmlinux), maybe empty.

    >>> homes("sched_switch", btf_dir="/nonexistent") is None
    True

    ``None`` when the kernel publishes no BTF; answered from an index built once.
    """
    index = _homes(os.fspath(btf_dir))
    return None if index is None else index.get(name, ())


def clear_cache() -> None:
    """Forget what was read (the next call reads the BTF files again).

    >>> clear_cache()
    """
    _read.cache_clear()
    _homes.cache_clear()
