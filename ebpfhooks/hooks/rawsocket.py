"""A socket filter on a raw socket bound to a network interface (:class:`RawSocket`)."""

from __future__ import annotations

from ebpfhooks import caps
from ebpfhooks.hooks._interface import InterfaceHook
from ebpfhooks.hooks.base import Pattern, Resolution, text_field
from ebpfhooks.names import check_interface

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.spec import Body

__all__ = ["RawSocket"]


class RawSocket(InterfaceHook):
    """A socket filter on a raw socket bound to an interface: ``raw_socket:IFACE``.

    >>> str(RawSocket("lo"))
    'raw_socket:lo'

    Opens an ``AF_PACKET``/``SOCK_RAW`` socket on the interface and attaches
    the program (``SOCKET_FILTER``, takes ``struct __sk_buff *skb``) to it; the
    program sees every packet and decides what the socket receives. Read
    packets from ``link.fd``; the link closes the socket on detach.
    Minimum kernel 3.19.
    """

    __slots__ = ()
    _fields = ("interface",)

    kind = "raw_socket"
    bcc_prefix = "raw_socket"
    aliases = ("rawsocket",)
    hooks = "network interface (packets, via a socket)"
    fires = "when a packet passes the interface"
    attach_via = "bcc attach_raw_socket (AF_PACKET socket + SO_ATTACH_BPF)"
    bcc_entry = "attach_raw_socket"
    stable = True
    overhead = "very low"
    min_kernel = (3, 19)
    program_type = "SOCKET_FILTER"
    program_ctx = "struct __sk_buff *skb"
    capabilities = caps.RAW_SOCKET

    def __init__(self, interface: str) -> None:
        self._init(interface=text_field(interface, check_interface, "interface"))

    def spec(self) -> str:
        """``raw_socket:IFACE``."""
        return f"raw_socket:{self.interface}"

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``interface`` (libbpf's ``SEC("socket")`` names no interface)."""
        cls._refuse_libbpf(body)
        iface = body.t.name(body.start, body.end, check_interface)
        return Pattern(cls, interface=iface) if body.pattern else cls(iface)

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import _bcc

        return _bcc.attach_raw_socket(program.bpf, program.fn_name, self.interface,
                                      what=str(self))
