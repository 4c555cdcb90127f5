"""Removing a netlink-attached XDP program only if it is still the one expected.

bcc's ``remove_xdp`` removes whatever XDP program an interface has. Kernels >= 5.7 take
``XDP_FLAGS_REPLACE`` with ``IFLA_XDP_EXPECTED_FD`` in the ``RTM_SETLINK`` request: the
kernel then removes the program only while it is the one ``expected_fd`` refers to, and
answers ``EEXIST`` when another has taken its place, in one step (no window between a
check and the removal)::

    from ebpfhooks.bpfsys.netlink import xdp_remove_expected
    code = xdp_remove_expected(ifindex, prog_fd, XDP_FLAGS_SKB_MODE)  # 0: removed
"""

from __future__ import annotations

import errno as _errno
import socket
import struct

__all__ = ["XDP_FLAGS_REPLACE", "xdp_remove_expected"]

RTM_SETLINK = 19
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
NLA_F_NESTED = 1 << 15
IFLA_XDP = 43
IFLA_XDP_FD, IFLA_XDP_FLAGS, IFLA_XDP_EXPECTED_FD = 1, 3, 8
XDP_FLAGS_REPLACE = 1 << 4


def _attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def xdp_remove_expected(ifindex: int, expected_fd: int, mode_flags: int) -> int:
    """Remove the XDP program of ``ifindex`` only if it is ``expected_fd``'s; return 0 or
    the kernel's errno (``EEXIST``: another program is there now and was left alone;
    ``EINVAL``: a kernel before 5.7, which has no expected-fd removal).

    ``mode_flags`` is the mode the program was attached in (``XDP_FLAGS_SKB_MODE``...).
    Minimum kernel 5.7. Raises nothing for a kernel refusal; :class:`OSError` only when no
    netlink socket can be opened.

    >>> xdp_remove_expected(socket.if_nametoindex("veth0"), prog_fd, 1 << 1)  # doctest: +SKIP
    0
    """
    xdp = (_attr(IFLA_XDP_FD, struct.pack("=i", -1))
           + _attr(IFLA_XDP_FLAGS, struct.pack("=I", mode_flags | XDP_FLAGS_REPLACE))
           + _attr(IFLA_XDP_EXPECTED_FD, struct.pack("=i", expected_fd)))
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, ifindex, 0, 0)
    body += _attr(IFLA_XDP | NLA_F_NESTED, xdp)
    seq = 1
    msg = struct.pack("=IHHII", 16 + len(body), RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK,
                      seq, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5)
        sock.sendto(msg, (0, 0))
        while True:
            try:
                reply = sock.recv(65536)
            except TimeoutError:
                return _errno.ETIMEDOUT
            at = 0
            while at + 16 <= len(reply):
                length, kind, _flags, rseq, _pid = struct.unpack_from("=IHHII", reply, at)
                if kind == NLMSG_ERROR and rseq == seq:
                    (code,) = struct.unpack_from("=i", reply, at + 16)
                    return -int(code)
                if length < 16:
                    return _errno.EPROTO
                at += (length + 3) & ~3

