"""Network interfaces of this network namespace: names, indexes, attached XDP programs.

Nothing here is cached: interfaces come and go::

    from ebpfhooks.kernel import netdev
    netdev.ifindex("lo")          # 1
    netdev.xdp_attached("lo")     # None, or the id of the XDP program on lo

:func:`xdp_attached` runs ``ip -details -json link show dev NAME`` (iproute2) and reads
its ``xdp`` object with the pure :func:`parse_xdp_prog_id`.
"""

from __future__ import annotations

import json
import socket
import subprocess
from typing import Any

from ebpfhooks._util import close_matches
from ebpfhooks.errors import InterfaceNotFoundError, IpCommandError

__all__ = ["IpCommandError", "ifindex", "interfaces", "parse_xdp_prog_id", "xdp_attached"]

_WHERE = "this network namespace (ip link show)"




def interfaces() -> dict[str, int]:
    """Return ``{name: ifindex}`` for every interface in this network namespace.

    >>> interfaces()["lo"]  # doctest: +SKIP
    1
    """
    return {name: index for index, name in socket.if_nameindex()}


def _not_found(name: str) -> InterfaceNotFoundError:
    known = interfaces()
    return InterfaceNotFoundError(
        name,
        where=_WHERE,
        candidates=close_matches(name, sorted(known)) or sorted(known)[:5],
        hint="list interfaces with: ip link show",
    )


def ifindex(name: str) -> int:
    """Return the index of interface ``name`` (not cached).

    >>> ifindex("lo")  # doctest: +SKIP
    1

    Raises:
        InterfaceNotFoundError: no such interface; ``candidates`` are the closest names.
    """
    if not name or "\0" in name or "/" in name or len(name) >= 16:
        raise _not_found(name)
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise _not_found(name) from None


def parse_xdp_prog_id(ip_json: str) -> int | None:
    """Return the XDP program id in ``ip -details -json link show dev NAME`` output, or None.

    Reads ``xdp.prog.id``; in multi-attach mode (driver and generic at once) the first
    ``xdp.attached[].prog.id``.

    >>> parse_xdp_prog_id('[{"ifname": "veth0", "xdp": {"mode": 2, "prog": {"id": 11}}}]')
    11
    >>> parse_xdp_prog_id('[{"ifname": "lo"}]') is None
    True

    Raises:
        IpCommandError: the text is not ``ip -json`` output for one interface.
    """
    try:
        data: Any = json.loads(ip_json)
    except json.JSONDecodeError as err:
        raise IpCommandError(
            f"expected JSON from `ip -details -json link show`, got {ip_json[:80]!r}"
        ) from err
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
        raise IpCommandError(
            f"expected a JSON list with one interface object, got {ip_json[:80]!r}"
        )
    xdp = data[0].get("xdp")
    if not isinstance(xdp, dict):
        return None
    progs = [xdp.get("prog")] + [a.get("prog") for a in xdp.get("attached", []) or []
                                 if isinstance(a, dict)]
    for prog in progs:
        if isinstance(prog, dict) and isinstance(prog.get("id"), int):
            return int(prog["id"])
    return None


def xdp_attached(name: str) -> int | None:
    """Return the id of the XDP program attached to interface ``name``, or ``None``.

    Runs ``ip -details -json link show dev NAME`` (fixed argv, no shell).

    >>> xdp_attached("lo") is None  # doctest: +SKIP
    True

    Minimum kernel: 4.8 (XDP); program ids are reported since 4.13.

    Raises:
        InterfaceNotFoundError: no such interface.
        IpCommandError: ``ip`` is not installed or its output is not understood.
    """
    ifindex(name)  # raises InterfaceNotFoundError with candidates
    argv = ["ip", "-details", "-json", "link", "show", "dev", name]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise IpCommandError(
            "the `ip` command (iproute2) is not installed; install iproute2 to check XDP"
        ) from err
    if proc.returncode != 0:
        if "does not exist" in proc.stderr or "Cannot find device" in proc.stderr:
            raise _not_found(name)
        raise IpCommandError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()}")
    return parse_xdp_prog_id(proc.stdout)
