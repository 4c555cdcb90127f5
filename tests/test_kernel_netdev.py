"""Tests of ebpfhooks.kernel.netdev: the ip -json parser, then interfaces made for the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import not_possible

from ebpfhooks.errors import InterfaceNotFoundError
from ebpfhooks.kernel import netdev
from ebpfhooks.kernel.netdev import IpCommandError, parse_xdp_prog_id

IP_SINGLE = json.dumps([{
    "ifindex": 7, "ifname": "ehk1a",
    "xdp": {"mode": 2, "prog": {"id": 11, "name": "xdp_pass", "tag": "614b434cd8324ecc",
                                "jited": 1},
            "attached": [{"mode": 2, "prog": {"id": 11, "name": "xdp_pass"}}]},
}])
IP_MULTI = json.dumps([{
    "ifindex": 7, "ifname": "ehk1a",
    "xdp": {"mode": 4, "attached": [{"mode": 1, "prog": {"id": 30}},
                                    {"mode": 2, "prog": {"id": 31}}]},
}])

XDP_PASS_IR = """\
define i32 @xdp_pass(i8* %ctx) section "xdp" {
  ret i32 2
}
@_license = global [4 x i8] c"GPL\\00", section "license"
"""


def test_parse_xdp_prog_id():
    assert parse_xdp_prog_id(IP_SINGLE) == 11
    assert parse_xdp_prog_id(IP_MULTI) == 30
    assert parse_xdp_prog_id('[{"ifname": "lo", "xdp": {"mode": 0}}]') is None
    assert parse_xdp_prog_id('[{"ifname": "lo"}]') is None


def test_error_parse_xdp_prog_id():
    with pytest.raises(IpCommandError) as info:
        parse_xdp_prog_id("Device does not exist")
    assert str(info.value) == (
        "expected JSON from `ip -details -json link show`, got 'Device does not exist'"
    )
    with pytest.raises(IpCommandError, match="one interface object"):
        parse_xdp_prog_id("[]")


def test_live_loopback():
    assert netdev.interfaces()["lo"] == netdev.ifindex("lo") == 1


def test_error_ifindex_unknown_lists_candidates():
    with pytest.raises(InterfaceNotFoundError) as info:
        netdev.ifindex("loo")
    err = info.value
    assert "lo" in err.candidates
    assert str(err).startswith(
        "network interface 'loo' not found in this network namespace (ip link show); closest: lo"
    )
    assert isinstance(err, LookupError)
    with pytest.raises(InterfaceNotFoundError):
        netdev.ifindex("a" * 20)
    with pytest.raises(InterfaceNotFoundError):
        netdev.xdp_attached("nosuchdev0")


@pytest.fixture
def veth():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        not_possible("the veth tests need root and iproute2")
    a, b = f"ehn{os.getpid()}a", f"ehn{os.getpid()}b"
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    try:
        yield a, b
    finally:
        subprocess.run(["ip", "link", "del", a], check=False, capture_output=True)


def test_live_veth_appears_and_goes(veth):
    a, b = veth
    names = netdev.interfaces()
    assert a in names and b in names
    assert netdev.ifindex(a) == int(Path(f"/sys/class/net/{a}/ifindex").read_text())
    assert netdev.xdp_attached(a) is None
    subprocess.run(["ip", "link", "del", a], check=True)
    assert a not in netdev.interfaces()  # not cached
    with pytest.raises(InterfaceNotFoundError):
        netdev.ifindex(a)


def test_live_xdp_attached_matches_bpftool(veth, tmp_path):
    a, _ = veth
    if shutil.which("llc") is None or shutil.which("bpftool") is None:
        not_possible("llc and bpftool are needed to build and check a test XDP program")
    (tmp_path / "xdp.ll").write_text(XDP_PASS_IR)
    subprocess.run(["llc", "-march=bpf", "-filetype=obj", str(tmp_path / "xdp.ll"),
                    "-o", str(tmp_path / "xdp.o")], check=True)
    subprocess.run(["ip", "link", "set", "dev", a, "xdpgeneric", "obj",
                    str(tmp_path / "xdp.o"), "sec", "xdp"], check=True)
    prog_id = netdev.xdp_attached(a)
    out = subprocess.run(["bpftool", "-j", "net", "show", "dev", a], check=True,
                         capture_output=True, text=True).stdout
    oracle = [x["id"] for entry in json.loads(out) for x in entry.get("xdp", [])]
    assert prog_id is not None and [prog_id] == oracle
    subprocess.run(["ip", "link", "set", "dev", a, "xdpgeneric", "off"], check=True)
    assert netdev.xdp_attached(a) is None
