"""Live: fentry, fexit, tp_btf and LSM hooks attached to the real kernel, events counted.

One bcc compile for the whole file (each costs ~10-20 s in the VM tier's emulated
guest). Every BPF function has a name of its own choosing (``ehkbtf_*``): ebpfhooks
loads what bcc compiled at the hook's BTF id, so none needs bcc's ``kfunc__``/``lsm__``
naming. The programs count only the tgids the test watches (its children, or itself for
frames it sends).

- tp_btf works on both kernels: a child's N execs counted, and the typed argument
  ``old_pid`` read directly;
- fentry, fexit and LSM need BPF trampolines: the host (6.18 without
  CONFIG_FUNCTION_TRACER) refuses them, and the tests assert the typed error; Debian's
  6.1 in the VM tier has them (and lists ``bpf`` in its LSM order): opens counted,
  fexit's return values read, one open denied by an LSM program and allowed again
  after detach.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import bpf_progs_named, not_possible, send_frames, veth_pair

import ebpfhooks
from ebpfhooks import Fentry, Hook, Lsm, TpBtf, discover
from ebpfhooks.errors import NotSupportedError, ProgramError, SymbolNotFoundError
from ebpfhooks.kernel import btf, features

pytestmark = pytest.mark.live

N = 7
PREFIX = "ehkbtf_"  # every program these tests load is named so
IN_GUEST = bool(os.environ.get("EBPFHOOKS_VM_GUEST"))
#: Slots of the ``total`` array.
ENTRY, EXIT_OK, EXIT_ENOENT, EXECS, OLD_PID, FILE_OPEN, DENIED, XMIT = range(8)

SOURCE = r"""
BPF_HASH(watch, u32, u32);     /* tgids whose events count */
BPF_ARRAY(total, u64, 8);
BPF_ARRAY(deny, u32, 1);       /* opens still to deny (LSM) */

static inline int watched(void) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    return watch.lookup(&tgid) != 0;
}

static inline void add(int idx) {
    u64 *v = total.lookup(&idx);
    if (v) __sync_fetch_and_add(v, 1);
}

/* fentry:do_sys_openat2: the raw form, u64 *ctx (ctx[0] dfd, ctx[1] filename ...) */
int ehkbtf_fentry(u64 *ctx) {
    if (watched()) add(0);
    return 0;
}

/* fexit:do_sys_openat2: BPF_PROG names the arguments; the return value comes last */
BPF_PROG(ehkbtf_fexit, int dfd, const char *filename, void *how, long ret) {
    if (!watched()) return 0;
    if (ret >= 0) add(1);
    else if (ret == -ENOENT_) add(2);
    return 0;
}

/* tp_btf:sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *) */
BPF_PROG(ehkbtf_exec, void *p, pid_t old_pid, void *bprm) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!watched()) return 0;
    add(3);
    if (old_pid == tgid) add(4);   /* a typed argument, read without bpf_probe_read */
    return 0;
}

/* lsm:file_open(struct file *file): counts, and denies while deny[0] > 0 */
BPF_PROG(ehkbtf_lsm, void *file) {
    if (!watched()) return 0;
    add(5);
    int zero = 0;
    u32 *left = deny.lookup(&zero);
    if (left && *left > 0) {
        *left -= 1;
        add(6);
        return -EPERM_;
    }
    return 0;
}

/* fentry:veth:veth_xmit, a module's function (its own BTF object) */
int ehkbtf_veth(u64 *ctx) {
    if (watched()) add(7);
    return 0;
}

