"""bpfsys without the kernel: bpf_attr layouts (against the uapi headers where they have the
field), what each call puts in bpf_attr, and how every errno becomes a typed error.

The kernel is faked by replacing ``bpfsys.bpf._sys_bpf`` (and ``_perf_event_open``/``_ioctl``
of ``bpfsys.perf``): each fake sees the command and the ctypes structure the real syscall
would get.
"""

from __future__ import annotations

import ctypes
import errno
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ebpfhooks import bpfsys
from ebpfhooks.bpfsys import _attr
from ebpfhooks.bpfsys import bpf as bpf_mod
from ebpfhooks.bpfsys import perf as perf_mod
from ebpfhooks.errors import (
    AttachError,
    BinaryNotFoundError,
    EbpfHooksError,
    HookPermissionError,
    NotSupportedError,
    ProcessNotFoundError,
    ProgramError,
    SpecError,
)
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import Feature, FeatureStatus

NOP = bytes.fromhex("b700000000000000" "9500000000000000")
ROOT_CAPS = frozenset({"CAP_SYS_ADMIN", "CAP_BPF", "CAP_PERFMON"})

# --------------------------------------------------------------------------- layouts

#: (structure, size, {field: offset}) as the kernel's uapi headers lay them out (6.18; the
#: uprobe_multi and perf_event fields as pahole prints union bpf_attr).
LAYOUTS: list[tuple[type[ctypes.Structure], int, dict[str, int]]] = [
    (bpfsys.ProgLoadAttr, 128, {
        "prog_type": 0, "insn_cnt": 4, "insns": 8, "license": 16, "log_level": 24,
        "log_size": 28, "log_buf": 32, "kern_version": 40, "prog_flags": 44,
        "prog_name": 48, "prog_ifindex": 64, "expected_attach_type": 68, "prog_btf_fd": 72,
        "func_info_rec_size": 76, "func_info": 80, "func_info_cnt": 88,
        "line_info_rec_size": 92, "line_info": 96, "line_info_cnt": 104, "attach_btf_id": 108,
        "attach_btf_obj_fd": 112, "core_relo_cnt": 116, "fd_array": 120}),
    (bpfsys.RawTracepointOpenAttr, 16, {"name": 0, "prog_fd": 8}),
    (bpfsys.LinkCreateAttr, 64, {"prog_fd": 0, "target_fd": 4, "attach_type": 8, "flags": 12,
                                 "u": 16}),
    (bpfsys.BtfInfo, 32, {"btf": 0, "btf_size": 8, "id": 12, "name": 16, "name_len": 24,
                          "kernel_btf": 28}),
    (bpfsys.PerfEventAttr, 112, {
        "type": 0, "size": 4, "config": 8, "sample_period": 16, "sample_type": 24,
        "read_format": 32, "flags": 40, "wakeup_events": 48, "bp_type": 52, "config1": 56,
        "config2": 64, "branch_sample_type": 72, "sample_regs_user": 80,
        "sample_stack_user": 88, "clockid": 92, "sample_regs_intr": 96, "aux_watermark": 104,
        "sample_max_stack": 108}),
]


@pytest.mark.parametrize(("struct", "size", "offsets"), LAYOUTS,
                         ids=[s.__name__ for s, _, _ in LAYOUTS])
def test_layout(struct: type[ctypes.Structure], size: int, offsets: dict[str, int]) -> None:
    assert ctypes.sizeof(struct) == size
    assert ctypes.alignment(struct) == 8
    for name, offset in offsets.items():
        assert getattr(struct, name).offset == offset, name


def _in_attr(field: str) -> int:
    """Offset within bpf_attr of a field of the link_create union."""
    union = bpfsys.LinkCreateAttr.u.offset
    for member in ("uprobe_multi", "perf_event", "tracing"):
        sub = getattr(_attr._LinkCreateTail, member)
        if field.startswith(member + "."):
            inner = getattr(sub.size and type(getattr(_attr._LinkCreateTail(), member)),
                            field.split(".", 1)[1])
            return union + sub.offset + inner.offset
    return union + getattr(_attr._LinkCreateTail, field).offset


