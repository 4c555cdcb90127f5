"""Raw tracepoint names from BTF (``btf_trace_*``): fixture files, the running kernel
cross-checked with ``bpftool btf dump``, and the kallsyms-only names refused live."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ebpfhooks import discover
from ebpfhooks.errors import BtfFormatError, TracepointNotFoundError
from ebpfhooks.hooks.rawtracepoint import RawTracepoint
from ebpfhooks.kernel import rawtp
from ebpfhooks.kernel.btf import (
    VMLINUX_BTF,
    parse_btf,
    raw_tracepoint_names,
    read_string_section,
    string_section,
)

needs_btf = pytest.mark.skipif(not VMLINUX_BTF.exists(), reason="no /sys/kernel/btf/vmlinux")


def _btf_with_strings(*names: str) -> bytes:
    """A BTF blob with no types and these strings (what a module's split BTF may look like)."""
    strings = b"\0" + b"".join(n.encode() + b"\0" for n in names)
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, len(strings)) + strings


def _traceiters(module: str | None = None) -> set[str]:
    out = set()
    for line in Path("/proc/kallsyms").read_text().splitlines():
        parts = line.split()
        if parts[2].startswith("__traceiter_"):
            mod = parts[3][1:-1] if len(parts) > 3 else None
            if mod == module:
                out.add(parts[2][len("__traceiter_"):])
    return out


# --------------------------------------------------------------------------- fixtures


def test_names_from_a_string_section() -> None:
    strings = string_section(_btf_with_strings(
        "btf_trace_sched_switch", "int", "btf_trace_x_tp", "__bpf_trace_btf_trace_no",
        "btf_trace_", "my_btf_trace_no"))
    assert raw_tracepoint_names(strings) == ["sched_switch", "x_tp"]
    # adjacent strings share the NUL between them
    assert raw_tracepoint_names(b"\0btf_trace_a\0btf_trace_b\0") == ["a", "b"]


def test_read_string_section_reads_only_what_it_needs(tmp_path: Path) -> None:
    blob = _btf_with_strings("btf_trace_one", "other")
    path = tmp_path / "vmlinux"
    path.write_bytes(blob)
    assert read_string_section(path) == string_section(blob) == b"\0btf_trace_one\0other\0"
    path.write_bytes(blob[:-3])
    with pytest.raises(BtfFormatError, match="runs past the end"):
        read_string_section(path)
    path.write_bytes(b"\0" * 10)
    with pytest.raises(BtfFormatError, match="shorter than the 24-byte header"):
        read_string_section(path)


def test_raw_tracepoints_vmlinux_then_modules(tmp_path: Path) -> None:
    (tmp_path / "vmlinux").write_bytes(_btf_with_strings("btf_trace_sched_switch", "int"))
    (tmp_path / "veth").write_bytes(_btf_with_strings("btf_trace_veth_thing"))
    (tmp_path / "empty").write_bytes(_btf_with_strings("nothing"))
    got = rawtp.raw_tracepoints(reload=True, btf_dir=tmp_path)
    assert got == [(None, "sched_switch"), ("veth", "veth_thing")]
    assert rawtp.homes("veth_thing", btf_dir=tmp_path) == ("veth",)
    assert rawtp.homes("sched_switch", btf_dir=tmp_path) == (None,)
    assert rawtp.homes("nope", btf_dir=tmp_path) == ()
    assert rawtp.raw_tracepoints(btf_dir=tmp_path / "missing") is None
    assert rawtp.raw_tracepoints(btf_dir=str(tmp_path)) == got  # a str does as well
    assert Path("/sys/kernel/btf") == rawtp.BTF_DIR  # a Path, made on first use
    (tmp_path / "vmlinux").write_bytes(b"garbage, not BTF, long enough to have a header")
    with pytest.raises(BtfFormatError, match="bad magic"):
        rawtp.raw_tracepoints(reload=True, btf_dir=tmp_path)
    rawtp.clear_cache()