/* reads an argument do_sys_openat2 has not: the verifier refuses it */
int ehkbtf_bad(u64 *ctx) {
    return ctx[9] != 0;
}
"""


@pytest.fixture(scope="module")
def module(live: None) -> Iterator[Any]:
    """The one bcc compile of this file."""
    from bcc import BPF

    bpf = BPF(text=SOURCE, cflags=[f"-DENOENT_={errno.ENOENT}", f"-DEPERM_={errno.EPERM}"])
    yield bpf
    bpf.cleanup()


@pytest.fixture
def bpf(module: Any) -> Iterator[Any]:
    for name in ("watch", "total", "deny"):
        module[name].clear()
    yield module
    assert bpf_progs_named(PREFIX) == []  # every program is gone after its link


def _total(bpf: Any, idx: int) -> int:
    return int(bpf["total"][ctypes.c_int(idx)].value)


def _watch(bpf: Any, pid: int) -> None:
    bpf["watch"][ctypes.c_uint32(pid)] = ctypes.c_uint32(1)


def _in_child(bpf: Any, work: Callable[[], None]) -> None:
    """Fork; the child waits until its tgid is watched, runs ``work()`` and exits 0."""
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


def _opens(n: int, missing: int = 0) -> None:
    for _ in range(n):
        os.close(os.open("/dev/null", os.O_RDONLY))
    for _ in range(missing):
        try:
            os.open("/ehk-no-such-file", os.O_RDONLY)
        except FileNotFoundError:
            continue
        raise AssertionError("/ehk-no-such-file exists")


def _trampolines() -> bool:
    have = features.trampolines()
    assert have.known, have
    if IN_GUEST:  # Debian's 6.1 has them
        assert have, have
    return bool(have)


def _refused(hook: Hook, bpf: Any, fn: str) -> NotSupportedError:
    with pytest.raises(NotSupportedError) as err:
        hook.attach(bpf, fn_name=fn)
    return err.value


# --------------------------------------------------------------------------- fentry/fexit


def test_fentry_counts_the_opens_of_a_child(bpf: Any) -> None:
    hook = Fentry("do_sys_openat2")
    if not _trampolines():
        err = _refused(hook, bpf, "ehkbtf_fentry")
        assert str(err).startswith("fentry:do_sys_openat2 cannot attach: this kernel has no "
                                   "BPF trampolines, which fentry and fexit programs run from")
        assert err.alternative == "tracepoint:syscalls:sys_enter_openat"
        return
    with hook.attach(bpf, fn_name="ehkbtf_fentry") as link:
        assert link.via == "bpf_link" and link.fd is not None
        _in_child(bpf, lambda: _opens(N))
        assert _total(bpf, ENTRY) == N
    _in_child(bpf, lambda: _opens(N))
    assert _total(bpf, ENTRY) == N  # detached


def test_fexit_reads_the_return_value(bpf: Any) -> None:
    hook = Hook.from_spec("kretfunc:do_sys_openat2")
    if not _trampolines():
        err = _refused(hook, bpf, "ehkbtf_fexit")
        assert err.alternative == "tracepoint:syscalls:sys_exit_openat"
        return
    with hook.attach(bpf, fn_name="ehkbtf_fexit"):
        _in_child(bpf, lambda: _opens(N, missing=3))
    assert (_total(bpf, EXIT_OK), _total(bpf, EXIT_ENOENT)) == (N, 3)


def test_fentry_on_a_module_function(bpf: Any) -> None:
    """A module's function: its BTF object's fd goes with the type id (VM tier: veth)."""
    config = features.kernel_config() or {}
    if "veth" not in btf.module_names() and config.get("CONFIG_MODULES") == "y":
        subprocess.run(["modprobe", "veth"], capture_output=True, check=False)
    hook = Fentry("veth_xmit", module="veth")
    if "veth" not in btf.module_names():
        assert not IN_GUEST
        with pytest.raises(SymbolNotFoundError) as err:
            hook.resolve()
        assert "not found in the FUNC types of module veth's BTF" in str(err.value)
        return
    if not _trampolines():
        _refused(hook, bpf, "ehkbtf_veth")
        return
    with veth_pair("ehf") as (a, b), hook.attach(bpf, fn_name="ehkbtf_veth") as link:
        assert link.resolution.btf == "veth"  # type: ignore[attr-defined]
        _watch(bpf, os.getpid())
        send_frames(b, Path(f"/sys/class/net/{a}/address").read_text().strip(), N)
        assert _total(bpf, XMIT) == N


def test_verifier_refusal_is_a_program_error(bpf: Any) -> None:
    hook = Fentry("do_sys_openat2")
    if not _trampolines():
        _refused(hook, bpf, "ehkbtf_bad")
        return
    with pytest.raises(ProgramError) as err:
        hook.attach(bpf, fn_name="ehkbtf_bad")
    assert str(err.value).startswith("loading 'ehkbtf_bad' for fentry:do_sys_openat2: the "
                                     "verifier rejected a TRACING program")
    assert "verifier log (last lines):" in str(err.value)


# --------------------------------------------------------------------------- tp_btf


def _exec_chain(n: int) -> None:
    """n execve(2)s in one process: env execs env ... execs true."""
    env = shutil.which("env") or "/usr/bin/env"
    os.execv(env, ["env"] * (n - 1) + ["true"])


def test_tp_btf_counts_execs_and_reads_a_typed_argument(bpf: Any) -> None:
    with Hook.from_spec("tp_btf/sched_process_exec").attach(bpf, fn_name="ehkbtf_exec") as link:
        assert isinstance(link.hook, TpBtf) and link.via == "bpf_link"
        _in_child(bpf, lambda: _exec_chain(N))
        assert _total(bpf, EXECS) == N
        assert _total(bpf, OLD_PID) == N  # old_pid is the exec'ing process's own pid
    _in_child(bpf, lambda: _exec_chain(N))
    assert _total(bpf, EXECS) == N  # detached


def test_sigkill_leaves_nothing_behind(bpf: Any) -> None:
    """A process killed with its tp_btf link attached: the kernel closes the link's and the
    program's fds, and both are gone (no cleanup code ran)."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(ready_r)
            TpBtf("sched_process_exec").attach(bpf, fn_name="ehkbtf_exec")
            os.write(ready_w, b"a")
            while True:
                signal.pause()
        finally:
            os._exit(1)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"a"
        assert bpf_progs_named(PREFIX, settle=0) == ["ehkbtf_exec"]
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)  # still alive, link attached
    finally:
        os.close(ready_r)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    # the fixture checks that no ehkbtf_ program is left


