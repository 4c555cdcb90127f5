"""BTF parser: fixture bytes built here, the running kernel's vmlinux BTF cross-checked
with ``bpftool btf dump ... format raw``, mutated bytes (hypothesis) and ``info()``."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebpfhooks import discover
from ebpfhooks.errors import BtfFormatError, EbpfHooksError
from ebpfhooks.kernel.btf import VMLINUX_BTF, Btf, parse_btf, vmlinux_btf

# --------------------------------------------------------------------------- fixture


class _Builder:
    """Little-endian BTF bytes, one record at a time (type ids from 1)."""

    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self.types = bytearray()
        self.count = 0

    def s(self, text: str) -> int:
        if not text:
            return 0
        off = len(self.strings)
        self.strings += text.encode() + b"\0"
        return off

    def add(self, name: str, kind: int, vlen: int, ref: int, *extra: int,
            flag: int = 0) -> int:
        self.types += struct.pack("<III", self.s(name), (flag << 31) | (kind << 24) | vlen, ref)
        self.types += struct.pack(f"<{len(extra)}I", *extra)
        self.count += 1
        return self.count

    def bytes(self, order: str = "<") -> bytes:
        types = bytes(self.types)
        if order == ">":
            types = struct.pack(f">{len(types) // 4}I", *struct.unpack(f"<{len(types) // 4}I",
                                                                       types))
        hdr = struct.pack(order + "HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                          len(self.strings))
        return hdr + bytes(types) + bytes(self.strings)


def _fixture() -> _Builder:
    b = _Builder()
    int_ = b.add("int", 1, 0, 4, (1 << 24) | 32)                      # 1
    char = b.add("char", 1, 0, 1, 8)                                   # 2
    cchar = b.add("", 10, 0, char)                                     # 3 const char
    pcchar = b.add("", 2, 0, cchar)                                    # 4 const char *
    how = b.add("open_how", 4, 2, 16, b.s("flags"), int_, 0, b.s("mode"), int_, 64)  # 5
    phow = b.add("", 2, 0, how)                                        # 6
    long_ = b.add("long", 1, 0, 8, (1 << 24) | 64)                     # 7
    proto = b.add("", 13, 3, long_, b.s("dfd"), int_, b.s("filename"), pcchar,
                  b.s("how"), phow)                                    # 8
    b.add("do_sys_openat2", 12, 1, proto)                              # 9 FUNC
    b.add("sz", 8, 0, long_)                                           # 10 typedef
    b.add("color", 6, 2, 4, b.s("RED"), 0, b.s("BLUE"), 1)             # 11 enum
    arr = b.add("", 3, 0, 0, char, int_, 16)                           # 12 char[16]
    b.add("", 17, 0, 9, 0xFFFFFFFF)                                    # 13 decl tag
    cb = b.add("", 13, 1, 0, 0, int_)                                  # 14 void (int)
    pcb = b.add("", 2, 0, cb)                                          # 15 ptr to it
    fwd = b.add("sock", 7, 0, 0)                                       # 16 fwd struct
    pfwd = b.add("", 2, 0, fwd)                                        # 17
    ppchar = b.add("", 2, 0, b.add("", 2, 0, char))                    # 18 char *, 19 **
    cptr = b.add("", 10, 0, ppchar)                                    # 20 char ** const
    b.add("", 15, 1, 8, 0, 0, 4)                                       # 21 datasec
    b.add("v", 14, 0, int_, 1)                                         # 22 var
    b.add("e64", 19, 1, 8, b.s("X"), 1, 0)                             # 23 enum64
    b.add("", 16, 0, 8)                                                # 24 float (anon)
    tag = b.add("user", 18, 0, char)                                   # 25 type tag
    ptag = b.add("", 2, 0, tag)                                        # 26 char __user *
    proto2 = b.add("", 13, 6, 0, b.s("cb"), pcb, b.s("sk"), pfwd, b.s("argv"), cptr,
                   b.s("buf"), ptag, b.s("name"), arr, 0, 0)          # 27 variadic
    b.add("many", 12, 1, proto2)                                       # 28 FUNC
    b.add("none", 12, 1, b.add("", 13, 0, 0))                          # 30 FUNC, 29 proto
    return b


FIXTURE = _fixture().bytes()


def test_fixture_signatures() -> None:
    btf = parse_btf(FIXTURE)
    assert len(btf) == 30
    assert btf.function_signature("do_sys_openat2") == (
        "long do_sys_openat2(int dfd, const char * filename, struct open_how * how)")
    assert btf.function_signature("many") == (
        "void many(void (*cb)(int), struct sock * sk, char ** const argv, char * buf, "
        "char name[16], ...)")
    assert btf.function_signature("none") == "void none(void)"
    assert btf.function_signature("nope") is None
    assert btf.function_return_type("do_sys_openat2") == "long"
    assert btf.function_return_type("none") == "void"
    assert btf.function_return_type("nope") is None
    assert btf.function_arity("do_sys_openat2") == (3, False)
    assert btf.function_arity("many") == (5, True) and btf.function_arity("none") == (0, False)
    assert btf.function_arity("nope") is None
    assert btf.function_params("do_sys_openat2") == [
        ("int", "dfd"), ("const char *", "filename"), ("struct open_how *", "how")]
    assert btf.type_name(10) == "sz" and btf.type_name(11) == "enum color"
    assert btf.name(0) == "" and btf.kind(0) == 0 and btf.kind(9) == 12


def test_fixture_big_endian_same_result() -> None:
    big = parse_btf(_fixture().bytes(">"))
    assert big.function_signature("many") == parse_btf(FIXTURE).function_signature("many")


@pytest.mark.parametrize(("data", "message"), [
    (b"", "shorter than the 24-byte header"),
    (b"\0" * 24, "bad magic"),
    (FIXTURE[:2] + b"\x02" + FIXTURE[3:], "version 2"),
    (FIXTURE[:-1], "runs past the end"),
    (FIXTURE[:-1] + b"x", "does not end with a NUL"),
])
def test_malformed_header(data: bytes, message: str) -> None:
    with pytest.raises(BtfFormatError, match=message) as err:
        parse_btf(data)
    assert isinstance(err.value, ValueError) and isinstance(err.value, EbpfHooksError)


def test_malformed_types() -> None:
    b = _Builder()
    b.add("x", 25, 0, 0)
    with pytest.raises(BtfFormatError, match="unknown kind 25"):
        parse_btf(b.bytes())
    b = _Builder()
    loop = b.add("", 2, 0, 1)  # a pointer to itself
    b.add("f", 12, 0, b.add("", 13, 1, 0, 0, loop))
    with pytest.raises(BtfFormatError, match="cycle"):
        parse_btf(b.bytes()).function_signature("f")
    b = _Builder()
    b.add("f", 12, 0, 7)
    with pytest.raises(BtfFormatError, match="type id 7 does not exist"):
        parse_btf(b.bytes()).function_signature("f")


def _mutated() -> st.SearchStrategy[bytes]:
    flips = st.lists(st.tuples(st.integers(0, len(FIXTURE) - 1), st.integers(0, 255)),
                     max_size=6)
    return st.one_of(
        st.integers(0, len(FIXTURE)).map(lambda n: FIXTURE[:n]),
        flips.map(lambda fl: bytes(_apply(FIXTURE, fl))),
        st.binary(max_size=200).map(lambda tail: FIXTURE[:24] + tail),
    )


def _apply(data: bytes, flips: list[tuple[int, int]]) -> bytearray:
    out = bytearray(data)
    for at, value in flips:
        out[at] = value
    return out


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_bytes_give_a_result_or_btf_format_error(data: bytes) -> None:
    try:
        btf = parse_btf(data)
        for name in ("do_sys_openat2", "many", "none", "sz"):
            sig = btf.function_signature(name)
            assert sig is None or isinstance(sig, str)
        for tid in range(len(btf) + 1):
            btf.type_name(tid)
    except BtfFormatError:
        pass


# --------------------------------------------------------------------------- this kernel

needs_btf = pytest.mark.skipif(not VMLINUX_BTF.exists(), reason="no /sys/kernel/btf/vmlinux")


@lru_cache(maxsize=1)
def _bpftool_raw() -> str:
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.fail("bpftool is needed to cross-check the BTF parser (scripts/setup.sh)")
    out = subprocess.run([bpftool, "btf", "dump", "file", str(VMLINUX_BTF), "format", "raw"],
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def _bpftool_func(name: str) -> tuple[int, list[tuple[str, int]]]:
    """(ret type id, [(param name, type id)]) of FUNC ``name`` in bpftool's raw dump."""
    raw = _bpftool_raw()
    m = re.search(rf"^\[\d+\] FUNC '{re.escape(name)}' type_id=(\d+)", raw, re.M)
    assert m, name
    proto = re.search(rf"^\[{m.group(1)}\] FUNC_PROTO '\(anon\)' ret_type_id=(\d+) "
                      r"vlen=(\d+)\n((?:\t.*\n)*)", raw, re.M)
    assert proto, name
    params = re.findall(r"^\t'([^']*)' type_id=(\d+)", proto.group(3), re.M)
    assert len(params) == int(proto.group(2))
    return int(proto.group(1)), [("" if p == "(anon)" else p, int(t)) for p, t in params]


