"""A stand-in kernel for the BTF kinds (fentry, fexit, tp_btf, lsm): what they load, how.

``fake_kernel`` replaces the one bpf(2) path of :mod:`ebpfhooks.bpfsys` and the read of
bcc's compiled instructions, records each ``BPF_PROG_LOAD`` and
``BPF_RAW_TRACEPOINT_OPEN`` and hands out real file descriptors (of /dev/null), so a
test sees exactly which program type, attach type and BTF id each kind asks for, and
that detaching closes every fd. The live tests (test_live_btfkinds.py) prove the same
paths against the real kernels.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest

from ebpfhooks import bpfsys
from ebpfhooks._bcc import tracing as _bcc_tracing
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import Feature, FeatureStatus

NOP = bytes.fromhex("b700000000000000" "9500000000000000")


class FakeBpf:
    """What a compiled bcc module offers the adapter (no compiler, no kernel)."""

    def __init__(self) -> None:
        self.module = object()
        self.funcs: dict[bytes, Any] = {}
        self.kfunc_entry_fds: dict[bytes, int] = {}
        self.kfunc_exit_fds: dict[bytes, int] = {}
        self.lsm_fds: dict[bytes, int] = {}

    def load_func(self, name: bytes, prog_type: int) -> Any:
        raise AssertionError("the BTF kinds never ask bcc to load a function")


class FakeKernel:
    """Records the bpf(2) calls; ``fail`` maps a command to the errno it answers with."""

    def __init__(self) -> None:
        self.loads: list[dict[str, Any]] = []
        self.opens: list[int] = []
        self.fds: list[int] = []
        self.fail: dict[int, int] = {}
        self.log = ""  # the verifier log a failing load writes

    def sys_bpf(self, cmd: int, attr: Any) -> int:
        if cmd in self.fail:
            if cmd == bpfsys.BPF_PROG_LOAD and attr.log_size and self.log:
                import ctypes

                data = self.log.encode()[: attr.log_size - 1] + b"\0"
                ctypes.memmove(attr.log_buf, data, len(data))
            return -self.fail[cmd]
        if cmd == bpfsys.BPF_PROG_LOAD:
            self.loads.append({
                "prog_type": int(attr.prog_type),
                "attach_type": int(attr.expected_attach_type),
                "btf_id": int(attr.attach_btf_id),
                "btf_obj_fd": int(attr.attach_btf_obj_fd),
                "name": bytes(attr.prog_name).rstrip(b"\0").decode(),
            })
        elif cmd == bpfsys.BPF_RAW_TRACEPOINT_OPEN:
            assert attr.name == 0  # tracing programs name their target by BTF id
            self.opens.append(int(attr.prog_fd))
        else:
            return -errno.EINVAL
        fd = os.open(os.devnull, os.O_RDONLY)
        self.fds.append(fd)
        return fd

    def open_fds(self) -> list[int]:
        """The fds it handed out that are still open."""
        left = []
        for fd in self.fds:
            try:
                os.fstat(fd)
            except OSError:
                continue
            left.append(fd)
        return left


def yes(name: str) -> Any:
    return lambda: Feature(name, FeatureStatus.YES, "pretend", None)


def no(name: str, reason: str) -> Any:
    return lambda: Feature(name, FeatureStatus.NO, reason, "fix it")


def install(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    """The fake kernel: privileged, with BTF, BPF trampolines and an active BPF LSM."""
    kernel = FakeKernel()
    monkeypatch.setattr(bpfsys.bpf, "_sys_bpf", kernel.sys_bpf)
    monkeypatch.setattr(_bcc_tracing, "compiled_insns", lambda bpf, fn: (NOP, "GPL"))
    monkeypatch.setattr(features, "capabilities", lambda: frozenset({"CAP_SYS_ADMIN"}))
    monkeypatch.setattr(features, "trampolines", yes("trampolines"))
    monkeypatch.setattr(features, "bpf_lsm", yes("bpf_lsm"))
    monkeypatch.setattr(features, "btf", yes("btf"))
    return kernel