# --------------------------------------------------------------------------- lsm


def _denied_then_allowed() -> None:
    try:
        os.open("/dev/null", os.O_RDONLY)
    except PermissionError as err:
        assert err.errno == errno.EPERM
    else:
        raise AssertionError("the first open was not denied")
    _opens(2)


def test_lsm_counts_file_open_and_denies_one(bpf: Any) -> None:
    hook = Lsm("file_open")
    assert features.bpf_lsm(), features.bpf_lsm()  # both kernels build it and list bpf
    if not _trampolines():
        err = _refused(hook, bpf, "ehkbtf_lsm")
        assert str(err).startswith("lsm:file_open cannot attach: this kernel has no BPF "
                                   "trampolines, which LSM programs run from")
        assert str(err).endswith("; the BPF LSM itself is active")
        return
    with hook.attach(bpf, fn_name="ehkbtf_lsm"):
        _in_child(bpf, lambda: _opens(N))
        assert _total(bpf, FILE_OPEN) == N
        bpf["deny"][ctypes.c_int(0)] = ctypes.c_uint32(1)
        _in_child(bpf, _denied_then_allowed)
        assert (_total(bpf, FILE_OPEN), _total(bpf, DENIED)) == (N + 3, 1)
    bpf["deny"][ctypes.c_int(0)] = ctypes.c_uint32(1)
    _in_child(bpf, lambda: _opens(1))  # detached: nothing denies, nothing counts
    assert (_total(bpf, FILE_OPEN), _total(bpf, DENIED)) == (N + 3, 1)


# --------------------------------------------------------------------------- listing


def _bpftrace_kfuncs(pattern: str) -> list[str]:
    """``bpftrace -l 'kfunc:PATTERN'`` as ebpfhooks spells it (``kfunc:vmlinux:F`` ->
    ``fentry:F``)."""
    proc = subprocess.run(["bpftrace", "-l", f"kfunc:{pattern}"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = []
    for line in proc.stdout.split():
        _, mod, func = line.split(":")
        out.append(f"fentry:{func}" if mod == "vmlinux" else f"fentry:{mod}:{func}")
    return sorted(out)


@pytest.mark.parametrize("pattern", ["vfs_*", "*openat*", "tcp_v4_*"])
def test_fentry_listing_equals_bpftrace(live: None, pattern: str) -> None:
    from ebpfhooks.hooks.fentry import DENIED

    if shutil.which("bpftrace") is None:
        not_possible("bpftrace is the oracle for listings")
    listing = discover.search(f"fentry:{pattern}")
    if not _trampolines():
        # bpftrace 0.17 aborts here (available_filter_functions is EPERM); ebpfhooks says why
        assert listing.hooks == [] and "cannot attach BPF trampolines" in listing.notes[0]
        assert ebpfhooks.list_hooks(f"fentry:{pattern}", include_unsupported=True)
        return
    expected = [h for h in _bpftrace_kfuncs(pattern) if h.split(":")[-1] not in DENIED]
    vmlinux_only = [h for h in listing.hooks if h.count(":") == 1]  # bpftrace 0.17: no modules
    assert vmlinux_only == expected
    assert ebpfhooks.list_hooks(f"fexit:{pattern}") == [
        h.replace("fentry:", "fexit:", 1) for h in listing.hooks]


def test_lsm_and_tp_btf_listings(live: None) -> None:
    hooks = ebpfhooks.list_hooks("lsm:file_*", include_unsupported=True)
    assert "lsm:file_open" in hooks
    if _trampolines():
        assert ebpfhooks.list_hooks("lsm:file_*") == hooks
    raws = ebpfhooks.list_hooks("rawtracepoint:sched_*")
    assert ebpfhooks.list_hooks("tp_btf:sched_*") == [
        r.replace("rawtracepoint:", "tp_btf:") for r in raws]