def test_link_create_union_layout() -> None:
    assert ctypes.sizeof(_attr._LinkCreateTail) == 48
    assert {f: _in_attr(f) for f in (
        "target_btf_id", "perf_event.bpf_cookie", "tracing.target_btf_id", "tracing.cookie",
        "uprobe_multi.path", "uprobe_multi.offsets", "uprobe_multi.ref_ctr_offsets",
        "uprobe_multi.cookies", "uprobe_multi.cnt", "uprobe_multi.flags",
        "uprobe_multi.pid")} == {
        "target_btf_id": 16, "perf_event.bpf_cookie": 16, "tracing.target_btf_id": 16,
        "tracing.cookie": 24, "uprobe_multi.path": 16, "uprobe_multi.offsets": 24,
        "uprobe_multi.ref_ctr_offsets": 32, "uprobe_multi.cookies": 40,
        "uprobe_multi.cnt": 48, "uprobe_multi.flags": 52, "uprobe_multi.pid": 56}


#: Fields the installed uapi headers (linux-libc-dev) may have, by C expression.
_C_FIELDS = {
    "ProgLoadAttr": ("union bpf_attr", ["prog_type", "insn_cnt", "insns", "license",
                                        "log_level", "log_size", "log_buf", "kern_version",
                                        "prog_flags", "prog_name", "prog_ifindex",
                                        "expected_attach_type", "prog_btf_fd",
                                        "func_info_rec_size", "func_info", "func_info_cnt",
                                        "line_info_rec_size", "line_info", "line_info_cnt",
                                        "attach_btf_id", "attach_btf_obj_fd", "core_relo_cnt",
                                        "fd_array"]),
    "RawTracepointOpenAttr": ("union bpf_attr", ["raw_tracepoint.name",
                                                 "raw_tracepoint.prog_fd"]),
    "LinkCreateAttr": ("union bpf_attr", ["link_create.prog_fd", "link_create.target_fd",
                                          "link_create.attach_type", "link_create.flags",
                                          "link_create.target_btf_id",
                                          "link_create.perf_event.bpf_cookie",
                                          "link_create.tracing.cookie"]),
    "BtfInfo": ("struct bpf_btf_info", ["btf", "btf_size", "id", "name", "name_len",
                                        "kernel_btf"]),
    "PerfEventAttr": ("struct perf_event_attr", ["type", "size", "config", "sample_period",
                                                 "sample_type", "read_format",
                                                 "wakeup_events", "bp_type", "config1",
                                                 "config2", "branch_sample_type",
                                                 "sample_regs_user", "sample_stack_user",
                                                 "clockid", "sample_regs_intr",
                                                 "aux_watermark", "sample_max_stack"]),
}


def _ours(struct: str, field: str) -> int:
    cls = getattr(bpfsys, struct)
    name = field.split(".", 1)[-1]
    if struct == "LinkCreateAttr" and name.startswith(("target_btf_id", "perf_event.",
                                                       "tracing.")):
        return _in_attr(name)
    return int(getattr(cls, name).offset)


def test_layouts_match_the_installed_uapi_headers(tmp_path: Path) -> None:
    """Every field the machine's <linux/bpf.h> and <linux/perf_event.h> know, compiled."""
    if shutil.which("gcc") is None or not Path("/usr/include/linux/bpf.h").exists():
        pytest.skip("needs gcc and linux-libc-dev's uapi headers")
    probes = []
    for struct, (ctype, fields) in _C_FIELDS.items():
        for field in fields:
            probes.append((struct, field, f"offsetof({ctype}, {field})"))
    src = tmp_path / "layout.c"
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/bpf.h>",
             "#include <linux/perf_event.h>", "int main(void) {"]
    exe = tmp_path / "layout"

    def offsets(batch: list[tuple[str, str, str]]) -> list[int] | None:
        body = [*lines, *(f'printf("%zu\\n", (size_t){e});' for _, _, e in batch),
                "return 0; }"]
        src.write_text("\n".join(body))
        if subprocess.run(["gcc", "-o", str(exe), str(src)], capture_output=True).returncode:
            return None
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
        return [int(x) for x in out.split()]

    # all at once; one program per field only when the header lacks one of them
    results: dict[tuple[str, str], int | None] = {}
    together = offsets(probes)
    for i, (struct, field, expr) in enumerate(probes):
        one = [together[i]] if together is not None else offsets([(struct, field, expr)])
        results[(struct, field)] = one[0] if one else None
    checked = 0
    for (struct, field), offset in results.items():
        if offset is not None:
            assert _ours(struct, field) == offset, (struct, field)
            checked += 1
    assert checked >= 50  # Debian 12's 6.1 headers have every field listed


