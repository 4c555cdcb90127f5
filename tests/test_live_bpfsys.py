"""Live: bcc-compiled functions loaded and attached with ebpfhooks.bpfsys's raw syscalls.

tp_btf (both tiers), uprobe_multi (6.6+: the host; the VM's 6.1 must refuse it with
NotSupportedError), per-probe perf-event uprobes with BPF cookies and semaphores (both
tiers), fentry (the VM's 6.1 has BPF trampolines; the host refuses them with
NotSupportedError). Every test counts real events of its own children and checks that
closing the fds detached and unloaded everything.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import bpf_progs_named, not_possible, send_frames, veth_pair

from ebpfhooks import _bcc, bpfsys
from ebpfhooks.errors import NotSupportedError, ProgramError
from ebpfhooks.kernel import btf, features
from ebpfhooks.kernel.features import FeatureStatus

pytestmark = [pytest.mark.live, pytest.mark.guest]

NSLOTS = 1024
FUNCTIONS = 1000  # in the generated binary
PER_PROBE = 16  # the per-probe path: each detach waits for the kernel (~0.1 s here)
N = 7
IN_GUEST = bool(os.environ.get("EBPFHOOKS_VM_GUEST"))
PREFIX = "ehksys_"  # every program these tests load is named so

PROGRAMS = r"""
#include <uapi/linux/ptrace.h>

BPF_HASH(watch, u32, u32);        /* tgids whose events count */
BPF_ARRAY(total, u64, 4);         /* 0 execs, 1 fentry, 2 uprobe hits, 3 bad return values */
BPF_ARRAY(hits, u64, NSLOTS);     /* per cookie */

static inline int watched(void) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    return watch.lookup(&tgid) != 0;
}

static inline void add(int idx) {
    u64 *v = total.lookup(&idx);
    if (v) __sync_fetch_and_add(v, 1);
}

static inline void hit(u64 cookie) {
    int slot = cookie < NSLOTS ? (int)cookie : NSLOTS - 1;
    u64 *v = hits.lookup(&slot);
    if (v) __sync_fetch_and_add(v, 1);
}

int ehk_sys_exec(void *ctx) {       /* tp_btf/sched_process_exec */
    if (watched()) add(0);
    return 0;
}

int ehk_sys_fentry(void *ctx) {     /* fentry on a kernel function */
    if (watched()) add(1);
    return 0;
}

int ehk_sys_cookie(struct pt_regs *ctx) {   /* uprobes: which one fired */
    add(2);
    hit(bpf_get_attach_cookie(ctx));
    return 0;
}

