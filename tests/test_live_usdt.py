"""Live USDT probes: Debian's python3.11 (gc__start, its semaphore) and a built target.

One bcc compile for the file: the argument readers ebpfhooks generates
(``ebpfhooks.usdt_args``) for python:gc__start, ehk:tick (six arguments, each in
another kind of place) and ehk:multi (two locations whose arguments differ: the
reader switches on the cookie ebpfhooks sets) go before the counting programs. Every
test counts the events of its own children only (their pids in ``watch``), checks the
arguments read, and checks the semaphore the kernel counts in the child's memory
(/proc/PID/mem): 1 while attached, 0 after detach.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import bpf_progs_named, not_possible

import ebpfhooks
from ebpfhooks import Hook, UsdtResolution
from ebpfhooks.kernel import features

pytestmark = [pytest.mark.live, pytest.mark.guest]

PYTHON = Path("/usr/bin/python3.11")
GC_START = f"usdt:{PYTHON}:python:gc__start"
N = 11
PREFIX = "ehk_usdt_"  # every program of this file is named so

PROGRAMS = r"""
BPF_HASH(watch, u32, u32);     /* tgids whose events count */
BPF_ARRAY(counts, u64, 4);     /* 0 tick, 1 multi, 2 gc__start, 3 reader failures */
BPF_ARRAY(ticksum, s64, 6);    /* sum of each ehk:tick argument */
BPF_ARRAY(multisum, s64, 4);   /* [2 * location + n]: sum of ehk:multi argument n */
BPF_ARRAY(multihits, u64, 2);  /* per location (cookie) */
BPF_ARRAY(gens, u64, 4);       /* gc__start by its generation argument (3: other) */

static inline int watched(void) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    return watch.lookup(&tgid) != 0;
}

static inline void add(int idx) {
    u64 *v = counts.lookup(&idx);
    if (v) __sync_fetch_and_add(v, 1);
}

static inline void tick_sum(int idx, s64 value) {
    s64 *v = ticksum.lookup(&idx);
    if (v) __sync_fetch_and_add(v, value);
}

static inline void multi_sum(int idx, s64 value) {
    s64 *v = multisum.lookup(&idx);
    if (v) __sync_fetch_and_add(v, value);
}

#define TICK_ARG(n) do { u64 v = 0; \
    if (usdt_ehk_tick_arg(ctx, n, &v)) add(3); else tick_sum(n, (s64)v); } while (0)

int ehk_usdt_tick(struct pt_regs *ctx) {
    if (!watched()) return 0;
    add(0);
    TICK_ARG(0); TICK_ARG(1); TICK_ARG(2); TICK_ARG(3); TICK_ARG(4); TICK_ARG(5);
    u64 none = 0;
    if (usdt_ehk_tick_arg(ctx, USDT_EHK_TICK_NARGS, &none) == 0) add(3);
    return 0;
}

int ehk_usdt_multi(struct pt_regs *ctx) {
    if (!watched()) return 0;
    add(1);
    u64 loc = bpf_get_attach_cookie(ctx), a = 0, b = 0;
    if (loc > 1 || usdt_ehk_multi_arg(ctx, 0, &a) || usdt_ehk_multi_arg(ctx, 1, &b)) {
        add(3);
        return 0;
    }
    int slot = (int)loc;
    u64 *hits = multihits.lookup(&slot);
    if (hits) __sync_fetch_and_add(hits, 1);
    multi_sum(2 * slot, (s64)a);
    multi_sum(2 * slot + 1, (s64)b);
    return 0;
}

