"""Live: kprobe and kretprobe in their less common forms, through ``Hook.from_spec``.

Where the kernel has kprobes (the VM tier's Debian kernel) each test attaches a
real program and asserts the events it counted. Where it has none (this
machine's kernel) each asserts the library's clear ``NotSupportedError`` instead.

Covered: ``kprobe:do_sys_openat2`` counted, ``func+off`` at an instruction
boundary read from /proc/kcore (and a refused offset inside an instruction), a
kretprobe reading the return value, ``kprobe:sys_openat`` resolving to the
syscall wrapper, a ``.isra``/``.constprop`` clone found in the kernel's own
kallsyms, a kretprobe with ``maxactive``, and a function in a loaded module
(``veth``, loaded by the veth fixture).
"""

from __future__ import annotations

import ctypes
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import mac_of, send_frames

import ebpfhooks
from ebpfhooks import Hook
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import FeatureStatus

pytestmark = pytest.mark.live

N = 20

SOURCE = r"""
#include <uapi/linux/ptrace.h>

BPF_ARRAY(counts, u64, 8);
BPF_ARRAY(sums, u64, 8);

enum { C_OPEN, C_OPEN_OFF, C_RET, C_WRAPPER, C_CLONE, C_MAXACTIVE, C_MODULE };

static inline void bump(int idx, u64 add) {
    u64 *v = counts.lookup(&idx);
    if (v) __sync_fetch_and_add(v, 1);
    u64 *s = sums.lookup(&idx);
    if (s) __sync_fetch_and_add(s, add);
}

static inline int mine(void) {
    return (bpf_get_current_pid_tgid() >> 32) == FILTER_PID;
}

int ehk_kp_open(struct pt_regs *ctx)     { if (mine()) bump(C_OPEN, 0); return 0; }
int ehk_kp_open_off(struct pt_regs *ctx) { if (mine()) bump(C_OPEN_OFF, 0); return 0; }
int ehk_krp_ret(struct pt_regs *ctx)     { if (mine()) bump(C_RET, PT_REGS_RC(ctx)); return 0; }
int ehk_kp_wrapper(struct pt_regs *ctx)  { if (mine()) bump(C_WRAPPER, 0); return 0; }
int ehk_kp_clone(struct pt_regs *ctx)    { bump(C_CLONE, 0); return 0; }
int ehk_krp_maxact(struct pt_regs *ctx) {
    if (mine()) bump(C_MAXACTIVE, PT_REGS_RC(ctx));
    return 0;
}
int ehk_kp_module(struct pt_regs *ctx)   { if (mine()) bump(C_MODULE, 0); return 0; }
"""

C_OPEN, C_OPEN_OFF, C_RET, C_WRAPPER, C_CLONE, C_MAXACTIVE, C_MODULE = range(7)


def kprobes_available() -> bool:
    return features.kprobes().status is FeatureStatus.YES


class Counts:
    def __init__(self, bpf: Any) -> None:
        self.bpf = bpf

    def reset(self) -> None:
        self.bpf["counts"].clear()
        self.bpf["sums"].clear()

    def __getitem__(self, idx: int) -> int:
        return int(self.bpf["counts"][ctypes.c_int(idx)].value)

    def sum(self, idx: int) -> int:
        return int(self.bpf["sums"][ctypes.c_int(idx)].value)


@pytest.fixture(scope="module")
def kbpf(live: None) -> Iterator[Any]:
    """One module with every program of this file (compiled once)."""
    from bcc import BPF

    module = BPF(text=SOURCE, cflags=[f"-DFILTER_PID={os.getpid()}"])
    yield module
    module.cleanup()


@pytest.fixture
def counts(kbpf: Any) -> Counts:
    c = Counts(kbpf)
    c.reset()
    return c


def assert_not_supported(spec: str, bpf: Any, fn_name: str) -> None:
    """This kernel has no kprobes: attaching must say so, naming the missing feature."""
    with pytest.raises(ebpfhooks.NotSupportedError) as err:
        Hook.from_spec(spec).attach(bpf, fn_name=fn_name)
    hook = str(Hook.from_spec(spec))
    assert str(err.value).startswith(f"{hook} cannot attach: this kernel has no kprobe support")
    assert err.value.missing == "CONFIG_KPROBES"


