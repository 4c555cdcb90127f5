#!/usr/bin/env python3
"""Count the packets an interface receives per protocol (EtherType / IP protocol), via xdp:IFACE.

Shows an XDP program: it runs for each received frame before the kernel's
network stack allocates anything, reads the Ethernet header (and one VLAN tag)
and the IPv4 protocol or IPv6 next-header byte straight from the packet, with
the bounds checks the verifier demands, counts it in a hash map and lets the
packet through (XDP_PASS). The program reads only wire formats, never kernel
structs, so mismatched kernel headers do not matter.

The link owns the attachment: it is removed when the script ends, on Ctrl-C or
SIGTERM too (on kernels >= 5.9 ebpfhooks attaches through a bpf_link, which the
kernel removes even if the process is killed), and it never replaces a program
it did not attach. Minimum kernel 4.8 (generic mode 4.12).

    sudo .venv/bin/python examples/xdp_count.py eth0 --duration 10 --interval 2
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

import ebpfhooks

SOURCE = r"""
#include <uapi/linux/bpf.h>

struct key_t {
    u16 ethertype;   /* 0: a frame too short for an Ethernet header */
    u16 ipproto;     /* IPv4 protocol / IPv6 next header; 0x100 when not IP */
};
BPF_HASH(counts, struct key_t, u64, 1024);

static inline u16 be16(const unsigned char *p) {
    return ((u16)p[0] << 8) | p[1];
}

int on_packet(struct xdp_md *ctx) {
    const unsigned char *data = (const unsigned char *)(long)ctx->data;
    const unsigned char *end = (const unsigned char *)(long)ctx->data_end;
    struct key_t key = {.ethertype = 0, .ipproto = 0x100};
    const unsigned char *l3 = data + 14;
    if (l3 > end)
        goto count;
    key.ethertype = be16(data + 12);
    if (key.ethertype == 0x8100 || key.ethertype == 0x88a8) {   /* one VLAN tag */
        l3 = data + 18;
        if (l3 > end)
            goto count;
        key.ethertype = be16(data + 16);
    }
    if (key.ethertype == 0x0800 && l3 + 20 <= end)        /* IPv4: protocol at +9 */
        key.ipproto = l3[9];
    else if (key.ethertype == 0x86dd && l3 + 40 <= end)   /* IPv6: next header at +6 */
        key.ipproto = l3[6];
count:
    counts.increment(key);
    return XDP_PASS;
}
"""

ETHERTYPES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8847: "MPLS", 0x88CC: "LLDP"}
IP_PROTOCOLS = {0: "HOPOPT", 1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE",
                58: "ICMPv6", 132: "SCTP"}


def protocol_name(ethertype: int, ipproto: int) -> str:
    """``IPv4/UDP``, ``IPv6/58``-style names; ``0x88b5`` for an unnamed EtherType.

    >>> protocol_name(0x0800, 17), protocol_name(0x0800, 253), protocol_name(0x88B5, 0x100)
    ('IPv4/UDP', 'IPv4/253', '0x88b5')
    """
    if ethertype == 0:
        return "runt"
    name = ETHERTYPES.get(ethertype, f"{ethertype:#06x}")
    if ipproto <= 0xFF:
        name += "/" + IP_PROTOCOLS.get(ipproto, str(ipproto))
    return name


def table(counts: dict[tuple[int, int], int]) -> list[str]:
    """Rows of ``PACKETS PROTOCOL``, most packets first, then the total."""
    rows = [f"{'PACKETS':>10}  PROTOCOL"]
    for (ethertype, ipproto), n in sorted(counts.items(), key=lambda item: -item[1]):
        rows.append(f"{n:>10}  {protocol_name(ethertype, ipproto)}")
    rows.append(f"{sum(counts.values()):>10}  total")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("interface", help="the network interface (e.g. eth0)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds to run (default 10)")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="print the counts every this many seconds too (default: at "
                             "the end only)")
    parser.add_argument("--mode", default="auto", choices=["auto", "skb", "drv", "hw"],
                        help="XDP mode: auto (native if the driver has it), skb (generic), "
                             "drv (native), hw (offload)")
    args = parser.parse_args(argv)
    try:
        hook = ebpfhooks.Xdp(args.interface, args.mode)   # validates the interface name
        hook.resolve()                                     # ... and that it exists
    except ebpfhooks.EbpfHooksError as err:
        print(f"xdp_count: {err}", file=sys.stderr)
        return 1
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1

    stop = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    # Our own handlers (set before attaching, so ebpfhooks leaves them alone): stop the
    # loop, print the counts, and let the `with` block detach.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def read_counts() -> dict[tuple[int, int], int]:
        return {(int(k.ethertype), int(k.ipproto)): int(v.value)
                for k, v in bpf["counts"].items()}

    bpf = BPF(text=SOURCE)
    try:
        with hook.attach(bpf, fn_name="on_packet") as link:
            print(f"attached {link.resolution}: counting for {args.duration:g} s", flush=True)
            start = time.monotonic()
            next_print = start + args.interval if args.interval > 0 else float("inf")
            while not stop and time.monotonic() < start + args.duration:
                time.sleep(0.05)
                if time.monotonic() >= next_print:
                    print(f"after {time.monotonic() - start:.1f} s:", flush=True)
                    print("\n".join(table(read_counts())), flush=True)
                    next_print += args.interval
            counts = read_counts()
        print(f"detached from {args.interface}", flush=True)
    except ebpfhooks.EbpfHooksError as err:
        print(f"xdp_count: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    print("\n".join(table(counts)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