# --------------------------------------------------------------------------- a fake kernel


class FakeBpf:
    """Stands in for bpf(2): answers each command from ``answers`` (a list per command)."""

    def __init__(self, answers: dict[int, list[int]], log: str = "") -> None:
        self.answers = answers
        self.log = log
        self.calls: list[tuple[int, bytes]] = []

    def __call__(self, cmd: int, attr: ctypes.Structure) -> int:
        self.calls.append((cmd, bytes(attr)))  # type: ignore[call-overload]
        if isinstance(attr, bpfsys.ProgLoadAttr) and attr.log_buf and self.log:
            raw = self.log.encode()[: attr.log_size - 1] + b"\0"
            ctypes.memmove(attr.log_buf, raw, len(raw))
        queue = self.answers.get(cmd, [0])
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeBpf]:
    monkeypatch.setattr(features, "capabilities", lambda: ROOT_CAPS)

    def install(answers: dict[int, list[int]], log: str = "") -> FakeBpf:
        fake = FakeBpf(answers, log)
        monkeypatch.setattr(bpf_mod, "_sys_bpf", fake)
        return fake

    return install


def _load_attr(raw: bytes) -> bpfsys.ProgLoadAttr:
    return bpfsys.ProgLoadAttr.from_buffer_copy(raw)


# --------------------------------------------------------------------------- prog_load


def test_prog_load_fills_bpf_attr(kernel: Callable[..., FakeBpf]) -> None:
    fake = kernel({bpfsys.BPF_PROG_LOAD: [7]})
    fd = bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_TRACING, NOP, name="a_very_long_program_name",
                          expected_attach_type=bpfsys.BPF_TRACE_RAW_TP, attach_btf_id=4242,
                          attach_btf_obj_fd=9)
    assert fd == 7 and len(fake.calls) == 1
    attr = _load_attr(fake.calls[0][1])
    assert (attr.prog_type, attr.insn_cnt, attr.expected_attach_type, attr.attach_btf_id,
            attr.attach_btf_obj_fd) == (26, 2, 23, 4242, 9)
    assert attr.prog_name == b"a_very_long_pro" and attr.log_level == 0
    assert attr.kern_version == 0
    fake = kernel({bpfsys.BPF_PROG_LOAD: [8]})
    bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, NOP, name="k")
    major, minor, _ = features.kernel_version()
    assert _load_attr(fake.calls[0][1]).kern_version >> 8 == (major << 8) | minor


@pytest.mark.parametrize(("insns", "name", "message"), [
    (b"", "ok", "non-empty bytes object whose length is a multiple of 8"),
    (NOP[:7], "ok", "got bytes of 7 bytes"),
    ("nope", "ok", "got str"),
    (NOP, "bad-name", "may contain only letters, digits, '_' and '.'"),
])
def test_error_prog_load_bad_arguments(insns: Any, name: str, message: str) -> None:
    with pytest.raises(ProgramError, match=message):
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, insns, name=name)


VERIFIER_LOG = "".join(f"{i}: (b7) r{i % 9} = {i}\n" for i in range(30)) + (
    "R0 !read_ok\nprocessed 31 insns (limit 1000000)\n")


def test_error_verifier_rejection_has_the_log_tail(kernel: Callable[..., FakeBpf]) -> None:
    fake = kernel({bpfsys.BPF_PROG_LOAD: [-errno.EACCES]}, log=VERIFIER_LOG)
    with pytest.raises(ProgramError) as err:
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, NOP, name="count", what="uprobe:/x:f")
    text = str(err.value)
    assert text.startswith("uprobe:/x:f: the verifier rejected a KPROBE program (EACCES")
    assert text.endswith("R0 !read_ok\nprocessed 31 insns (limit 1000000)")
    assert "\n0: (b7)" not in text and "\n19: (b7)" not in text  # only the tail
    assert "\n20: (b7)" in text
    # first without a log, then again with level 1 and a buffer
    first, second = (_load_attr(raw) for _, raw in fake.calls)
    assert (first.log_level, first.log_size) == (0, 0)
    assert second.log_level == 1 and second.log_size == 1 << 20


