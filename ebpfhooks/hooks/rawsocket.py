"""A socket filter on a raw socket bound to a network interface (:class:`RawSocket`)."""

from __future__ import annotations

from ebpfhooks import caps
from ebpfhooks.hooks._interface import InterfaceResolution, list_interfaces, resolve_interface
from ebpfhooks.hooks.base import Found, Hook, Pattern, Resolution, text_field
from ebpfhooks.names import check_interface

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Any, Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.spec import Body

__all__ = ["RawSocket"]


class RawSocket(Hook):
    """A socket filter on a raw socket bound to an interface: ``raw_socket:IFACE``.

    >>> str(RawSocket("lo"))
    'raw_socket:lo'

    Opens an ``AF_PACKET``/``SOCK_RAW`` socket on the interface and attaches
    the program (``SOCKET_FILTER``, takes ``struct __sk_buff *skb``) to it; the
    program sees every packet and decides what the socket receives. Read
    packets from ``link.fd``; the link closes the socket on detach.
    Minimum kernel 3.19.
    """

    __slots__ = ("interface",)
    _fields = ("interface",)
    interface: str

    kind = "raw_socket"
    bcc_prefix = "raw_socket"
    aliases = ("rawsocket",)
    example = "eth0"
    target_noun = "interface"
    hooks = "network interface (packets, via a socket)"
    fires = "when a packet passes the interface"
    attach_via = "bcc attach_raw_socket (AF_PACKET socket + SO_ATTACH_BPF)"
    bcc_entry = "attach_raw_socket"
    stable = True
    overhead = "very low"
    min_kernel = (3, 19)
    program_type = "SOCKET_FILTER"
    capabilities = caps.RAW_SOCKET

    def __init__(self, interface: str) -> None:
        self._init(interface=text_field(interface, check_interface, "interface"))

    def _target_names(self) -> tuple[str, str]:
        return self.interface, self.interface

    def spec(self) -> str:
        """``raw_socket:IFACE``."""
        return f"raw_socket:{self.interface}"

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``interface`` (libbpf's ``SEC("socket")`` names no interface)."""
        if body.libbpf:
            sep = body.start - 1
            raise body.error(sep, sep + 1, f"libbpf's SEC(\"{body.word}\") names no interface",
                             f"write {cls.kind}:IFACE")
        iface = body.t.name(body.start, body.end, check_interface)
        return Pattern(cls, interface=iface) if body.pattern else cls(iface)

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

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import _bcc

        return _bcc.attach_raw_socket(program.bpf, program.fn_name, self.interface,
                                      what=str(self))
