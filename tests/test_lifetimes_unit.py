"""Ownership rules of ebpfhooks.cleanup and the XDP attach choice, without the kernel."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ebpfhooks import _bcc
from ebpfhooks.cleanup import XdpProgram, parse_ip_link_xdp, parse_probe_events
from ebpfhooks.errors import AttachError
from ebpfhooks.kernel.netdev import IpCommandError


def test_parse_probe_events_reads_bcc_owner_pids() -> None:
    text = ("p:kprobes/p_do_sys_openat2_bcc_1234 do_sys_openat2\n"
            "r:uprobes/r__bin_bash_0x1139_bcc_77_on_readline /bin/bash:0x0000000000001139\n"
            "p:uprobes/mine /bin/true:0x10\n"
            "garbage line\n")
    events = parse_probe_events(text, "kprobe_events")
    assert [(e.group, e.event, e.owner_pid) for e in events] == [
        ("kprobes", "p_do_sys_openat2_bcc_1234", 1234),
        ("uprobes", "r__bin_bash_0x1139_bcc_77_on_readline", 77),
        ("uprobes", "mine", None),
    ]
    assert not any(e.stale for e in events)  # parsed text knows no liveness: all alive


def test_parse_ip_link_xdp_every_mode() -> None:
    data = [
        {"ifindex": 1, "ifname": "lo"},
        {"ifindex": 5, "ifname": "v0", "xdp": {"mode": 2, "prog": {"id": 9, "name": "f"}}},
        {"ifindex": 6, "ifname": "v1", "xdp": {"mode": 4, "attached": [
            {"mode": 1, "prog": {"id": 3, "name": "d"}},
            {"mode": 2, "prog": {"id": 4, "name": "g"}}]}},
    ]
    assert parse_ip_link_xdp(json.dumps(data)) == [
        ("v0", 5, 9, "f", "generic"), ("v1", 6, 3, "d", "driver"), ("v1", 6, 4, "g", "generic")]
    with pytest.raises(IpCommandError):
        parse_ip_link_xdp("nope")


@pytest.mark.parametrize(("kwargs", "stale"), [
    ({}, False),                                              # nobody says who attached it
    ({"explicit": True}, True),                               # ... unless the user names it
    ({"recorded_by": (1, 2)}, True),                          # ebpfhooks recorded, owner gone
    ({"recorded_by": (1, 2), "recorder_alive": True}, False),  # owner alive
    ({"recorded_by": (1, 2), "holders": (42,)}, False),       # a live process holds it
    ({"explicit": True, "holders": (42,)}, False),
    ({"explicit": True, "via_link": True}, False),            # a bpf_link: the kernel's job
])
def test_xdp_ownership_rules(kwargs: dict[str, Any], stale: bool) -> None:
    prog = XdpProgram("v0", 5, 9, "f", "generic", **kwargs)
    assert prog.stale is stale
    assert prog.why()


def test_xdp_attach_mode_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EBPFHOOKS_XDP_ATTACH", raising=False)
    assert _bcc.xdp_attach_mode() == "auto"
    monkeypatch.setenv("EBPFHOOKS_XDP_ATTACH", "NetLink")
    assert _bcc.xdp_attach_mode() == "netlink"
    monkeypatch.setenv("EBPFHOOKS_XDP_ATTACH", "ioctl")
    with pytest.raises(AttachError, match="not one of auto, link, netlink"):
        _bcc.xdp_attach_mode()


def test_xdp_link_busy_is_the_never_replace_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fn:
        fd = 99

    monkeypatch.setattr(_bcc.net, "_load_func", lambda *a: Fn())
    monkeypatch.setattr(_bcc.net, "_link_create_fn", lambda: lambda *a: -16)  # EBUSY
    with pytest.raises(AttachError, match="already has an XDP program; ebpfhooks never "
                                          "replaces one it does not own") as err:
        _bcc.attach_xdp(object(), "f", "v0", 2, what="xdp:v0:skb", ifindex=5, via="link")
    assert err.value.errno == 16
    calls: list[tuple[int, ...]] = []
    monkeypatch.setattr(_bcc.net, "_link_create_fn",
                        lambda: lambda *a: calls.append(a) or 1000)
    monkeypatch.setattr(_bcc.net.os, "close", lambda fd: calls.append((fd,)))
    att = _bcc.attach_xdp(object(), "f", "v0", 2, what="xdp:v0:skb", ifindex=5, via="link")
    assert att.via == "bpf_link" and att.fd == 1000 and att.record is None
    assert calls == [(99, 5, _bcc.net.BPF_XDP, 2)]
    att.detach()  # closing the link's fd detaches
    assert calls[-1] == (1000,) and len(calls) == 2