def test_prog_load_log_buffer_grows_once(kernel: Callable[..., FakeBpf]) -> None:
    fake = kernel({bpfsys.BPF_PROG_LOAD: [-errno.EINVAL, -errno.ENOSPC, -errno.EINVAL]},
                  log="invalid insn\n")
    with pytest.raises(ProgramError, match="invalid insn"):
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, NOP, log_level=0)
    assert [_load_attr(raw).log_size for _, raw in fake.calls] == [0, 1 << 20, 16 << 20]


@pytest.mark.parametrize(("have", "missing"), [
    (frozenset(), "CAP_BPF"),
    (frozenset({"CAP_BPF"}), "CAP_PERFMON"),
])
def test_error_prog_load_without_privileges(kernel: Callable[..., FakeBpf],
                                            monkeypatch: pytest.MonkeyPatch,
                                            have: frozenset[str], missing: str) -> None:
    kernel({bpfsys.BPF_PROG_LOAD: [-errno.EPERM]})
    monkeypatch.setattr(features, "capabilities", lambda: have)
    with pytest.raises(HookPermissionError) as err:
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, NOP, name="p")
    assert err.value.capability == missing
    assert str(err.value) == (
        f"loading 'p' (a KPROBE program) was refused (EPERM (Operation not permitted)): this "
        f"process lacks {missing}; it needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); "
        "run as root")


@pytest.mark.parametrize("attach", [bpfsys.BPF_TRACE_FENTRY, bpfsys.BPF_TRACE_FEXIT])
def test_error_no_trampolines_is_not_supported(kernel: Callable[..., FakeBpf],
                                               attach: int) -> None:
    kernel({bpfsys.BPF_PROG_LOAD: [-errno.EPERM]})
    with pytest.raises(NotSupportedError) as err:
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_TRACING, NOP, expected_attach_type=attach,
                         attach_btf_id=1, what="fentry:vfs_read")
    assert "cannot attach BPF trampolines" in str(err.value)
    assert str(err.value).startswith("fentry:vfs_read: the kernel refused a TRACING program "
                                     "with expected attach type BPF_TRACE_F")
    assert err.value.missing.startswith("BPF trampolines")
    assert isinstance(err.value, RuntimeError)


def test_error_fentry_verifier_rejection_is_not_no_trampolines(
        kernel: Callable[..., FakeBpf]) -> None:
    """EACCES with a verifier log: the program is wrong (an argument the function has
    not), not the kernel without trampolines (whose EPERM comes without a log)."""
    kernel({bpfsys.BPF_PROG_LOAD: [-errno.EACCES]},
           log="func 'do_sys_openat2' doesn't have 6-th argument\n"
               "invalid bpf_context access off=40 size=8\n")
    with pytest.raises(ProgramError) as err:
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_TRACING, NOP,
                         expected_attach_type=bpfsys.BPF_TRACE_FENTRY, attach_btf_id=1,
                         what="fentry:do_sys_openat2")
    assert str(err.value).startswith("fentry:do_sys_openat2: the verifier rejected a TRACING "
                                     "program with expected attach type BPF_TRACE_FENTRY "
                                     "(EACCES")
    assert str(err.value).endswith("invalid bpf_context access off=40 size=8")


def test_error_lsm_program_enotsupp(kernel: Callable[..., FakeBpf]) -> None:
    kernel({bpfsys.BPF_PROG_LOAD: [-bpfsys.ENOTSUPP]})
    with pytest.raises(NotSupportedError, match=r"ENOTSUPP \(524, not supported\)"):
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_LSM, NOP, expected_attach_type=bpfsys.BPF_LSM_MAC)


def test_error_privileged_eperm_without_log(kernel: Callable[..., FakeBpf]) -> None:
    kernel({bpfsys.BPF_PROG_LOAD: [-errno.EPERM]})
    with pytest.raises(HookPermissionError, match="lockdown"):
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, NOP)