def _open_n(path: Path, n: int) -> None:
    for _ in range(n):
        os.close(os.open(path, os.O_RDONLY))


def _getppid_n(n: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(n):
        libc.getppid()


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "f"
    path.write_text("x")
    return path


def test_kprobe_do_sys_openat2_counts(kbpf: Any, counts: Counts, a_file: Path) -> None:
    if not kprobes_available():
        assert_not_supported("kprobe:do_sys_openat2", kbpf, "ehk_kp_open")
        return
    with Hook.from_spec("kprobe:do_sys_openat2").attach(kbpf, fn_name="ehk_kp_open") as link:
        assert link.resolution.symbol == "do_sys_openat2"  # type: ignore[attr-defined]
        _open_n(a_file, N)
        assert counts[C_OPEN] == N
    _open_n(a_file, 3)
    assert counts[C_OPEN] == N


# ---------------------------------------------------------------- func+off

NOP5 = bytes.fromhex("0f1f440000")
ENDBR64 = bytes.fromhex("f30f1efa")


def read_kernel_text(address: int, size: int) -> bytes:
    """``size`` bytes of kernel memory at ``address``, from /proc/kcore (an ELF core)."""
    with open("/proc/kcore", "rb") as f:
        ehdr = f.read(64)
        assert ehdr[:4] == b"\x7fELF" and ehdr[4] == 2, "expected a 64-bit ELF /proc/kcore"
        phoff, = struct.unpack_from("<Q", ehdr, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", ehdr, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        for i in range(phnum):
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
                "<IIQQQQ", table, i * phentsize)
            if p_type == 1 and p_vaddr <= address < p_vaddr + p_filesz:
                f.seek(p_offset + address - p_vaddr)
                return f.read(size)
    raise LookupError(f"{address:#x} is in no /proc/kcore segment")


def offset_after_prologue(code: bytes) -> int:
    """The offset of the instruction after ``endbr64`` and the 5-byte ftrace call.

    x86-64 kernels built with ftrace start every traceable function with a 5-byte
    ``call __fentry__`` (``nop5`` while unused), after ``endbr64`` when built with
    IBT; the next instruction starts right after them.
    """
    off = 4 if code.startswith(ENDBR64) else 0
    if code[off:off + 5] == NOP5 or code[off] == 0xE8:
        return off + 5
    raise AssertionError(f"unexpected prologue {code[:12].hex()}")


def test_kprobe_at_offset_counts(kbpf: Any, counts: Counts, a_file: Path) -> None:
    if not kprobes_available():
        assert_not_supported("kprobe:do_sys_openat2+0x5", kbpf, "ehk_kp_open_off")
        return
    from ebpfhooks.kernel.kallsyms import index as kallsyms

    address = kallsyms().lookup("do_sys_openat2")[0].address
    off = offset_after_prologue(read_kernel_text(address, 16))
    hook = Hook.from_spec(f"kprobe:do_sys_openat2+{off:#x}")
    assert hook.offset == off  # type: ignore[attr-defined]
    with hook.attach(kbpf, fn_name="ehk_kp_open_off"):
        _open_n(a_file, N)
        assert counts[C_OPEN_OFF] == N
    _open_n(a_file, 3)
    assert counts[C_OPEN_OFF] == N
    # one byte into an instruction: the kernel refuses (EILSEQ); the error is typed
    with pytest.raises(ebpfhooks.AttachError) as err:
        Hook.from_spec(f"kprobe:do_sys_openat2+{off + 1:#x}").attach(
            kbpf, fn_name="ehk_kp_open_off")
    assert f"do_sys_openat2+{off + 1:#x}" in str(err.value)


def test_offset_after_prologue() -> None:
    assert offset_after_prologue(NOP5 + b"\x55") == 5
    assert offset_after_prologue(ENDBR64 + NOP5 + b"\x55") == 9
    assert offset_after_prologue(b"\xe8\x01\x02\x03\x04\x55") == 5
    with pytest.raises(AssertionError, match="unexpected prologue"):
        offset_after_prologue(b"\x55\x48\x89\xe5" + b"\x90" * 8)


# ---------------------------------------------------------------- kretprobe

def test_kretprobe_reads_the_return_value(kbpf: Any, counts: Counts) -> None:
    if not kprobes_available():
        assert_not_supported("kretprobe:sys_getppid", kbpf, "ehk_krp_ret")
        return
    with Hook.from_spec("kretprobe:sys_getppid").attach(kbpf, fn_name="ehk_krp_ret"):
        _getppid_n(N)
        assert counts[C_RET] == N
        assert counts.sum(C_RET) == N * os.getppid()


def test_kretprobe_with_maxactive(kbpf: Any, counts: Counts, a_file: Path) -> None:
    spec = "kretprobe:do_sys_openat2[maxactive=32]"
    if not kprobes_available():
        assert_not_supported(spec, kbpf, "ehk_krp_maxact")
        return
    hook = Hook.from_spec(spec)
    assert hook.maxactive == 32  # type: ignore[attr-defined]
    from ebpfhooks.kernel.tracefs import tracefs_root

    with hook.attach(kbpf, fn_name="ehk_krp_maxact"):
        fds = []
        for _ in range(N):
            fd = os.open(a_file, os.O_RDONLY)
            fds.append(fd)
            os.close(fd)
        assert counts[C_MAXACTIVE] == N
        assert counts.sum(C_MAXACTIVE) == sum(fds)  # the return values are the fds
        # (read after counting: reading kprobe_events is an open too) bcc wrote
        # "r32:..." to kprobe_events; the kernel lists the probe with its maxactive
        events = (tracefs_root() / "kprobe_events").read_text()
        assert any(line.startswith("r32:") and "do_sys_openat2" in line
                   for line in events.splitlines()), events
    events = (tracefs_root() / "kprobe_events").read_text()
    assert "do_sys_openat2" not in events


# ---------------------------------------------------------------- names the kernel spells otherwise

def test_syscall_name_resolves_to_the_wrapper(kbpf: Any, counts: Counts, a_file: Path) -> None:
    if not kprobes_available():
        assert_not_supported("kprobe:sys_openat", kbpf, "ehk_kp_wrapper")
        return
    from ebpfhooks.kernel.kallsyms import index as kallsyms

    hook = Hook.from_spec("kprobe:sys_openat")
    resolution = hook.resolve()
    assert resolution.symbol == kallsyms().syscall_prefix() + "openat"  # type: ignore[attr-defined]
    assert resolution.symbol == "__x64_sys_openat"  # type: ignore[attr-defined]
    assert "syscall entry __x64_sys_openat" in (resolution.note or "")
    with hook.attach(kbpf, fn_name="ehk_kp_wrapper"):
        _open_n(a_file, N)
        assert counts[C_WRAPPER] == N


def unique_clones() -> dict[str, str]:
    """Base name -> its only ``.isra``/``.constprop`` clone, from this kernel's kallsyms.

    Only core-kernel functions with no function of the plain name and exactly one
    clone (``.cold`` parts count as clones too) are returned, minus the kprobe blacklist.
    """
    from ebpfhooks.kernel.kallsyms import index as kallsyms
    from ebpfhooks.kernel.kallsyms import strip_variant_suffix
    from ebpfhooks.kernel.tracefs import kprobe_blacklist

    ks = kallsyms()
    blacklist = kprobe_blacklist()
    out = {}
    for sym in ks.functions():
        name = sym.name
        if sym.module is not None or not (".isra." in name or ".constprop." in name):
            continue
        base = strip_variant_suffix(name)
        if any(e.is_function for e in ks.lookup(base)) or name in blacklist:
            continue
        clones = [v for v in ks.variants(base) if any(e.is_function for e in ks.lookup(v))]
        if clones == [name]:
            out[base] = name
    return out


# Clones on the open/read path of Debian's 6.1 kernel, tried first: they fire on every
# open, so the test can count its own events. Any other unique clone is only attached.
HOT_CLONES = ("do_dentry_open", "path_init", "link_path_walk", "terminate_walk",
              "may_open", "do_open", "build_open_flags")


def test_kprobe_on_a_compiler_clone(kbpf: Any, counts: Counts, a_file: Path) -> None:
    if not kprobes_available():
        assert_not_supported("kprobe:do_dentry_open", kbpf, "ehk_kp_clone")
        return
    clones = unique_clones()
    assert clones, "this kernel has no function compiled only as a .isra/.constprop clone"
    hot = [b for b in HOT_CLONES if b in clones]
    base = hot[0] if hot else sorted(clones)[0]
    hook = Hook.from_spec(f"kprobe:{base}")
    resolution = hook.resolve()
    assert resolution.symbol == clones[base]  # type: ignore[attr-defined]
    assert f"compiled as {clones[base]}" in (resolution.note or "")
    with hook.attach(kbpf, fn_name="ehk_kp_clone") as link:
        assert link.attached
        if hot:
            _open_n(a_file, N)
            assert counts[C_CLONE] >= N
    # the clone's full name works too
    with Hook.from_spec(f"kprobe:{clones[base]}").attach(kbpf, fn_name="ehk_kp_clone") as link:
        assert link.resolution.note is None


# ---------------------------------------------------------------- a module's function

def test_kprobe_in_a_loaded_module(
    kbpf: Any, counts: Counts, veth: tuple[str, str]
) -> None:
    """``kprobe:veth:veth_xmit``: the veth fixture loads the module (where it is one)."""
    if not kprobes_available():
        assert_not_supported("kprobe:veth:veth_xmit", kbpf, "ehk_kp_module")
        return
    from ebpfhooks.kernel.kallsyms import index as kallsyms

    entries = kallsyms(reload=True).lookup("veth_xmit")
    if not any(e.module == "veth" for e in entries):
        pytest.fail("veth is built into this kernel, not a module; no module function to probe"
                    f" (veth_xmit: {entries})")
    a, b = veth
    with Hook.from_spec("kprobe:veth:veth_xmit").attach(kbpf, fn_name="ehk_kp_module") as link:
        assert link.resolution.module == "veth"  # type: ignore[attr-defined]
        send_frames(b, mac_of(a), N)
        assert counts[C_MODULE] == N
    with pytest.raises(ebpfhooks.SymbolNotFoundError, match="not in module"):
        Hook.from_spec("kprobe:veth:do_sys_openat2").attach(kbpf, fn_name="ehk_kp_module")


# ---------------------------------------------------------------- the hello world

ROOT = Path(__file__).resolve().parent.parent


def test_hello_world_runs_on_the_kprobe(live: None, tmp_path: Path) -> None:
    """examples/hello_world.py at kprobe:do_sys_openat2 for real where kprobes exist.

    The files are opened only once the example says it is attached, however long its
    compile takes (under emulation it can take a minute).
    """
    import subprocess
    import sys

    marker = tmp_path / "ebpfhooks-hello-kprobe"
    marker.write_text("hi")
    out_path = tmp_path / "out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "examples/hello_world.py"),
                                 "--duration", "3"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while "reporting opens" not in out_path.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, "hello_world.py did not attach in 300 s"
            time.sleep(0.1)
        while proc.poll() is None:
            subprocess.run(["cat", str(marker)], capture_output=True, check=False)
            time.sleep(0.05)
        lines = out_path.read_text().splitlines()
        assert proc.wait() == 0, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first, rest = lines[0], lines[1:]
    if kprobes_available():
        assert first == "attached kprobe:do_sys_openat2: reporting opens for 3 s"
    else:
        assert first.startswith("kprobe:do_sys_openat2 cannot attach: this kernel has no "
                                "kprobe support")
        assert first.endswith("; falling back to the stable tracepoint "
                              "tracepoint:syscalls:sys_enter_openat")
        assert rest[0] == "attached tracepoint:syscalls:sys_enter_openat: reporting opens for 3 s"
        rest = rest[1:]
    assert rest[0].split() == ["PID", "COMM", "FILE"]
    assert any(line.split()[1:3] == ["cat", str(marker)] for line in rest[1:-1]), rest
    assert rest[-1].endswith("opens seen") and int(rest[-1].split()[0]) > 0
