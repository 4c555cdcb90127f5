"""The capabilities each kind needs: one table, read by the hooks, the adapter and doctor.

Each entry is a tuple of alternatives; holding every capability of any one set is
enough (``CAP_SYS_ADMIN`` alone, or ``CAP_BPF`` with ``CAP_PERFMON``)::

    >>> describe(TRACING)
    'CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)'

Minimum kernel: CAP_BPF and CAP_PERFMON exist since 5.8; before, BPF needs CAP_SYS_ADMIN.
"""

from __future__ import annotations

__all__ = ["NET", "RAW_SOCKET", "TRACING", "describe", "missing", "require"]

Needs = tuple[frozenset[str], ...]

#: Tracing programs (kprobes, tracepoints, uprobes, ...): load BPF, open perf events.
TRACING: Needs = (frozenset({"CAP_SYS_ADMIN"}), frozenset({"CAP_BPF", "CAP_PERFMON"}))
#: XDP: load BPF, change an interface.
NET: Needs = (frozenset({"CAP_SYS_ADMIN"}), frozenset({"CAP_BPF", "CAP_NET_ADMIN"}))
#: A socket filter on a raw socket: open an AF_PACKET socket, load BPF.
RAW_SOCKET: Needs = (frozenset({"CAP_NET_RAW", "CAP_BPF"}),
                     frozenset({"CAP_NET_RAW", "CAP_SYS_ADMIN"}))


def describe(needs: Needs) -> str:
    """The needs in words: the smallest set first, the others in parentheses.

    >>> describe(RAW_SOCKET)
    'CAP_BPF and CAP_NET_RAW (or CAP_NET_RAW and CAP_SYS_ADMIN)'
    """
    words = [" and ".join(sorted(s)) for s in sorted(needs, key=lambda s: (-len(s), sorted(s)))]
    head, rest = words[0], words[1:]
    return head + (f" (or {' or '.join(rest)})" if rest else "")


def missing(needs: Needs, have: frozenset[str]) -> list[str]:
    """The capabilities to add to ``have`` to meet ``needs`` (fewest first; [] when met).

    >>> missing(TRACING, frozenset({"CAP_BPF"}))
    ['CAP_PERFMON']
    """
    if any(s <= have for s in needs):
        return []
    return sorted(min(needs, key=lambda s: (len(s - have), sorted(s))) - have)


def require(needs: Needs, what: str) -> None:
    """Raise :class:`ebpfhooks.HookPermissionError` unless this thread meets ``needs``.

    The message names ``what`` was refused, every way to meet the needs and what this
    process lacks for the nearest one.
    """
    from ebpfhooks.errors import HookPermissionError
    from ebpfhooks.kernel.features import capabilities

    have = capabilities()
    lacking = missing(needs, have)
    if not lacking:
        return
    options = " or ".join("+".join(sorted(s)) for s in needs)
    held = "none of them" if not any(s & have for s in needs) else None
    raise HookPermissionError(
        f"{what} needs {options}; this process "
        + (f"holds {held}" if held else f"lacks {', '.join(lacking)}") + ": "
        "run as root (sudo) or grant the capabilities "
        "(e.g. setcap cap_bpf,cap_perfmon,cap_net_admin+ep on the interpreter)",
        capability=lacking[0],
    )