@needs_btf
def test_vmlinux_known_functions() -> None:
    btf = vmlinux_btf()
    assert isinstance(btf, Btf) and vmlinux_btf() is btf  # read once
    params = btf.function_params("do_sys_openat2")
    assert params is not None and [n for _, n in params] == ["dfd", "filename", "how"]
    assert params[2][0] == "struct open_how *" and params[1][0] == "const char *"
    sig = btf.function_signature("vfs_read")
    assert sig is not None and sig.startswith(("ssize_t vfs_read(", "long vfs_read("))
    assert len(btf.function_params("vfs_read") or []) == 4
    assert btf.function_signature("no_such_function_ebpfhooks") is None


@needs_btf
@pytest.mark.parametrize("name", ["do_sys_openat2", "vfs_read", "tcp_connect", "_printk"])
def test_vmlinux_matches_bpftool(name: str) -> None:
    btf = vmlinux_btf()
    assert btf is not None
    ret, params = _bpftool_func(name)
    last = int(re.findall(r"^\[(\d+)\]", _bpftool_raw(), re.M)[-1])
    assert len(btf) == last
    got = btf.function_params(name)
    assert got is not None
    assert [n for _, n in got] == [p for p, _ in params]
    for (ctype, _), (_, tid) in zip(got, params, strict=True):
        assert ctype == (btf.type_name(tid) if tid else "...")
    sig = btf.function_signature(name)
    assert sig is not None and sig.startswith(btf.type_name(ret).rstrip("*").rstrip())
    # the FUNC_PROTO's return type names what bpftool names
    named = re.search(rf"^\[{ret}\] \w+ '([^']*)'", _bpftool_raw(), re.M)
    if ret and named and named.group(1) != "(anon)":
        assert btf.name(ret) == named.group(1)


