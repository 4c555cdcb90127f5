#!/usr/bin/env python3
"""Print a one-line summary of each packet on an interface, read from a raw_socket:IFACE hook.

Shows a socket filter: ebpfhooks opens an AF_PACKET raw socket bound to the
interface and attaches the program to it; the program runs for every packet
the interface sends or receives and decides, in the kernel, what the socket
gets (here: everything, or only one EtherType with --ethertype, read with
load_half from the frame). The script reads the accepted frames from the
link's file descriptor (`link.fd`) and decodes Ethernet, ARP, IPv4, IPv6, TCP
and UDP headers itself. The link closes the socket when the script ends.
Minimum kernel 3.19.

    sudo .venv/bin/python examples/sniff.py lo --duration 5
    sudo .venv/bin/python examples/sniff.py eth0 --ethertype 0x0806 --count 10
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import select
import socket
import sys
import time

import ebpfhooks

SOURCE = r"""
#include <uapi/linux/bpf.h>

/* WANT_ETHERTYPE (0: every packet) comes from cflags, as a validated int. */
BPF_ARRAY(stats, u64, 2);   /* [0] packets seen by the filter, [1] passed to the socket */

int on_packet(struct __sk_buff *skb) {
    int seen = 0, passed = 1;
    u64 *n = stats.lookup(&seen);
    if (n)
        __sync_fetch_and_add(n, 1);
#if WANT_ETHERTYPE
    if (skb->len < 14 || load_half(skb, 12) != WANT_ETHERTYPE)
        return 0;               /* 0: the socket does not get this packet */
#endif
    n = stats.lookup(&passed);
    if (n)
        __sync_fetch_and_add(n, 1);
    return -1;                  /* keep the whole packet */
}
"""

ETHERTYPES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "802.1Q"}
IP_PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6"}
DIRECTIONS = {socket.PACKET_HOST: "in", socket.PACKET_BROADCAST: "in",
              socket.PACKET_MULTICAST: "in", socket.PACKET_OTHERHOST: "in",
              socket.PACKET_OUTGOING: "out"}


def ethertype_arg(text: str) -> int:
    """argparse type: an EtherType such as 0x0800 (it reaches the generated C: only an int)."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an EtherType: {text!r} (e.g. 0x0800)") from None
    if not 0x0600 <= value <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"EtherType out of range 0x0600..0xffff: {text}")
    return value


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _transport(proto: int, src: str, dst: str, payload: bytes) -> str:
    name = IP_PROTOCOLS.get(proto, f"proto {proto}")
    if proto in (6, 17) and len(payload) >= 4:
        sport, dport = int.from_bytes(payload[0:2], "big"), int.from_bytes(payload[2:4], "big")
        return f"{src}:{sport} > {dst}:{dport} {name}"
    return f"{src} > {dst} {name}"


def summarize(frame: bytes) -> str:
    """One line about an Ethernet frame: addresses, protocol, ports.

    >>> frame = bytes.fromhex("0200000000010200000000020800" "4500001c00010000401100000ac80002"
    ...                       "0ac80001" "0fa0138800080000")
    >>> summarize(frame)
    '02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.200.0.2:4000 > 10.200.0.1:5000 UDP'
    """
    if len(frame) < 14:
        return f"runt frame of {len(frame)} bytes"
    head = f"{_mac(frame[6:12])} > {_mac(frame[0:6])}"
    ethertype, body = int.from_bytes(frame[12:14], "big"), frame[14:]
    if ethertype == 0x0800 and len(body) >= 20:
        ihl = (body[0] & 0x0F) * 4
        src, dst = ipaddress.IPv4Address(body[12:16]), ipaddress.IPv4Address(body[16:20])
        return f"{head} IPv4 " + _transport(body[9], str(src), str(dst), body[ihl:])
    if ethertype == 0x86DD and len(body) >= 40:
        src6, dst6 = ipaddress.IPv6Address(body[8:24]), ipaddress.IPv6Address(body[24:40])
        return f"{head} IPv6 " + _transport(body[6], f"[{src6}]", f"[{dst6}]", body[40:])
    if ethertype == 0x0806 and len(body) >= 28:
        op = int.from_bytes(body[6:8], "big")
        sender, target = ipaddress.IPv4Address(body[14:18]), ipaddress.IPv4Address(body[24:28])
        what = f"who-has {target} tell {sender}" if op == 1 else f"reply {sender} is-at " \
            f"{_mac(body[8:14])}"
        return f"{head} ARP {what}"
    return f"{head} {ETHERTYPES.get(ethertype, f'{ethertype:#06x}')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("interface", help="the network interface (e.g. lo)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds to run (default 10)")
    parser.add_argument("--count", type=int, default=0,
                        help="stop after this many packets (default: no limit)")
    parser.add_argument("--ethertype", type=ethertype_arg, default=0,
                        help="keep only frames of this EtherType (filtered in the kernel)")
    args = parser.parse_args(argv)
    try:
        hook = ebpfhooks.RawSocket(args.interface)   # validates the interface name
        hook.resolve()                               # ... and that it exists
    except ebpfhooks.EbpfHooksError as err:
        print(f"sniff: {err}", file=sys.stderr)
        return 1
    try:
        from bcc import BPF
    except ImportError:
        print("bcc is not importable: run `make demo` (it installs python3-bpfcc)",
              file=sys.stderr)
        return 1

    bpf = BPF(text=SOURCE, cflags=[f"-DWANT_ETHERTYPE={args.ethertype}"])
    printed = 0
    try:
        with hook.attach(bpf, fn_name="on_packet") as link:
            assert link.fd is not None
            what = f"EtherType {args.ethertype:#06x}" if args.ethertype else "every packet"
            print(f"attached {link.resolution}: {what} for {args.duration:g} s", flush=True)
            # fromfd dups the link's socket: ours to close; the link closes its own.
            with socket.fromfd(link.fd, socket.AF_PACKET, socket.SOCK_RAW) as sock:
                sock.setblocking(False)
                deadline = time.monotonic() + args.duration
                try:
                    while time.monotonic() < deadline and not (args.count and
                                                               printed >= args.count):
                        ready, _, _ = select.select([sock], [], [], 0.1)
                        if not ready:
                            continue
                        frame, address = sock.recvfrom(65535)
                        direction = DIRECTIONS.get(address[2], "?")
                        stamp = time.strftime("%H:%M:%S")
                        print(f"{stamp} {direction:<3} {len(frame):>5} {summarize(frame)}",
                              flush=True)
                        printed += 1
                except KeyboardInterrupt:
                    pass
        seen = int(bpf["stats"][ctypes.c_int(0)].value)
        passed = int(bpf["stats"][ctypes.c_int(1)].value)
    except ebpfhooks.EbpfHooksError as err:
        print(f"sniff: {err}", file=sys.stderr)
        return 1
    finally:
        bpf.cleanup()
    print(f"{printed} packets printed; the filter saw {seen} and passed {passed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