def test_error_unknown_attach_type_is_not_supported(kernel: Callable[..., FakeBpf]) -> None:
    kernel({bpfsys.BPF_PROG_LOAD: [-errno.EINVAL]})
    with pytest.raises(NotSupportedError) as err:
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_TRACING, NOP,
                         expected_attach_type=bpfsys.BPF_TRACE_RAW_TP)
    assert "does not know tp_btf programs (kernel 5.5 or later)" in str(err.value)
    assert err.value.missing == "tp_btf programs"
    with pytest.raises(ProgramError, match="EINVAL and no verifier log"):
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_SOCKET_FILTER, NOP)


def test_error_e2big(kernel: Callable[..., FakeBpf]) -> None:
    kernel({bpfsys.BPF_PROG_LOAD: [-errno.E2BIG]})
    with pytest.raises(ProgramError, match="either its 2 instructions are more than"):
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, NOP)
    kernel({bpfsys.BPF_PROG_LOAD: [-errno.E2BIG]},
           log="BPF program is too large. Processed 1000001 insn\n")
    with pytest.raises(ProgramError, match=r"(?s)too large or too complex.*Processed 1000001"):
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, NOP)


def test_prog_load_errors_are_ebpfhooks_errors() -> None:
    for err in (ProgramError("x"), NotSupportedError("x"),
                HookPermissionError("x", capability="CAP_BPF")):
        assert isinstance(err, EbpfHooksError)


# --------------------------------------------------------------------------- links


def _link_attr(raw: bytes) -> bpfsys.LinkCreateAttr:
    return bpfsys.LinkCreateAttr.from_buffer_copy(raw)


def test_link_create_fills_bpf_attr(kernel: Callable[..., FakeBpf]) -> None:
    fake = kernel({bpfsys.BPF_LINK_CREATE: [11]})
    assert bpfsys.link_create(3, 5, bpfsys.BPF_PERF_EVENT, cookie=0xDEAD) == 11
    bpfsys.link_create(3, 0, bpfsys.BPF_TRACE_FENTRY, target_btf_id=77, cookie=9)
    bpfsys.link_create(3, -1, bpfsys.BPF_XDP, flags=2, target_btf_id=5)
    perf, tracing, xdp = (_link_attr(raw) for _, raw in fake.calls)
    assert (perf.prog_fd, perf.target_fd, perf.attach_type) == (3, 5, 41)
    assert perf.u.perf_event.bpf_cookie == 0xDEAD
    assert (tracing.u.tracing.target_btf_id, tracing.u.tracing.cookie) == (77, 9)
    assert (xdp.target_fd, xdp.flags, xdp.u.target_btf_id) == (0xFFFFFFFF, 2, 5)


def test_error_link_create(kernel: Callable[..., FakeBpf]) -> None:
    kernel({bpfsys.BPF_LINK_CREATE: [-errno.EINVAL]})
    with pytest.raises(AttachError) as err:
        bpfsys.link_create(3, 5, bpfsys.BPF_PERF_EVENT)
    assert err.value.errno == errno.EINVAL and "BPF_PERF_EVENT" in str(err.value)
    kernel({bpfsys.BPF_LINK_CREATE: [-errno.EOPNOTSUPP]})
    with pytest.raises(NotSupportedError):
        bpfsys.link_create(3, 5, bpfsys.BPF_PERF_EVENT)
    kernel({bpfsys.BPF_LINK_CREATE: [-errno.EMFILE]})
    with pytest.raises(AttachError, match="ulimit -n"):
        bpfsys.link_create(3, 5, bpfsys.BPF_XDP)


def test_raw_tracepoint_open(kernel: Callable[..., FakeBpf]) -> None:
    fake = kernel({bpfsys.BPF_RAW_TRACEPOINT_OPEN: [12]})
    assert bpfsys.raw_tracepoint_open(4, None) == 12
    assert bpfsys.raw_tracepoint_open(4, "sched_switch") == 12
    none, named = (bpfsys.RawTracepointOpenAttr.from_buffer_copy(raw) for _, raw in fake.calls)
    assert (none.name, none.prog_fd) == (0, 4) and named.name != 0


def test_error_raw_tracepoint_open(kernel: Callable[..., FakeBpf]) -> None:
    kernel({bpfsys.BPF_RAW_TRACEPOINT_OPEN: [-errno.ENOENT]})
    with pytest.raises(AttachError, match="no raw tracepoint 'nope' \\(ENOENT\\)"):
        bpfsys.raw_tracepoint_open(4, "nope")
    kernel({bpfsys.BPF_RAW_TRACEPOINT_OPEN: [-errno.EPERM]})
    with pytest.raises(NotSupportedError, match="trampolines"):
        bpfsys.raw_tracepoint_open(4, None)
    with pytest.raises(SpecError, match="without NUL bytes"):
        bpfsys.raw_tracepoint_open(4, "a\0b")