def test_vmlinux_btf_missing_file(tmp_path: Path) -> None:
    assert vmlinux_btf(tmp_path / "nope") is None
    bad = tmp_path / "bad"
    bad.write_bytes(b"not btf at all, no, not at all")
    with pytest.raises(BtfFormatError):
        vmlinux_btf(bad)


@needs_btf
def test_info_kprobe_shows_btf_signature() -> None:
    got = discover.info("kprobe:do_sys_openat2")
    sig = got.facts["btf_signature"]
    assert sig == vmlinux_btf().function_signature("do_sys_openat2")  # type: ignore[union-attr]
    assert f"    signature: {sig}" in got.text
    ret = discover.info("kretprobe:vfs_read").facts["btf_signature"]
    assert ret is not None and " vfs_read(struct file * file," in ret
    # the syscall alias is looked up by the symbol it resolves to
    alias = discover.info("kprobe:sys_openat").facts["btf_signature"]
    assert alias is None or "_sys_openat(" in alias


def test_info_kprobe_without_btf(monkeypatch: pytest.MonkeyPatch) -> None:
    import ebpfhooks.kernel.btf as btf_module

    monkeypatch.setattr(btf_module, "vmlinux_btf", lambda: None)
    got = discover.info("kprobe:do_sys_openat2")
    assert got.facts["btf_signature"] is None
    assert any(line.startswith("    signature: unknown") for line in got.text)


