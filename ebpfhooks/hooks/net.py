"""Packet hooks on a network interface: :class:`Xdp` and :class:`RawSocket`."""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from ebpfhooks import _bcc
from ebpfhooks.errors import SpecError
from ebpfhooks.hooks._fields import validated
from ebpfhooks.hooks.base import Hook, Program, Resolution
from ebpfhooks.names import check_interface

__all__ = ["InterfaceResolution", "RawSocket", "Xdp", "XdpMode"]


class XdpMode(enum.Enum):
    """Where the XDP program runs.

    ``AUTO`` lets the kernel choose (native when the driver supports it,
    else generic), ``SKB`` is generic mode (any interface, slower), ``DRV``
    native driver mode, ``HW`` offloaded to the NIC. The value is the netlink
    flag bcc passes.
    """

    AUTO = 0
    SKB = 2
    DRV = 4
    HW = 8

    @property
    def spec_word(self) -> str:
        """The word used in specs (``skb``, ``drv``, ``hw``; empty for auto)."""
        return "" if self is XdpMode.AUTO else self.name.lower()

    @classmethod
    def from_word(cls, word: str) -> XdpMode:
        """Parse ``auto``, ``skb``/``generic``, ``drv``/``native``, ``hw``/``offload``."""
        table = {
            "auto": cls.AUTO, "skb": cls.SKB, "generic": cls.SKB, "drv": cls.DRV,
            "native": cls.DRV, "hw": cls.HW, "offload": cls.HW,
        }
        try:
            return table[word.lower()]
        except KeyError:
            raise SpecError(
                f"unknown XDP mode {word!r}; expected one of auto, skb (generic), "
                "drv (native), hw (offload)",
                spec=word, column=0, length=len(word),
            ) from None


@attrs.frozen
class InterfaceResolution(Resolution):
    """An interface that exists: its name and ``ifindex``."""

    ifindex: int = attrs.field(kw_only=True)

    def describe(self) -> str:
        return f"{self.hook} -> ifindex {self.ifindex}"


def _resolve_interface(hook: Xdp | RawSocket) -> InterfaceResolution:
    from ebpfhooks.kernel.netdev import ifindex

    return InterfaceResolution(hook, ifindex=ifindex(hook.interface))


def _mode(value: object) -> XdpMode:
    if isinstance(value, XdpMode):
        return value
    if isinstance(value, str):
        return XdpMode.from_word(value)
    raise SpecError(f"XDP mode must be an XdpMode or a word like 'skb', got {value!r}")


@attrs.frozen
class Xdp(Hook):
    """XDP on a network interface: ``xdp:IFACE[:mode]``.

    >>> str(Xdp("lo", XdpMode.SKB))
    'xdp:lo:skb'

    Fires for each packet the interface receives, before the kernel's
    network stack allocates anything; the program returns ``XDP_PASS``,
    ``XDP_DROP``... and takes ``struct xdp_md *ctx``. The link removes the
    program from the interface on detach and at exit (bcc does not), and
    never replaces a program it does not own. Minimum kernel 4.8 (generic
    mode 4.12).

    On kernels >= 5.9 the program is attached through a kernel ``bpf_link``
    (``link.fd`` is its fd): the kernel detaches it when the fd closes, so
    even a SIGKILLed process leaves nothing on the interface. Older kernels
    (or ``EBPFHOOKS_XDP_ATTACH=netlink``) use bcc's netlink attach, which
    stays until removed (``ebpfhooks cleanup`` finds such leftovers); see
    docs/lifetimes.md.
    """

    interface: str = attrs.field(validator=validated(check_interface, "interface"))
    mode: XdpMode = attrs.field(default=XdpMode.AUTO, converter=_mode)

    kind = "xdp"
    hooks = "network interface (packets received)"
    fires = "when the interface receives a packet"
    bcc_entry = "attach_xdp"
    stable = True
    overhead = "very low"
    min_kernel = (4, 8)
    program_type = "XDP"
    capabilities = (frozenset({"CAP_SYS_ADMIN"}), frozenset({"CAP_BPF", "CAP_NET_ADMIN"}))

    def spec(self) -> str:
        """``xdp:IFACE`` or ``xdp:IFACE:mode``."""
        word = self.mode.spec_word
        return f"xdp:{self.interface}" + (f":{word}" if word else "")

    def resolve(self) -> InterfaceResolution:
        """Check the interface exists; raises :class:`ebpfhooks.InterfaceNotFoundError`."""
        return _resolve_interface(self)

    def _attach_resolved(
        self, program: Program, resolution: Resolution
    ) -> tuple[Callable[[], None], int | None]:
        ifindex = resolution.ifindex if isinstance(resolution, InterfaceResolution) else None
        attachment = _bcc.attach_xdp(program.bpf, program.fn_name, self.interface,
                                     self.mode.value, what=str(self), ifindex=ifindex)
        return attachment, attachment.fd


@attrs.frozen
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

    interface: str = attrs.field(validator=validated(check_interface, "interface"))

    kind = "raw_socket"
    hooks = "network interface (packets, via a socket)"
    fires = "when a packet passes the interface"
    bcc_entry = "attach_raw_socket"
    stable = True
    overhead = "very low"
    min_kernel = (3, 19)
    program_type = "SOCKET_FILTER"
    capabilities = (
        frozenset({"CAP_NET_RAW", "CAP_BPF"}),
        frozenset({"CAP_NET_RAW", "CAP_SYS_ADMIN"}),
    )

    def spec(self) -> str:
        """``raw_socket:IFACE``."""
        return f"raw_socket:{self.interface}"

    def resolve(self) -> InterfaceResolution:
        """Check the interface exists; raises :class:`ebpfhooks.InterfaceNotFoundError`."""
        return _resolve_interface(self)

    def _attach_resolved(
        self, program: Program, resolution: Resolution
    ) -> tuple[Callable[[], None], int | None]:
        detach, fd = _bcc.attach_raw_socket(program.bpf, program.fn_name, self.interface,
                                            what=str(self))
        return detach, fd