# --------------------------------------------------------------------------- uprobe_multi


def _u64s(addr: int, n: int) -> list[int]:
    return list((ctypes.c_uint64 * n).from_address(addr)) if addr else []


def test_uprobe_multi_fills_bpf_attr(kernel: Callable[..., FakeBpf], tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.write_bytes(b"\x7fELF")
    seen: list[dict[str, Any]] = []

    def fake(cmd: int, attr: Any) -> int:  # read the arrays while they are alive
        um = attr.u.uprobe_multi
        seen.append({"cmd": cmd, "attach": attr.attach_type, "cnt": um.cnt,
                     "flags": um.flags, "pid": um.pid,
                     "path": ctypes.string_at(um.path), "offsets": _u64s(um.offsets, um.cnt),
                     "refs": _u64s(um.ref_ctr_offsets, um.cnt),
                     "cookies": _u64s(um.cookies, um.cnt)})
        return 21

    kernel({})
    bpf_mod._sys_bpf = fake  # type: ignore[assignment]  # restored by monkeypatch
    assert bpfsys.uprobe_multi(5, target, [0x10, 0x20, 0x30], cookies=[1, 2, 3],
                               ref_ctr_offsets=[0, 0x400, 0], retprobe=True, pid=42) == 21
    assert bpfsys.uprobe_multi(5, str(target), [0x10]) == 21
    assert seen == [
        {"cmd": 28, "attach": 48, "cnt": 3, "flags": 1, "pid": 42,
         "path": str(target).encode(), "offsets": [0x10, 0x20, 0x30], "refs": [0, 0x400, 0],
         "cookies": [1, 2, 3]},
        {"cmd": 28, "attach": 48, "cnt": 1, "flags": 0, "pid": 0,
         "path": str(target).encode(), "offsets": [0x10], "refs": [], "cookies": []}]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"offsets": []}, "no offsets given"),
    ({"offsets": [1, 2], "cookies": [1]}, "1 cookies for 2 offsets"),
    ({"offsets": [1], "ref_ctr_offsets": [1, 2]}, "2 ref_ctr_offsets for 1 offsets"),
    ({"offsets": [-1]}, r"offsets\[0\] = -1 is not an int in \[0, 2\*\*64\)"),
    ({"offsets": [True]}, r"offsets\[0\] = True"),
    ({"offsets": [1], "cookies": [1 << 64]}, r"cookies\[0\]"),
    ({"offsets": [1], "pid": 0}, "pid must be a positive int, got 0"),
])
def test_error_uprobe_multi_arguments(tmp_path: Path, kwargs: dict[str, Any],
                                      message: str) -> None:
    target = tmp_path / "bin"
    target.write_bytes(b"x")
    with pytest.raises(SpecError, match=message):
        bpfsys.uprobe_multi(5, target, **kwargs)


def test_error_uprobe_multi_path(tmp_path: Path) -> None:
    with pytest.raises(BinaryNotFoundError, match="not found in the file system"):
        bpfsys.uprobe_multi(5, tmp_path / "missing", [1])
    with pytest.raises(BinaryNotFoundError, match="is not a regular file"):
        bpfsys.uprobe_multi(5, tmp_path, [1])


def _feature(status: FeatureStatus) -> Callable[[], Feature]:
    return lambda: Feature("uprobe_multi", status, "kernel 6.1.0 (test)", "fix")