int ehk_sys_ret(struct pt_regs *ctx) {      /* uretprobes: f_i(1) returns i + 1 */
    u64 cookie = bpf_get_attach_cookie(ctx);
    add(2);
    if ((u32)PT_REGS_RC(ctx) != (u32)(cookie + 1)) add(3);
    hit(cookie);
    return 0;
}
"""


@pytest.fixture(scope="module")
def sysbpf(live: None) -> Iterator[Any]:
    """One bcc compile of the programs above; nothing is loaded by bcc itself."""
    from bcc import BPF

    module = BPF(text=PROGRAMS, cflags=[f"-DNSLOTS={NSLOTS}"])
    yield module
    module.cleanup()


@pytest.fixture
def maps(sysbpf: Any) -> Any:
    for name in ("watch", "total", "hits"):
        sysbpf[name].clear()
    return sysbpf


def _total(bpf: Any, idx: int) -> int:
    return int(bpf["total"][ctypes.c_int(idx)].value)


def _hits(bpf: Any) -> list[int]:
    table = bpf["hits"]
    return [int(table[ctypes.c_int(i)].value) for i in range(NSLOTS)]


def _watch(bpf: Any, pid: int) -> None:
    bpf["watch"][ctypes.c_uint32(pid)] = ctypes.c_uint32(1)


def _load(bpf: Any, fn: str, prog_type: int, expected: int = 0, btf_id: int = 0,
          obj_fd: int = 0) -> int:
    insns, license = _bcc.compiled_insns(bpf, fn)
    return bpfsys.prog_load(prog_type, insns, license=license,
                            name=PREFIX + fn.removeprefix("ehk_sys_"),
                            expected_attach_type=expected, attach_btf_id=btf_id,
                            attach_btf_obj_fd=obj_fd, what=f"loading {fn}")


def _no_programs_left() -> None:
    assert bpf_progs_named(PREFIX) == []


def _in_child(bpf: Any, work: Any) -> None:
    """Fork; the child waits until its pid is watched, runs ``work()`` and exits."""
    gate_r, gate_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.close(gate_w)
            os.read(gate_r, 1)
            work()
            status = 0
        finally:
            os._exit(status)
    os.close(gate_r)
    _watch(bpf, pid)
    os.write(gate_w, b"g")
    os.close(gate_w)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# --------------------------------------------------------------------------- tp_btf


def _exec_chain(n: int) -> None:
    """n execve(2)s in one process: env execs env ... execs true."""
    env = shutil.which("env") or "/usr/bin/env"
    os.execv(env, ["env"] * (n - 1) + ["true"])


def test_tp_btf_counts_execs_and_detaches_when_the_fd_closes(maps: Any) -> None:
    target = btf.tp_btf_id("sched_process_exec")
    assert target is not None and not target.in_module
    prog = _load(maps, "ehk_sys_exec", bpfsys.BPF_PROG_TYPE_TRACING, bpfsys.BPF_TRACE_RAW_TP,
                 target.type_id)
    try:
        link = bpfsys.raw_tracepoint_open(prog, None, what="tp_btf:sched_process_exec")
        try:
            _in_child(maps, lambda: _exec_chain(N))
            assert _total(maps, 0) == N
        finally:
            os.close(link)
        _in_child(maps, lambda: _exec_chain(N))
        assert _total(maps, 0) == N  # detached: the second chain is not counted
    finally:
        os.close(prog)
    _no_programs_left()


# --------------------------------------------------------------------------- fentry


def _opens(n: int) -> None:
    for _ in range(n):
        os.close(os.open("/dev/null", os.O_RDONLY))


def test_fentry_counts_or_says_the_kernel_has_no_trampolines(maps: Any) -> None:
    target = btf.tracing_function_id("do_sys_openat2")
    assert target is not None
    have = features.trampolines()
    assert have.known, have
    if IN_GUEST:  # Debian's 6.1 has BPF trampolines
        assert have, have
    if not have:
        with pytest.raises(NotSupportedError) as err:
            _load(maps, "ehk_sys_fentry", bpfsys.BPF_PROG_TYPE_TRACING,
                  bpfsys.BPF_TRACE_FENTRY, target.type_id)
        assert "cannot attach BPF trampolines" in str(err.value)
        assert str(err.value).startswith("loading ehk_sys_fentry: the kernel refused a "
                                         "TRACING program with expected attach type "
                                         "BPF_TRACE_FENTRY")
        _no_programs_left()
        return
    prog = _load(maps, "ehk_sys_fentry", bpfsys.BPF_PROG_TYPE_TRACING,
                 bpfsys.BPF_TRACE_FENTRY, target.type_id)
    try:
        link = bpfsys.raw_tracepoint_open(prog, None, what="fentry:do_sys_openat2")
        try:
            _in_child(maps, lambda: _opens(N))
            assert _total(maps, 1) == N
        finally:
            os.close(link)
        _in_child(maps, lambda: _opens(N))
        assert _total(maps, 1) == N
    finally:
        os.close(prog)
    _no_programs_left()


def test_fentry_on_a_module_function(maps: Any) -> None:
    """Module BTF: the id from /sys/kernel/btf/veth and that BTF object's fd (VM tier)."""
    config = features.kernel_config() or {}
    if "veth" not in btf.module_names() and config.get("CONFIG_MODULES") == "y":
        subprocess.run(["modprobe", "veth"], capture_output=True, check=False)
    if "veth" not in btf.module_names():
        # no module BTF for veth here (the host's kernel has no modules): the clear error
        assert config.get("CONFIG_MODULES", "n") != "y" or not IN_GUEST
        assert btf.tracing_function_id("veth_xmit", "veth") is None
        with pytest.raises(ProgramError, match="no kernel BTF object named 'veth'"):
            bpfsys.btf_obj_fd("veth")
        return
    target = btf.tracing_function_id("veth_xmit")
    assert target is not None and target.btf == "veth"
    assert target.type_id > len(btf.vmlinux_btf() or [])
    obj = bpfsys.btf_obj_fd("veth")
    try:
        if not features.trampolines():
            with pytest.raises(NotSupportedError):
                _load(maps, "ehk_sys_fentry", bpfsys.BPF_PROG_TYPE_TRACING,
                      bpfsys.BPF_TRACE_FENTRY, target.type_id, obj)
            return
        prog = _load(maps, "ehk_sys_fentry", bpfsys.BPF_PROG_TYPE_TRACING,
                     bpfsys.BPF_TRACE_FENTRY, target.type_id, obj)
    finally:
        os.close(obj)
    try:
        link = bpfsys.raw_tracepoint_open(prog, None, what="fentry:veth:veth_xmit")
        try:
            with veth_pair("ehs") as (a, b):
                _watch(maps, os.getpid())
                peer = Path(f"/sys/class/net/{a}/address").read_text().strip()
                send_frames(b, peer, N)
                assert _total(maps, 1) == N
        finally:
            os.close(link)
    finally:
        os.close(prog)
    _no_programs_left()


