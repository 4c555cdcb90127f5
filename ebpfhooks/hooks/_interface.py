"""What the two interface kinds (:mod:`.xdp`, :mod:`.rawsocket`) share: a target that is
a network interface (resolution, listing, ``info`` facts, function names)."""

from __future__ import annotations

from ebpfhooks.hooks.base import Found, Hook, Resolution

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Any

    from ebpfhooks.hooks.base import Pattern
    from ebpfhooks.spec import Body

__all__ = ["InterfaceHook", "InterfaceResolution", "list_interfaces", "resolve_interface"]


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


class InterfaceHook(Hook):
    """A hook on a network interface of this network namespace (``interface``)."""

    __slots__ = ("interface",)
    interface: str

    example = "eth0"
    target_noun = "interface"
    target_shape = "IFACE"

    @classmethod
    def _refuse_libbpf(cls, body: Body) -> None:
        """libbpf's ``SEC("xdp")``/``SEC("socket")`` name no interface: refuse that spelling."""
        if body.libbpf:
            sep = body.start - 1
            raise body.error(sep, sep + 1, f"libbpf's SEC(\"{body.word}\") names no interface",
                             f"write {cls.kind}:IFACE")

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """The interfaces of this network namespace."""
        list_interfaces(cls, pattern, found)

    def resolve(self) -> InterfaceResolution:
        """Check the interface exists; raises :class:`ebpfhooks.InterfaceNotFoundError`."""
        return resolve_interface(self, self.interface)

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """The interface index."""
        res = self.resolve()
        facts["interface"] = self.interface
        facts["ifindex"] = res.ifindex
        text.append(f"    interface: {self.interface}   ifindex: {res.ifindex}")

    def _target_names(self) -> tuple[str, str]:
        return self.interface, self.interface