def test_raw_tracepoint_args_from_the_typedef() -> None:
    # int; void (void *, int, char *)-like proto; pointer; typedef btf_trace_ev
    strings = bytearray(b"\0")

    def s(text: str) -> int:
        off = len(strings)
        strings.extend(text.encode() + b"\0")
        return off

    types = b"".join([
        struct.pack("<IIII", s("int"), 1 << 24, 4, (1 << 24) | 32),        # 1 int
        struct.pack("<III", 0, 2 << 24, 0),                                 # 2 void *
        struct.pack("<III", s("char"), 1 << 24, 1) + struct.pack("<I", 8),  # 3 char
        struct.pack("<III", 0, 2 << 24, 3),                                 # 4 char *
        struct.pack("<III", 0, (13 << 24) | 3, 0)
        + struct.pack("<6I", 0, 2, 0, 1, s("name"), 4),                     # 5 proto
        struct.pack("<III", 0, 2 << 24, 5),                                 # 6 ptr to 5
        struct.pack("<III", s("btf_trace_ev"), 8 << 24, 6),                 # 7 typedef
        struct.pack("<III", s("btf_trace_bad"), 8 << 24, 1),                # 8 typedef int
    ])
    blob = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                       len(strings)) + types + bytes(strings)
    btf = parse_btf(blob)
    assert btf.raw_tracepoint_args("ev") == ["int", "char * name"]
    assert btf.raw_tracepoint_args("nope") is None
    with pytest.raises(BtfFormatError, match="not a pointer to a function prototype"):
        btf.raw_tracepoint_args("bad")
    assert raw_tracepoint_names(string_section(blob)) == ["ev", "bad"]


# --------------------------------------------------------------------------- this kernel


@needs_btf
@pytest.mark.live
def test_vmlinux_names_equal_bpftool(live: None) -> None:
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.fail("bpftool is needed for this cross-check (scripts/setup.sh installs it)")
    dump = subprocess.run([bpftool, "btf", "dump", "file", str(VMLINUX_BTF)],
                          capture_output=True, text=True, check=True, timeout=120).stdout
    expected = set(re.findall(r"^\[\d+\] TYPEDEF 'btf_trace_(\w+)'", dump, re.M))
    got = rawtp.raw_tracepoints(reload=True)
    assert got is not None
    assert {n for m, n in got if m is None} == expected
    assert len(expected) > 100
    listed = discover.list_hooks("rawtracepoint:*")
    assert {h.split(":", 1)[1] for h in listed if h.count(":") == 1} == expected
    for module, name in got:
        if module is not None:
            assert f"rawtracepoint:{module}:{name}" in listed
            assert name in _traceiters(module)


@needs_btf
@pytest.mark.live
def test_kallsyms_only_tracepoints_do_not_attach(live: None, bpf: Any) -> None:
    btf_names = {n for m, n in rawtp.raw_tracepoints(reload=True) or [] if m is None}
    iters = _traceiters()
    assert btf_names <= iters, "a btf_trace_ type without a __traceiter_ symbol"
    extra = sorted(iters - btf_names)  # 6.18: ['sched_set_state_tp']; 6.1: []
    for name in extra[:3]:
        with pytest.raises(Exception, match="raw tracepoint"):
            bpf.attach_raw_tracepoint(tp=name, fn_name=b"on_raw_sys_enter")
        with pytest.raises(TracepointNotFoundError) as info:
            RawTracepoint(name).resolve()
        assert "does not export it to BPF" in str(info.value)
        assert list(info.value.candidates) == []
    # and a listed one does attach
    bpf.attach_raw_tracepoint(tp="sys_enter", fn_name=b"on_raw_sys_enter")
    bpf.detach_raw_tracepoint(tp="sys_enter")


@needs_btf
@pytest.mark.live
def test_info_shows_btf_args(live: None) -> None:
    got = discover.info("rawtracepoint:sched_switch")
    args = got.facts["args"]
    assert args is not None and len(args) == 4
    assert args[1] == args[2] == "struct task_struct *"
    assert "        ctx->args[1]: struct task_struct *" in got.text
    assert discover.info("rawtracepoint:sys_enter").facts["args"] == [
        "struct pt_regs *", "long int"]


@pytest.mark.live
def test_without_btf_kallsyms_is_the_source(live: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rawtp, "raw_tracepoints", lambda *a, **k: None)
    monkeypatch.setattr(rawtp, "homes", lambda *a, **k: None)
    listing = discover.search("rawtracepoint:sched_sw*")
    assert "rawtracepoint:sched_switch" in listing.hooks
    assert "__traceiter_" in listing.sources["rawtracepoint"]
    assert RawTracepoint("sched_switch").resolve().module is None
    with pytest.raises(TracepointNotFoundError, match="/proc/kallsyms"):
        RawTracepoint("sched_swich").resolve()


def test_resolve_module_mismatch_names_the_right_spec() -> None:
    if rawtp.raw_tracepoints() is None:
        pytest.skip("no BTF on this kernel")
    with pytest.raises(TracepointNotFoundError) as info:
        RawTracepoint("sched_switch", module="veth").resolve()
    assert list(info.value.candidates) == ["rawtracepoint:sched_switch"]
    assert "is in vmlinux, not in module 'veth'" in str(info.value)