# --------------------------------------------------------------------------- type ids, split BTF


class _SplitBuilder(_Builder):
    """Split BTF bytes on top of ``base``: strings and type ids continue after the base's."""

    def __init__(self, base: _Builder) -> None:
        super().__init__()
        self.strings = bytearray()
        self.str0 = len(base.strings)
        self.count = base.count
        self.base = base

    def s(self, text: str) -> int:
        if not text:
            return 0
        found = self.base.strings.find(b"\0" + text.encode() + b"\0")
        if found >= 0:  # pahole reuses the base's strings
            return found + 1
        off = self.str0 + len(self.strings)
        self.strings += text.encode() + b"\0"
        return off


def _split_fixture() -> tuple[bytes, bytes]:
    base = _fixture()
    m = _SplitBuilder(base)
    proto = m.add("", 13, 2, 7, m.s("dev"), 17, m.s("len"), 1)          # 31 long (sock *, int)
    m.add("mod_xmit", 12, 1, proto)                                     # 32 FUNC
    m.add("mod_s", 4, 1, 8, m.s("len"), 1, 0)                           # 33 struct mod_s
    tp = m.add("", 13, 2, 0, 0, 0, 0, 1)                                # 34 void (void *, int)
    m.add("btf_trace_mod_tp", 8, 0, m.add("", 2, 0, tp))                # 36 typedef, 35 ptr
    m.add("do_sys_openat2", 12, 1, proto)                               # 37 a base string
    return base.bytes(), m.bytes()


def test_type_id_by_kind() -> None:
    btf = parse_btf(FIXTURE)
    assert btf.type_id("do_sys_openat2", "func") == 9 == btf.type_id("do_sys_openat2", 12)
    assert btf.type_id("sz", "TYPEDEF") == 10 and btf.type_id("sz", "func") is None
    assert btf.type_id("open_how", "struct") == 5 and btf.type_id("color", "enum") == 11
    assert btf.type_id("open_how", "union") is None and btf.first_id == 1
    assert btf.base is None


def test_error_type_id_unknown_kind() -> None:
    with pytest.raises(BtfFormatError, match="unknown BTF kind 'funky'"):
        parse_btf(FIXTURE).type_id("x", "funky")


def test_split_btf_ids_and_strings_continue_after_the_base() -> None:
    base_bytes, mod_bytes = _split_fixture()
    base = parse_btf(base_bytes)
    mod = parse_btf(mod_bytes, base)
    assert mod.first_id == 31 and len(mod) == 37 and mod.base is base
    assert mod.type_id("mod_xmit", "func") == 32
    assert mod.type_id("mod_s", "struct") == 33
    assert mod.type_id("btf_trace_mod_tp", "typedef") == 36
    # only its own types: vmlinux's "many" is not the module's, its do_sys_openat2 is
    assert mod.type_id("many", "func") is None
    assert mod.type_id("do_sys_openat2", "func") == 37
    assert mod.function_names() == ["mod_xmit", "do_sys_openat2"]  # its own FUNCs only
    assert base.function_names() == ["do_sys_openat2", "many", "none"]
    # rendering reaches into the base's types and strings
    assert mod.function_signature("mod_xmit") == "long mod_xmit(struct sock * dev, int len)"
    assert mod.raw_tracepoint_args("mod_tp") == ["int"]
    assert mod.type_name(5) == "struct open_how" and mod.name(9) == "do_sys_openat2"
    with pytest.raises(BtfFormatError, match="type id 38 does not exist"):
        mod.type_name(38)
    with pytest.raises(BtfFormatError, match="outside the string section"):
        mod.string(mod._str0 + 10_000)