int ehk_usdt_gc(struct pt_regs *ctx) {
    if (!watched()) return 0;
    add(2);
    u64 gen = 3;
    if (usdt_python_gc__start_arg(ctx, 0, &gen)) add(3);
    int slot = gen < 3 ? (int)gen : 3;
    u64 *v = gens.lookup(&slot);
    if (v) __sync_fetch_and_add(v, 1);
    return 0;
}
"""


@pytest.fixture(scope="module")
def prog(live: None, usdt_target: Path) -> Iterator[Any]:
    """One compile: the generated readers of the three probes, then the programs."""
    from bcc import BPF

    if not PYTHON.exists():
        not_possible(f"{PYTHON} (Debian's, built with USDT probes) is the real target")
    readers = "".join(ebpfhooks.usdt_args(spec) for spec in (
        GC_START, f"usdt:{usdt_target}:ehk:tick", f"usdt:{usdt_target}:ehk:multi"))
    module = BPF(text=readers + PROGRAMS)
    yield module
    module.cleanup()
    assert bpf_progs_named(PREFIX) == []


@pytest.fixture
def maps(prog: Any) -> Any:
    for name in ("watch", "counts", "ticksum", "multisum", "multihits", "gens"):
        prog[name].clear()
    return prog


def _watch(bpf: Any, pid: int) -> None:
    bpf["watch"][ctypes.c_uint32(pid)] = ctypes.c_uint32(1)


def _array(bpf: Any, name: str) -> list[int]:
    return [int(v.value) for v in bpf[name].values()]


def _perf_fds() -> int:
    """This process's open perf events and bpf links (what an attachment holds)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        n += target in ("anon_inode:[perf_event]", "anon_inode:bpf_link")
    return n


def semaphore(pid: int, res: UsdtResolution) -> int:
    """The probe's semaphore as process ``pid`` sees it, read from its memory.

    The semaphore's file offset is in one of the file's mappings (/proc/PID/maps):
    address = mapping start + file offset - mapping offset.
    """
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) < 6 or os.path.realpath(parts[5].strip()) != str(res.path):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            offset = int(parts[2], 16)
            if offset <= res.semaphore_offset < offset + end - start:
                with open(f"/proc/{pid}/mem", "rb") as mem:
                    mem.seek(start + res.semaphore_offset - offset)
                    return int.from_bytes(mem.read(2), "little")
    raise AssertionError(f"the semaphore of {res} is not mapped in process {pid}")


class Child:
    """A process that prints a line when it is ready and then waits for ours."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.pid = self.proc.pid

    def line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().rstrip("\n")

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        """End of input: the child exits (it reads EOF); killed if it does not."""
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


# --------------------------------------------------------------------------- python

GC_CHILD = """
import gc, sys
gc.disable()                  # only the collections asked for below
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "exit":
        break
    for gen in map(int, line.split()):
        gc.collect(gen)
    print("done", flush=True)
