"""The bcc internals ebpfhooks uses, checked against the real bcc (not a fake)."""

from __future__ import annotations

import os
import types
from typing import Any

import pytest
from conftest import not_possible

from ebpfhooks import _bccshim
from ebpfhooks.errors import AttachError, BccNotFoundError


@pytest.fixture(scope="module")
def real_bcc() -> Any:
    try:
        import bcc
    except ImportError:
        not_possible("bcc is not importable (apt-get install python3-bpfcc; use make test)")
    return bcc


def test_the_installed_bcc_has_every_internal(real_bcc: Any) -> None:
    _bccshim.check(real_bcc)
    assert _bccshim.version(real_bcc).startswith(_bccshim.TESTED), (
        "a bcc version the tests have not checked: add it to TESTED once this file passes")
    import ctypes

    assert ctypes.CDLL(_bccshim.libbcc_path(real_bcc.libbcc.lib)).bpf_attach_uprobe


def test_error_a_bcc_without_them_is_refused_by_name() -> None:
    fake = types.SimpleNamespace(__version__="9.9", BPF=type("BPF", (), {}),
                                 libbcc=types.SimpleNamespace(lib=object()))
    with pytest.raises(BccNotFoundError) as err:
        _bccshim.check(fake)  # type: ignore[arg-type]
    assert "bcc 9.9 lacks what ebpfhooks uses of it (BPF._get_uprobe_evname" in str(err.value)
    assert "libbcc.lib._name" in str(err.value)
    assert "tested with bcc 0.26" in str(err.value)


@pytest.mark.live
def test_internals_behave_as_the_adapter_expects(live: None, uprobe_target: Any) -> None:
    """Event names, the probe quota, handing bcc an fd, the attached tables, against a
    real BPF object: what attach_uprobe relies on."""
    from bcc import BPF

    bpf = BPF(text="int ehk_shim(struct pt_regs *ctx) { return 0; }")
    try:
        path = str(uprobe_target).encode()
        name = _bccshim.uprobe_event_name(bpf, False, path, 0x1139, -1)
        assert name.startswith(b"p_") and name.endswith(b"_0x1139")
        assert b"/" not in name
        assert _bccshim.uprobe_event_name(bpf, True, path, 0x1139, 42).endswith(b"_0x1139_42")
        for table in ("kprobe", "uprobe", "tracepoint", "raw_tracepoint", "kfunc", "kretfunc",
                      "lsm"):
            assert _bccshim.attached(bpf, table) == {}
        _bccshim.check_probe_quota(bpf, "uprobe:x:y")  # far below the limit
        os.environ["BCC_PROBE_LIMIT"] = "0"
        try:
            with pytest.raises(AttachError, match="BCC_PROBE_LIMIT"):
                _bccshim.check_probe_quota(bpf, "uprobe:x:y")
        finally:
            del os.environ["BCC_PROBE_LIMIT"]
        fd = os.open("/dev/null", os.O_RDONLY)
        _bccshim.add_uprobe_fd(bpf, b"ehk_not_a_real_event", fd)
        assert _bccshim.attached(bpf, "uprobe") == {b"ehk_not_a_real_event": fd}
        del _bccshim.attached(bpf, "uprobe")[b"ehk_not_a_real_event"]  # not a real event
        os.close(fd)
        types_of = _bccshim.loaded_types(bpf)
        types_of["ehk_shim"] = "KPROBE"
        assert _bccshim.loaded_types(bpf) == {"ehk_shim": "KPROBE"}
        assert "_ebpfhooks_types" not in vars(bpf)  # nothing written into the caller's object
    finally:
        bpf.cleanup()