def test_find_type_id_in_vmlinux_then_modules(tmp_path: Path) -> None:
    from ebpfhooks.kernel.btf import (
        BtfId,
        find_type_id,
        lsm_hook_id,
        module_btf,
        module_names,
        tp_btf_id,
        tracing_function_id,
    )

    base_bytes, mod_bytes = _split_fixture()
    (tmp_path / "vmlinux").write_bytes(base_bytes)
    (tmp_path / "zmod").write_bytes(mod_bytes)
    assert module_names(tmp_path) == ["zmod"]
    assert module_btf("zmod", tmp_path) is module_btf("zmod", tmp_path)  # cached
    assert module_btf("nope", tmp_path) is None and module_btf("../x", tmp_path) is None
    assert tracing_function_id("mod_xmit", directory=tmp_path) == BtfId(32, "zmod")
    assert BtfId(32, "zmod").in_module and not BtfId(9, "vmlinux").in_module
    # vmlinux first, as libbpf: the module's own do_sys_openat2 is not the one found
    assert tracing_function_id("do_sys_openat2", directory=tmp_path) == BtfId(9, "vmlinux")
    assert tracing_function_id("do_sys_openat2", "zmod", directory=tmp_path) == BtfId(37,
                                                                                     "zmod")
    assert tracing_function_id("mod_xmit", "vmlinux", directory=tmp_path) is None
    assert tp_btf_id("mod_tp", directory=tmp_path) == BtfId(36, "zmod")
    assert lsm_hook_id("file_open", directory=tmp_path) is None
    assert find_type_id("open_how", "struct", directory=tmp_path) == BtfId(5, "vmlinux")
    assert find_type_id("nothing", "func", directory=tmp_path) is None
    assert module_names(tmp_path / "missing") == []


@needs_btf
def test_vmlinux_tracing_targets_match_bpftool() -> None:
    from ebpfhooks.kernel.btf import BtfId, tp_btf_id, tracing_function_id

    raw = _bpftool_raw()
    for kind, name, got in (
            ("FUNC", "do_sys_openat2", tracing_function_id("do_sys_openat2")),
            ("TYPEDEF", "btf_trace_sched_process_exec", tp_btf_id("sched_process_exec"))):
        m = re.search(rf"^\[(\d+)\] {kind} '{name}'", raw, re.M)
        assert m and got == BtfId(int(m.group(1)), "vmlinux")


def test_module_btf_ids_match_bpftool() -> None:
    """Module BTF (split on vmlinux's) numbered as the kernel numbers it; VM tier has modules."""
    from ebpfhooks.kernel import features
    from ebpfhooks.kernel.btf import BtfId, module_btf, module_names, tracing_function_id

    config = features.kernel_config() or {}
    if not module_names() and config.get("CONFIG_MODULES") == "y" and os.geteuid() == 0:
        subprocess.run(["modprobe", "veth"], capture_output=True, check=False)
    mods = module_names()
    if not mods:  # no module BTF on this kernel: say why
        assert (config.get("CONFIG_MODULES", "n") != "y"
                or config.get("CONFIG_DEBUG_INFO_BTF_MODULES", "n") != "y"
                or not VMLINUX_BTF.exists()), "modules with BTF are expected but none loaded"
        return
    bpftool = shutil.which("bpftool")
    assert bpftool, "bpftool is needed to cross-check module BTF (scripts/setup.sh)"
    for mod in mods[:3]:
        raw = subprocess.run([bpftool, "-B", str(VMLINUX_BTF), "btf", "dump", "file",
                              f"/sys/kernel/btf/{mod}", "format", "raw"],
                             capture_output=True, text=True, timeout=120, check=True).stdout
        funcs = re.findall(r"^\[(\d+)\] FUNC '([^']+)'", raw, re.M)
        btf = module_btf(mod)
        assert btf is not None and funcs, mod
        assert len(btf) == int(re.findall(r"^\[(\d+)\]", raw, re.M)[-1])
        for tid, name in funcs[:5]:
            assert btf.type_id(name, "func") == int(tid), (mod, name)
            assert btf.function_signature(name) is not None
            found = tracing_function_id(name, mod)
            assert found == BtfId(int(tid), mod)