"""


def test_gc_start_counts_each_collect_and_reads_its_generation(maps: Any) -> None:
    """One gc__start per gc.collect(g), whose argument is g; the semaphore goes 0 -> 1 -> 0.

    python3.11 tests the semaphore before it reaches the probe: without the kernel
    counting it (ref_ctr_offset), nothing would fire.
    """
    asked = [0] * 4 + [1] * 3 + [2] * 5
    child = Child(str(PYTHON), "-c", GC_CHILD)
    try:
        assert child.line() == "ready"
        _watch(maps, child.pid)
        hook = Hook.from_spec(GC_START)
        res = hook.resolve()
        assert isinstance(res, UsdtResolution) and res.semaphore_offset
        assert semaphore(child.pid, res) == 0
        fds = _perf_fds()
        with hook.attach(maps, "ehk_usdt_gc") as link:
            assert link.via == "perf_event"
            assert semaphore(child.pid, res) == 1   # counted up in a running process
            child.send(" ".join(map(str, asked)))
            assert child.line() == "done"
            assert _array(maps, "gens") == [4, 3, 5, 0]
            assert _array(maps, "counts") == [0, 0, 12, 0]
        assert _perf_fds() == fds
        assert semaphore(child.pid, res) == 0
        child.send("2 2")       # detached: not counted (and python skips the probe)
        assert child.line() == "done"
        assert _array(maps, "gens") == [4, 3, 5, 0]
        child.send("exit")
    finally:
        child.close()
    assert child.proc.returncode == 0


def test_gc_start_of_one_pid_only(maps: Any) -> None:
    """``[pid=N]``: the semaphore is counted in that process only, and only it fires."""
    one, other = Child(str(PYTHON), "-c", GC_CHILD), Child(str(PYTHON), "-c", GC_CHILD)
    try:
        assert one.line() == other.line() == "ready"
        _watch(maps, one.pid)
        _watch(maps, other.pid)
        hook = Hook.from_spec(f"{GC_START}[pid={one.pid}]")
        res = hook.resolve()
        assert isinstance(res, UsdtResolution)
        with hook.attach(maps, "ehk_usdt_gc"):
            assert (semaphore(one.pid, res), semaphore(other.pid, res)) == (1, 0)
            for child in (one, other):
                child.send("0 1 2")
                assert child.line() == "done"
            assert _array(maps, "gens") == [1, 1, 1, 0]
        assert semaphore(one.pid, res) == 0
        for child in (one, other):
            child.send("exit")
    finally:
        one.close()
        other.close()


# --------------------------------------------------------------------------- built target

def _run_watched(bpf: Any, target: Path, n: int) -> list[str]:
    """Run the target for ``n`` rounds with its pid watched; its output lines."""
    child = Child(str(target), str(n), "wait")
    try:
        assert child.line() == "ready"
        _watch(bpf, child.pid)
        child.send("go")
        lines = [child.line(), child.line()]
        assert child.proc.wait(timeout=30) == 0
    finally:
        child.close()
    return lines


def test_tick_reads_registers_memory_and_constants(maps: Any, usdt_target: Path) -> None:
    """ehk:tick's six arguments (32/64/16/8-bit registers, a constant, memory at a register
    plus an offset), signed and unsigned, read by the generated reader."""
    child = Child(str(usdt_target), str(N), "wait")
    try:
        assert child.line() == "ready"
        _watch(maps, child.pid)
        hook = Hook.from_spec(f"usdt:{usdt_target}:ehk:tick")
        with hook.attach(maps, "ehk_usdt_tick"):
            child.send("go")
            assert child.line() == "semaphore 1"
            assert child.line() == f"ticks {N}"
    finally:
        child.close()
    i = range(N)
    assert _array(maps, "counts") == [N, 0, 0, 0]
    assert _array(maps, "ticksum") == [
        sum(i), -1000 * sum(i), sum(60000 + x for x in i), sum(7 * x % 256 for x in i),
        -5 * N, sum(-x - 1 for x in i)]
    # detached: the semaphore is 0 again, so the probe is not even reached
    assert _run_watched(maps, usdt_target, 3) == ["semaphore 0", "ticks 0"]
    assert _array(maps, "counts") == [N, 0, 0, 0]


def test_multi_attaches_every_location_with_its_cookie(maps: Any, usdt_target: Path) -> None:
    """ehk:multi is at two places whose arguments differ: one link owns both uprobes,
    each carries its location's index as cookie, and the reader switches on it."""
    if not features.perf_link():
        pytest.fail(f"both tiers have BPF_PERF_EVENT links: {features.perf_link()}")
    hook = Hook.from_spec(f"usdt:{usdt_target}:ehk:multi")
    res = hook.resolve()
    assert isinstance(res, UsdtResolution)
    assert len(res.locations) == 2 and res.arguments_differ
    fds = _perf_fds()
    child = Child(str(usdt_target), str(N), "wait")
    try:
        assert child.line() == "ready"
        _watch(maps, child.pid)
        with hook.attach(maps, "ehk_usdt_multi") as link:
            assert link.via == "bpf_link"
            assert _perf_fds() == fds + 4   # two perf events, two links
            child.send("go")
            assert child.line() == "semaphore 0"   # ehk:tick is not attached
            assert child.line() == "ticks 0"
            assert child.proc.wait(timeout=30) == 0
    finally:
        child.close()
    assert _perf_fds() == fds
    s = sum(range(N))
    assert _array(maps, "counts") == [0, 2 * N, 0, 0]
    assert _array(maps, "multihits") == [N, N]
    assert _array(maps, "multisum") == [s, 3 * s, -s, 1234 * N]
    _run_watched(maps, usdt_target, 3)
    assert _array(maps, "multihits") == [N, N]   # detached
