"""What the two interface kinds (:mod:`.xdp`, :mod:`.rawsocket`) share: the resolution,
listing the interfaces."""

from __future__ import annotations

from ebpfhooks.hooks.base import Found, Hook, Resolution

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from ebpfhooks.hooks.base import Pattern

__all__ = ["InterfaceResolution", "list_interfaces", "resolve_interface"]


class InterfaceResolution(Resolution):
    """An interface that exists: its name and ``ifindex``."""

    __slots__ = ("ifindex",)
    _fields = ("hook", "note", "ifindex")
    ifindex: int

    def __init__(self, hook: Hook, *, ifindex: int, note: str | None = None) -> None:
        self._init(hook=hook, note=note, ifindex=ifindex)

    def describe(self) -> str:
        return f"{self.hook} -> ifindex {self.ifindex}"


def resolve_interface(hook: Hook, interface: str) -> InterfaceResolution:
    """Check the interface exists; raises :class:`ebpfhooks.InterfaceNotFoundError`."""
    from ebpfhooks.kernel.netdev import ifindex

    return InterfaceResolution(hook, ifindex=ifindex(interface))


def list_interfaces(kind: type[Hook], pattern: Pattern, found: Found) -> None:
    """The interfaces of this network namespace matching the pattern's ``interface``."""
    from ebpfhooks.kernel.netdev import interfaces
    from ebpfhooks.spec import matcher

    ok = matcher(pattern["interface"])
    assert ok is not None
    for name in interfaces():
        if ok(name):
            found.add(f"{kind.kind}:{name}", kind, name)
    found.sources[kind.kind] = "the interfaces of this network namespace"
