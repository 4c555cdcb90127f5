"""XDP: a program on the packets a network interface receives (:class:`Xdp`)."""

from __future__ import annotations

import enum

from ebpfhooks import caps
from ebpfhooks.errors import EbpfHooksError, SpecError
from ebpfhooks.hooks._interface import InterfaceHook, InterfaceResolution
from ebpfhooks.hooks.base import Pattern, Resolution, text_field
from ebpfhooks.names import check_interface

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Any, Self

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.spec import Body

__all__ = ["InterfaceResolution", "Xdp", "XdpMode"]


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


def _mode(value: object) -> XdpMode:
    if isinstance(value, XdpMode):
        return value
    if isinstance(value, str):
        return XdpMode.from_word(value)
    raise SpecError(f"XDP mode must be an XdpMode or a word like 'skb', got {value!r}")


class Xdp(InterfaceHook):
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

    __slots__ = ("mode",)
    _fields = ("interface", "mode")
    mode: XdpMode

    kind = "xdp"
    bcc_prefix = "xdp"
    hooks = "network interface (packets received)"
    fires = "when the interface receives a packet"
    attach_via = ("BPF_LINK_CREATE (a bpf_link, kernel 5.9+), ebpfhooks' own; else bcc "
                  "attach_xdp (netlink)")
    bcc_entry = "attach_xdp"
    stable = True
    overhead = "very low"
    min_kernel = (4, 8)
    program_type = "XDP"
    program_ctx = "struct xdp_md *ctx"
    feature = "xdp"
    capabilities = caps.NET

    def __init__(self, interface: str, mode: XdpMode | str = XdpMode.AUTO) -> None:
        self._init(interface=text_field(interface, check_interface, "interface"),
                   mode=_mode(mode))

    def spec(self) -> str:
        """``xdp:IFACE`` or ``xdp:IFACE:mode``."""
        word = self.mode.spec_word
        return f"xdp:{self.interface}" + (f":{word}" if word else "")

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``interface [":" ("auto"|"skb"|"generic"|"drv"|"native"|"hw"|"offload")]``
        (libbpf's ``SEC("xdp")`` names no interface)."""
        cls._refuse_libbpf(body)
        colon = body.find(":")
        iface_end = body.end if colon == -1 else colon
        iface = body.t.name(body.start, iface_end, check_interface)
        if body.pattern:
            return Pattern(cls, interface=iface)
        mode = XdpMode.AUTO
        if colon != -1:
            word = body.t.text[colon + 1:body.end]
            try:
                mode = XdpMode.from_word(word)
            except SpecError:
                raise body.error(colon + 1, body.end, f"unknown XDP mode {word!r}",
                                 "expected auto, skb (generic), drv (native) or hw (offload)"
                                 ) from None
        return cls(iface, mode)

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """The interface index and any XDP program already attached."""
        from ebpfhooks.kernel.netdev import xdp_attached

        super().info_facts(facts, text)
        try:
            prog = xdp_attached(self.interface)
        except EbpfHooksError:
            prog = None
        facts["xdp_program_attached"] = prog
        text.append("    XDP program attached now: "
                    + (f"id {prog} (attach would be refused)" if prog else "none"))

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import _bcc

        ifindex = resolution.ifindex if isinstance(resolution, InterfaceResolution) else None
        return _bcc.attach_xdp(program.bpf, program.fn_name, self.interface,
                               self.mode.value, what=str(self), ifindex=ifindex)
