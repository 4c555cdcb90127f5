"""Packets: XDP on an interface (bpf_link or netlink) and raw sockets.

>>> attach_xdp(bpf, "on_xdp", "eth0", 2, what="xdp:eth0:skb")  # doctest: +SKIP

Minimum kernel: 4.8 (XDP; generic mode 4.12; bpf_link 5.9), 3.19 (socket filters).
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

from ebpfhooks import bpfsys
from ebpfhooks._bcc import core
from ebpfhooks._bcc.core import (
    CAPS_NET,
    CAPS_RAW_SOCKET,
    Attachment,
    _attach_error,
    _load_func,
    load,
)
from ebpfhooks.bpfsys._attr import ENOTSUPP
from ebpfhooks.errors import (
    AttachError,
    HookPermissionError,
)

# ---------------------------------------------------------------- XDP

XDP_FLAGS_UPDATE_IF_NOEXIST = 1
BPF_LINK_CREATE = bpfsys.BPF_LINK_CREATE  # enum bpf_cmd
BPF_XDP = bpfsys.BPF_XDP  # enum bpf_attach_type; XDP links need kernel 5.9

#: How an XDP program is attached: ``"link"`` (a bpf_link, detached by the kernel when its
#: fd closes, even on SIGKILL), ``"netlink"`` (bcc's way: stays until removed) or ``"auto"``
#: (bpf_link where the kernel has XDP links, 5.9+, else netlink). Overridden by the
#: ``EBPFHOOKS_XDP_ATTACH`` environment variable.
XDP_ATTACH_MODES = ("auto", "link", "netlink")


def xdp_attach_mode() -> str:
    """The XDP attach mechanism in force (``EBPFHOOKS_XDP_ATTACH``, default ``auto``)."""
    mode = os.environ.get("EBPFHOOKS_XDP_ATTACH", "auto").strip().lower() or "auto"
    if mode not in XDP_ATTACH_MODES:
        raise AttachError(
            f"EBPFHOOKS_XDP_ATTACH={mode!r} is not one of {', '.join(XDP_ATTACH_MODES)}; "
            "unset it to let ebpfhooks choose (bpf_link on kernels >= 5.9)"
        )
    return mode


#: ``bpf_link_create(prog_fd, target_fd, attach_type, flags)`` -> fd or -errno
#: (ebpfhooks.bpfsys: libbpf's when libbpf.so.1 loads, else the raw syscall).
_link_create_fn = bpfsys.link_create_fn


def _xdp_mode_hint(interface: str, mode_flags: int) -> str:
    """What the refused XDP mode needs, and the spec to use instead."""
    if mode_flags & 8:  # XDP_FLAGS_HW_MODE
        return (f"hw (offload) mode runs the program on the NIC: it needs a driver that "
                f"offloads XDP (e.g. Netronome nfp) and a program compiled for that device "
                f"(bcc: BPF(text=..., device={interface!r})); use xdp:{interface}:drv "
                f"(native) or xdp:{interface}:skb (generic) instead")
    if mode_flags & 4:  # XDP_FLAGS_DRV_MODE
        return (f"native (drv) mode needs XDP support in the driver of {interface!r}; use "
                f"xdp:{interface}:skb (generic), or xdp:{interface} (auto: native where the "
                "driver has it, else generic)")
    return f"try xdp:{interface}:skb (generic mode works on every interface)"


def _xdp_busy(what: str, interface: str, code: int) -> AttachError:
    return AttachError(
        f"the kernel refused to attach {what}: interface {interface!r} already has an "
        "XDP program; ebpfhooks never replaces one it does not own "
        f"(see it with: ip link show dev {interface}; if it was left by a dead process, "
        f"remove it with: ebpfhooks cleanup --xdp {interface}, or ip link set dev "
        f"{interface} xdp off)",
        errno=code,
    )


def attach_xdp(bpf: Any, fn_name: str, interface: str, mode_flags: int, *, what: str,
               ifindex: int | None = None, via: str | None = None) -> Attachment:
    """Attach an XDP program, never replacing another.

    ``via`` is ``"link"``, ``"netlink"`` or ``"auto"`` (default: :func:`xdp_attach_mode`):
    a bpf_link (kernel 5.9+) is detached by the kernel when this process exits, even by
    SIGKILL; bcc's netlink attach outlives the process unless removed.
    """
    fn = _load_func(bpf, fn_name, "XDP", what)
    via = via or xdp_attach_mode()
    if via == "auto":
        from ebpfhooks.kernel.features import FeatureStatus, bpf_link

        via = "link" if bpf_link().status is not FeatureStatus.NO else "netlink"
    if via == "link":
        if ifindex is None:
            from ebpfhooks.kernel.netdev import ifindex as _ifindex

            ifindex = _ifindex(interface)
        fd = _link_create_fn()(fn.fd, ifindex, BPF_XDP, mode_flags)
        if fd >= 0:
            return Attachment(lambda: os.close(fd), via="bpf_link", fd=fd)
        code = -fd
        if code in (_errno.EBUSY, _errno.EEXIST):
            raise _xdp_busy(what, interface, code)
        if code in (_errno.EPERM, _errno.EACCES):
            raise HookPermissionError(
                f"attaching {what} was refused ({os.strerror(code)}): needs {CAPS_NET}; "
                "run as root", capability="CAP_BPF")
        if code == _errno.ENODEV:
            from ebpfhooks.errors import InterfaceNotFoundError

            raise InterfaceNotFoundError(interface, where="this network namespace (ip link show)")
        if code not in (_errno.EINVAL, _errno.ENOSYS):
            raise AttachError(
                f"the kernel refused to attach {what} through a bpf_link: "
                f"{os.strerror(code)}; {_xdp_mode_hint(interface, mode_flags)}",
                errno=code,
            )
        # EINVAL/ENOSYS: this kernel has no XDP links after all; netlink below
    return _attach_xdp_netlink(fn, interface, mode_flags, what)


def _attach_xdp_netlink(fn: Any, interface: str, mode_flags: int, what: str) -> Attachment:
    bcc = load()
    dev = interface.encode()
    try:
        bcc.BPF.attach_xdp(dev, fn, mode_flags | XDP_FLAGS_UPDATE_IF_NOEXIST)
    except Exception as err:
        code = core._errno_now()
        if code in (_errno.EBUSY, _errno.EEXIST):
            raise _xdp_busy(what, interface, code) from err
        raise _attach_error(what, err, CAPS_NET,
                            _xdp_mode_hint(interface, mode_flags)) from err

    record = _netlink_record(fn, interface)
    # our own reference to the program (it outlives bpf.cleanup()): the removal names it
    expected = _dup_fd(fn) if record is not None else -1

    def detach() -> None:
        if expected >= 0 and record is not None:
            from ebpfhooks.bpfsys.netlink import xdp_remove_expected

            code = xdp_remove_expected(record[0], expected, mode_flags)
            # 0: removed; EEXIST: another program is there now (never remove theirs), or
            # none; ENODEV/ENOENT: the interface is gone, and its program with it
            if code in (0, _errno.EEXIST, _errno.ENODEV, _errno.ENOENT):
                os.close(expected)
                return
            if code not in (_errno.EINVAL, _errno.EOPNOTSUPP, ENOTSUPP):
                raise AttachError(f"detaching {what} failed: {os.strerror(code)}", errno=code)
            # a kernel before 5.7 (no expected-fd removal): check, then remove, below
        if record is not None and not _still_ours(interface, record[1]):
            _close(expected)
            return  # replaced by someone else's program since: never remove theirs
        try:
            bcc.BPF.remove_xdp(dev, mode_flags)
        except Exception as err:
            code = core._errno_now()
            if code not in (_errno.ENODEV, _errno.ENOENT):  # else the interface is gone
                raise AttachError(f"detaching {what} failed: {err}",
                                  errno=code or None) from err
        _close(expected)

    return Attachment(detach, via="netlink", record=record)


def _dup_fd(fn: Any) -> int:
    """A duplicate of the program fd of bcc's function ``fn`` (-1 if it has none)."""
    try:
        return os.dup(int(fn.fd))
    except (OSError, TypeError, ValueError):
        return -1