# --------------------------------------------------------------------------- uprobes


def _generate(directory: Path, n: int) -> Path:
    """A C program with ``n`` functions f_i(x) = x + i, called once each after a gate."""
    src = directory / f"multi{n}.c"
    body = ["#include <stdio.h>", "#include <string.h>",
            '__attribute__((section(".probes"))) volatile unsigned short ehk_sema;']
    body += [f"__attribute__((noipa)) int ehk_f{i}(int x) {{ return x + {i}; }}"
             for i in range(n)]
    body += ["int main(int argc, char **argv) {",
             "    char line[16];",
             '    if (argc > 1 && strcmp(argv[1], "wait") == 0) {',
             '        printf("ready\\n"); fflush(stdout);',
             "        if (!fgets(line, sizeof line, stdin)) return 2;",
             "    }",
             '    printf("sema %u\\n", (unsigned)ehk_sema);',
             "    long s = 0;"]
    body += [f"    s += ehk_f{i}(1);" for i in range(n)]
    body += ['    printf("sum %ld\\n", s);', "    return 0;", "}"]
    src.write_text("\n".join(body) + "\n")
    out = directory / f"multi{n}"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(src)], check=True)
    return out


def _data_file_offset(path: Path, symbol: str) -> int:
    """File offset of a data symbol (the kernel's ref_ctr_offset of a semaphore)."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        table = elf.get_section_by_name(".symtab")
        assert table is not None
        sym = table.get_symbol_by_name(symbol)[0]
        vaddr = sym["st_value"]
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= vaddr < (
                    seg["p_vaddr"] + seg["p_filesz"]):
                return int(vaddr - seg["p_vaddr"] + seg["p_offset"])
    raise AssertionError(f"{symbol} is not in a file-backed segment")


@pytest.fixture(scope="module")
def multi(live: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int], int]:
    """(binary, file offsets of ehk_f0..ehk_f999, ref_ctr_offset of ehk_sema)."""
    from ebpfhooks.elf.resolve import resolve_symbols

    if shutil.which("gcc") is None:
        not_possible("gcc is needed to build the uprobe_multi target")
    binary = _generate(tmp_path_factory.mktemp("multi"), FUNCTIONS)
    found = resolve_symbols(binary, [(f"ehk_f{i}", 0) for i in range(FUNCTIONS)])
    offsets = []
    for target in found:
        assert not isinstance(target, Exception), target
        offsets.append(target.file_offset)
    assert len(set(offsets)) == FUNCTIONS
    return binary, offsets, _data_file_offset(binary, "ehk_sema")


def _start(binary: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([str(binary), "wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def _finish(proc: subprocess.Popen[str]) -> int:
    """Let it call its functions; return the semaphore value it saw."""
    out, _ = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, out
    return int(out.split("sema ", 1)[1].split()[0])


def _run(binary: Path) -> int:
    return _finish(_start(binary))


def _multi_or_refused(prog: int, binary: Path, offsets: list[int], **kw: Any) -> int | None:
    """A uprobe_multi link, or None after checking the refusal where the kernel lacks them."""
    have = features.uprobe_multi()
    assert have.known, have
    assert bool(have) == (features.kernel_version() >= (6, 6, 0)), have
    if have:
        return bpfsys.uprobe_multi(prog, binary, offsets, **kw)
    with pytest.raises(NotSupportedError) as err:
        bpfsys.uprobe_multi(prog, binary, offsets, **kw)
    assert "has no uprobe_multi links" in str(err.value) and "kernel 6.6" in str(err.value)
    return None


def test_uprobe_multi_one_link_thousand_functions_cookies(
        maps: Any, multi: tuple[Path, list[int], int]) -> None:
    binary, offsets, sema = multi
    prog = _load(maps, "ehk_sys_cookie", bpfsys.BPF_PROG_TYPE_KPROBE,
                 bpfsys.BPF_TRACE_UPROBE_MULTI)
    try:
        refs = [sema] + [0] * (FUNCTIONS - 1)  # the semaphore on the first uprobe only
        link = _multi_or_refused(prog, binary, offsets, ref_ctr_offsets=refs,
                                 cookies=list(range(FUNCTIONS)))
        if link is None:
            return
        try:
            assert _run(binary) == 1  # the kernel counted the semaphore up
            assert _total(maps, 2) == FUNCTIONS
            assert _hits(maps)[:FUNCTIONS] == [1] * FUNCTIONS  # each cookie once
        finally:
            os.close(link)  # every uprobe of the link at once
        assert _run(binary) == 0
        assert _total(maps, 2) == FUNCTIONS
    finally:
        os.close(prog)
    _no_programs_left()


def test_uprobe_multi_retprobe_sees_each_return_value(
        maps: Any, multi: tuple[Path, list[int], int]) -> None:
    binary, offsets, _ = multi
    prog = _load(maps, "ehk_sys_ret", bpfsys.BPF_PROG_TYPE_KPROBE,
                 bpfsys.BPF_TRACE_UPROBE_MULTI)
    try:
        link = _multi_or_refused(prog, binary, offsets, cookies=list(range(FUNCTIONS)),
                                 retprobe=True)
        if link is None:
            return
        try:
            _run(binary)
            assert _total(maps, 2) == FUNCTIONS and _total(maps, 3) == 0
            assert _hits(maps)[:FUNCTIONS] == [1] * FUNCTIONS
        finally:
            os.close(link)
    finally:
        os.close(prog)
    _no_programs_left()


def test_uprobe_multi_pid_filter(maps: Any, multi: tuple[Path, list[int], int]) -> None:
    binary, offsets, _ = multi
    prog = _load(maps, "ehk_sys_cookie", bpfsys.BPF_PROG_TYPE_KPROBE,
                 bpfsys.BPF_TRACE_UPROBE_MULTI)
    first, second = _start(binary), _start(binary)
    try:
        link = _multi_or_refused(prog, binary, offsets, cookies=list(range(FUNCTIONS)),
                                 pid=first.pid)
        if link is None:
            return
        try:
            _finish(second)
            _finish(first)
            assert _total(maps, 2) == FUNCTIONS  # only the first process's calls
        finally:
            os.close(link)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        os.close(prog)
    _no_programs_left()


def test_per_probe_perf_events_with_cookies_and_semaphore(
        maps: Any, multi: tuple[Path, list[int], int]) -> None:
    """The per-probe path (every kernel): a perf event each, cookies through perf links."""
    binary, offsets, sema = multi
    prog = _load(maps, "ehk_sys_cookie", bpfsys.BPF_PROG_TYPE_KPROBE)
    assert features.perf_link(), features.perf_link()  # both kernels here are >= 5.15
    probes: list[bpfsys.PerfUprobe] = []
    first, second = _start(binary), _start(binary)
    try:
        for i in range(PER_PROBE):
            probes.append(bpfsys.perf_uprobe(prog, binary, offsets[i], pid=first.pid,
                                             ref_ctr_offset=sema if i == 0 else 0,
                                             cookie=i))
        assert _finish(second) == 0  # pid-filtered: not probed, semaphore untouched
        assert _finish(first) == 1
        assert _total(maps, 2) == PER_PROBE
        assert _hits(maps)[:FUNCTIONS] == [1] * PER_PROBE + [0] * (FUNCTIONS - PER_PROBE)
    finally:
        for probe in probes:
            probe.close()
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        os.close(prog)
    _run(binary)
    assert _total(maps, 2) == PER_PROBE  # all detached
    _no_programs_left()


def test_uprobe_multi_program_needs_its_attach_type(
        maps: Any, multi: tuple[Path, list[int], int]) -> None:
    """A KPROBE program loaded without BPF_TRACE_UPROBE_MULTI: the kernel's EINVAL, typed."""
    from ebpfhooks.errors import AttachError

    binary, offsets, _ = multi
    prog = _load(maps, "ehk_sys_cookie", bpfsys.BPF_PROG_TYPE_KPROBE)
    try:
        if not features.uprobe_multi():
            with pytest.raises(NotSupportedError):
                bpfsys.uprobe_multi(prog, binary, offsets[:2])
            return
        with pytest.raises(AttachError, match="expected attach type BPF_TRACE_UPROBE_MULTI"):
            bpfsys.uprobe_multi(prog, binary, offsets[:2])
    finally:
        os.close(prog)
    _no_programs_left()