@pytest.mark.parametrize(("code", "status", "error", "message"), [
    (errno.EINVAL, FeatureStatus.NO, NotSupportedError, "has no uprobe_multi links"),
    (errno.EINVAL, FeatureStatus.YES, AttachError, "expected attach type "
                                                   "BPF_TRACE_UPROBE_MULTI"),
    (errno.EOPNOTSUPP, FeatureStatus.YES, NotSupportedError, "CONFIG_UPROBES"),
    (errno.ESRCH, FeatureStatus.YES, ProcessNotFoundError, "process '42' not found"),
    (errno.EPERM, FeatureStatus.YES, HookPermissionError, "lacks CAP_SYS_ADMIN"),
    (errno.E2BIG, FeatureStatus.YES, AttachError, "too many offsets"),
    (errno.ENOENT, FeatureStatus.YES, BinaryNotFoundError, "could not open it"),
    (errno.EBADF, FeatureStatus.YES, AttachError, "not a loaded BPF program"),
    (errno.EMFILE, FeatureStatus.YES, AttachError, "ulimit -n"),
])
def test_error_uprobe_multi_kernel(kernel: Callable[..., FakeBpf],
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: int,
                                   status: FeatureStatus, error: type[Exception],
                                   message: str) -> None:
    target = tmp_path / "bin"
    target.write_bytes(b"x")
    kernel({bpfsys.BPF_LINK_CREATE: [-code]})
    monkeypatch.setattr(features, "uprobe_multi", _feature(status))
    if code == errno.EPERM:
        monkeypatch.setattr(features, "capabilities", lambda: frozenset({"CAP_BPF"}))
        message = "lacks CAP_PERFMON"
    with pytest.raises(error, match=message):
        bpfsys.uprobe_multi(5, target, [1], pid=42)


# --------------------------------------------------------------------------- perf-event uprobes


class FakePerf:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, perf: int = 30,
                 ioctl: int = 0, shift: int | None = 32) -> None:
        self.attrs: list[tuple[bpfsys.PerfEventAttr, int, int, bytes]] = []
        self.ioctls: list[tuple[int, int, int]] = []
        self.closed: list[int] = []
        monkeypatch.setattr(perf_mod, "_uprobe_pmu", lambda: perf_mod._UprobePmu(9, 0, shift))

        def open_(attr: bpfsys.PerfEventAttr, pid: int, cpu: int) -> int:
            self.attrs.append((bpfsys.PerfEventAttr.from_buffer_copy(attr), pid, cpu,
                               ctypes.string_at(attr.config1)))
            return perf

        def ioctl_(fd: int, request: int, arg: int) -> int:
            self.ioctls.append((fd, request, arg))
            return ioctl

        monkeypatch.setattr(perf_mod, "_perf_event_open", open_)
        monkeypatch.setattr(perf_mod, "_ioctl", ioctl_)
        monkeypatch.setattr(perf_mod.os, "close", self.closed.append)