def _close(fd: int) -> None:
    if fd >= 0:
        os.close(fd)


def _still_ours(interface: str, prog_id: int) -> bool:
    """Whether ``prog_id`` is still the XDP program on ``interface`` (unknown: yes)."""
    from ebpfhooks.errors import InterfaceNotFoundError, IpCommandError
    from ebpfhooks.kernel.netdev import xdp_attached

    try:
        return xdp_attached(interface) == prog_id
    except InterfaceNotFoundError:
        return False  # the interface is gone, and its program with it
    except IpCommandError:
        return True  # cannot tell without ip(8): remove as bcc would


def _netlink_record(fn: Any, interface: str) -> tuple[int, int, str] | None:
    """(ifindex, prog_id, name) of a netlink XDP attach, for its ownership record."""
    import re
    import socket

    try:
        with open(f"/proc/self/fdinfo/{int(fn.fd)}") as f:
            m = re.search(r"^prog_id:\s*(\d+)", f.read(), re.M)
        index = socket.if_nametoindex(interface)
    except (OSError, TypeError, ValueError):
        return None
    if m is None:
        return None
    name = getattr(fn, "name", b"")
    return index, int(m.group(1)), name.decode("utf-8", "replace") if isinstance(
        name, bytes) else ""


def attach_raw_socket(bpf: Any, fn_name: str, interface: str, *, what: str) -> Attachment:
    """Open a raw socket on ``interface`` with the program attached (``fd`` is the socket)."""
    bcc = load()
    fn = _load_func(bpf, fn_name, "SOCKET_FILTER", what)
    try:
        bcc.BPF.attach_raw_socket(fn, interface.encode())
    except Exception as err:
        sock = getattr(fn, "sock", None)
        if isinstance(sock, int) and sock >= 0:
            os.close(sock)
        raise _attach_error(what, err, CAPS_RAW_SOCKET) from err
    fd: int = fn.sock
    closed = False

    def detach() -> None:
        nonlocal closed
        if not closed:
            closed = True
            os.close(fd)

    return Attachment(detach, via="socket", fd=fd)