def test_compiled_insns_unknown_function(sysbpf: Any) -> None:
    with pytest.raises(ProgramError) as err:
        _bcc.compiled_insns(sysbpf, "ehk_nope")
    assert str(err.value).startswith("the BPF module defines no function 'ehk_nope'; it "
                                     "defines: ")
    assert "ehk_sys_exec" in str(err.value)
    insns, license = _bcc.compiled_insns(sysbpf, "ehk_sys_exec")
    assert license == "GPL" and len(insns) % 8 == 0 and insns


def test_verifier_rejection_is_a_program_error_with_the_log(sysbpf: Any) -> None:
    """The cookie function loaded as a SOCKET_FILTER: the verifier says which helper."""
    insns, license = _bcc.compiled_insns(sysbpf, "ehk_sys_cookie")
    with pytest.raises(ProgramError) as err:
        bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_SOCKET_FILTER, insns, license=license,
                         name=PREFIX + "bad")
    assert "verifier log (last lines):" in str(err.value)
    assert "processed" in str(err.value) or "unknown func" in str(err.value)
    _no_programs_left()


def test_feature_probes_agree(live: None) -> None:
    assert features.uprobe_multi().status is (
        FeatureStatus.YES if features.kernel_version() >= (6, 6, 0) else FeatureStatus.NO)
    _no_programs_left()  # the probes' own programs are gone