def test_perf_uprobe_without_cookie(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.write_bytes(b"x")
    fake = FakePerf(monkeypatch)
    probe = bpfsys.perf_uprobe(5, target, 0x1234, retprobe=True, ref_ctr_offset=0x88)
    attr, pid, cpu, path = fake.attrs[0]
    assert (attr.type, attr.config, attr.config2, pid, cpu) == (9, 1 | 0x88 << 32, 0x1234,
                                                                -1, 0)
    assert path == str(target).encode() and attr.size == 112
    assert fake.ioctls == [(30, perf_mod._PERF_EVENT_IOC_SET_BPF, 5),
                           (30, perf_mod._PERF_EVENT_IOC_ENABLE, 0)]
    assert (probe.perf_fd, probe.link_fd) == (30, None)
    with probe:
        pass
    probe.close()
    assert fake.closed == [30]


def test_perf_uprobe_with_cookie_uses_a_perf_event_link(kernel: Callable[..., FakeBpf],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.write_bytes(b"x")
    bpf = kernel({bpfsys.BPF_LINK_CREATE: [31]})
    fake = FakePerf(monkeypatch)
    probe = bpfsys.perf_uprobe(5, target, 0x10, pid=77, cookie=123)
    assert fake.attrs[0][1:3] == (77, -1)
    link = _link_attr(bpf.calls[0][1])
    assert (link.prog_fd, link.target_fd, link.attach_type) == (5, 30, bpfsys.BPF_PERF_EVENT)
    assert link.u.perf_event.bpf_cookie == 123
    assert fake.ioctls == [(30, perf_mod._PERF_EVENT_IOC_ENABLE, 0)]
    probe.close()
    assert fake.closed == [31, 30]


def test_error_perf_uprobe_cookie_needs_5_15(kernel: Callable[..., FakeBpf],
                                             monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.write_bytes(b"x")
    kernel({bpfsys.BPF_LINK_CREATE: [-errno.EINVAL]})
    fake = FakePerf(monkeypatch)
    monkeypatch.setattr(features, "perf_link",
                        lambda: Feature("perf_link", FeatureStatus.NO, "kernel 5.10", "x"))
    with pytest.raises(NotSupportedError, match=r"needs BPF_PERF_EVENT links \(kernel 5\.15\)"):
        bpfsys.perf_uprobe(5, target, 0x10, cookie=1)
    assert fake.closed == [30]  # the perf event is not left open


def test_error_perf_uprobe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "bin"
    target.write_bytes(b"x")
    FakePerf(monkeypatch, shift=None)
    with pytest.raises(NotSupportedError, match=r"USDT semaphores need kernel 4\.20"):
        bpfsys.perf_uprobe(5, target, 0x10, ref_ctr_offset=8)
    with pytest.raises(SpecError, match="offset -1 is not an int"):
        bpfsys.perf_uprobe(5, target, -1)
    fake = FakePerf(monkeypatch, perf=-errno.ESRCH)
    with pytest.raises(ProcessNotFoundError):
        bpfsys.perf_uprobe(5, target, 0x10, pid=99)
    fake = FakePerf(monkeypatch, ioctl=-errno.EINVAL)
    with pytest.raises(AttachError, match="EINVAL"):
        bpfsys.perf_uprobe(5, target, 0x10)
    assert fake.closed == [30]
    monkeypatch.setattr(perf_mod, "_uprobe_pmu", lambda: None)
    with pytest.raises(NotSupportedError, match="no uprobe PMU"):
        bpfsys.perf_uprobe(5, target, 0x10)


def test_uprobe_opener_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bcc adapter's opener: -1 on any failure, never an exception."""
    monkeypatch.setattr(perf_mod, "_OPENER", [])
    FakePerf(monkeypatch, shift=None)
    opener = bpfsys.uprobe_opener()
    assert opener is not None and bpfsys.uprobe_opener() is opener  # made once
    assert opener(5, False, b"/bin/true", 0x10, -1) == 30
    assert opener(5, False, b"/bin/true", 0x10, -1, 8) == -1  # no ref_ctr_offset here
    FakePerf(monkeypatch, ioctl=-errno.EINVAL)
    assert opener(5, True, b"/bin/true", 0x10, 3) == -1


@pytest.mark.parametrize(("text", "field"), [
    ("config:0\n", ("config", 0, 0)), ("config:32-63", ("config", 32, 63)),
    ("config1:0-63", ("config1", 0, 63)), ("bogus", None),
])
def test_config_field(text: str, field: tuple[str, int, int] | None) -> None:
    assert perf_mod._config_field(text) == field


# --------------------------------------------------------------------------- BTF objects


def test_error_btf_obj_fd(kernel: Callable[..., FakeBpf]) -> None:
    kernel({bpfsys.BPF_BTF_GET_NEXT_ID: [-errno.ENOENT]})
    with pytest.raises(ProgramError, match=r"no kernel BTF object named 'veth'.*objects: none"):
        bpfsys.btf_obj_fd("veth")
    kernel({bpfsys.BPF_BTF_GET_NEXT_ID: [-errno.EPERM]})
    with pytest.raises(HookPermissionError):
        bpfsys.btf_obj_fd("veth")
    kernel({bpfsys.BPF_BTF_GET_NEXT_ID: [-errno.EINVAL]})
    with pytest.raises(NotSupportedError, match=r"5\.11"):
        bpfsys.btf_obj_fd("veth")


def test_link_create_fn_syscall_path(kernel: Callable[..., FakeBpf],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libbpf.so.1 the XDP adapter's bpf_link_create is the raw syscall."""
    def no_lib(name: str, **kw: Any) -> Any:
        raise OSError(name)

    fake = kernel({bpfsys.BPF_LINK_CREATE: [-errno.EBUSY]})
    monkeypatch.setattr(bpf_mod.ctypes, "CDLL", no_lib)
    assert bpfsys.link_create_fn()(3, 2, bpfsys.BPF_XDP, 2) == -errno.EBUSY
    attr = _link_attr(fake.calls[0][1])
    assert (attr.prog_fd, attr.target_fd, attr.attach_type, attr.flags) == (3, 2, 37, 2)
