"""Live: perf-event hooks count real events, with bounds derived from the work each test does.

* ``software:page-faults`` of one child (``[pid=N]``) that touches N new pages: at least N
  faults, not many more, and a period of 64 gives one sample per 64 of them;
* ``profile:hz:N`` sampling a busy child: its samples match the CPU time the child
  measured itself, within a generous factor (system-wide with a pid filter in the
  program, and with ``[pid=N]``);
* ``interval:ms:N`` fires about once per period over a window the test measures, on one
  CPU;
* ``hardware:``: on a machine without a CPU PMU (the host; qemu's emulated CPU) the
  typed ``NotSupportedError`` naming ``software:cpu-clock``; where there is one, counted.
* ownership: one perf event per CPU while attached, none after ``detach`` or an
  exception in the ``with`` block; a program on perf events stays loaded until they close.

One bcc compile for the file. Every test also runs in the VM tier (tests/vmtier.py runs
test_live*.py there): the rates are slow and the bounds generous enough for qemu.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import bpf_progs_named

from ebpfhooks import Hardware, Hook, Interval, NotSupportedError, Profile, Software, _bcc, bpfsys
from ebpfhooks.errors import AttachError
from ebpfhooks.kernel import features, pmu
from ebpfhooks.kernel.features import FeatureStatus

pytestmark = [pytest.mark.live, pytest.mark.guest]

PREFIX = "ehkpraw_"  # the program this file loads itself (bcc names its own ehkperf_*)
PAGES = 4096
HZ = 199
BURN_S = 0.6

PROGRAMS = r"""
#include <uapi/linux/bpf_perf_event.h>

BPF_HASH(watch, u32, u32);      /* tgids whose samples count */
BPF_ARRAY(total, u64, 8);       /* the counters of each test, by slot */
BPF_HASH(ticks, u32, u64);      /* interval: fires per CPU */

static inline void add(int idx) {
    u64 *v = total.lookup(&idx);
    if (v) __sync_fetch_and_add(v, 1);
}

static inline int watched(void) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    return watch.lookup(&tgid) != 0;
}

int ehkperf_fault(struct bpf_perf_event_data *ctx) {   /* the event follows one pid */
    add(0);
    return 0;
}

int ehkperf_fault64(struct bpf_perf_event_data *ctx) {
    if (ctx->sample_period == 64) add(1);
    return 0;
}

int ehkperf_sample(struct bpf_perf_event_data *ctx) {  /* every CPU: filter here */
    if (watched()) add(2);
    return 0;
}

int ehkperf_sample_pid(struct bpf_perf_event_data *ctx) {  /* [pid=N]: the event filters */
    if (watched()) add(3); else add(4);
    return 0;
}

int ehkperf_tick(struct bpf_perf_event_data *ctx) {
    u32 cpu = bpf_get_smp_processor_id();
    add(5);
    ticks.increment(cpu);
    return 0;
}

int ehkperf_hw(struct bpf_perf_event_data *ctx) {
    add(6);
    return 0;
}
"""

#: Children that say they are ready, wait for a line on stdin, do their work and say what
#: they measured.
TOUCH_PAGES = f"""
import mmap, sys
print("ready", flush=True)
sys.stdin.readline()
m = mmap.mmap(-1, {PAGES} * mmap.PAGESIZE)
m.madvise(mmap.MADV_NOHUGEPAGE)   # one fault per page, not per huge page
for i in range({PAGES}):
    m[i * mmap.PAGESIZE] = 1
print("touched", flush=True)
sys.stdin.readline()
"""

BURN = f"""
import sys, time
print("ready", flush=True)
sys.stdin.readline()
t0, w0 = time.process_time(), time.monotonic()
x = 0
while time.process_time() - t0 < {BURN_S}:
    for i in range(10000):
        x += i
print(time.process_time() - t0, time.monotonic() - w0, flush=True)
sys.stdin.readline()
"""


@pytest.fixture(scope="module")
def perfbpf(live: None) -> Iterator[Any]:
    from bcc import BPF

    module = BPF(text=PROGRAMS)
    yield module
    module.cleanup()


@pytest.fixture
def maps(perfbpf: Any) -> Any:
    for name in ("watch", "total", "ticks"):
        perfbpf[name].clear()
    return perfbpf


def _total(bpf: Any, idx: int) -> int:
    return int(bpf["total"][ctypes.c_int(idx)].value)


def _watch(bpf: Any, pid: int) -> None:
    bpf["watch"][ctypes.c_uint32(pid)] = ctypes.c_uint32(1)


def _child(code: str) -> subprocess.Popen[str]:
    """The child, started and waiting (its interpreter's start-up is over: under qemu it
    takes seconds of CPU time, which no test may count)."""
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    return child


def _go(child: subprocess.Popen[str]) -> str:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    return child.stdout.readline().strip()


def _end(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("end\n")
    child.stdin.flush()
    child.stdin.close()
    assert child.wait(timeout=60) == 0


def perf_fds() -> int:
    """perf events this process holds open."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            n += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[perf_event]"
    return n


def test_software_page_faults_of_one_child(maps: Any) -> None:
    child = _child(TOUCH_PAGES)
    try:
        every = Software("page-faults", 1, pid=child.pid)
        sampled = Hook.from_spec(f"software:faults:64[pid={child.pid}]")
        with every.attach(maps, "ehkperf_fault") as link, \
                sampled.attach(maps, "ehkperf_fault64"):
            assert link.via == "perf_event"
            assert link.resolution.cpus is None  # one event following the child
            assert _go(child) == "touched"
        faults, samples = _total(maps, 0), _total(maps, 1)
    finally:
        _end(child)
    # every new page faults once; the rest is the child's own few (its reads, the print)
    assert PAGES <= faults <= PAGES + PAGES // 4, faults
    # both events saw the same faults: one sample of the second per 64 of the first
    assert PAGES // 64 <= samples <= faults // 64 + 1, (faults, samples)


def test_profile_samples_a_busy_child_in_proportion_to_its_cpu_time(maps: Any) -> None:
    child = _child(BURN)
    try:
        _watch(maps, child.pid)
        everywhere = Profile("hz", HZ)
        following = Hook.from_spec(f"profile:hz:{HZ}[pid={child.pid}]")
        with everywhere.attach(maps, "ehkperf_sample") as link, \
                following.attach(maps, "ehkperf_sample_pid"):
            assert link.resolution.cpus == pmu.online_cpus()
            # the CPU time the child burned and the time it took, as the child measured them
            cpu_s, wall_s = map(float, _go(child).split())
        sampled, followed, elsewhere = _total(maps, 2), _total(maps, 3), _total(maps, 4)
    finally:
        _end(child)
    # A sample lands on the child when a CPU's timer fires while the child runs there:
    # about its CPU time x HZ; it is one thread, on one CPU at a time, so never more than
    # the time it took x HZ.
    low, high = 0.5 * cpu_s * HZ, 1.5 * max(cpu_s, wall_s) * HZ + 3
    seen = (cpu_s, wall_s, sampled, followed)
    assert low <= sampled <= high, seen
    assert low <= followed <= high, seen
    assert elsewhere == 0  # the [pid=N] event ran only while the child ran


def test_interval_fires_once_per_period_on_one_cpu(maps: Any) -> None:
    period_ms = 20
    hook = Hook.from_spec(f"interval:ms:{period_ms}")
    assert isinstance(hook, Interval)
    with hook.attach(maps, "ehkperf_tick") as link:
        start = time.monotonic()
        time.sleep(1.0)
        window = time.monotonic() - start
        assert perf_fds() >= 1
    fired = _total(maps, 5)
    expected = window * 1000 / period_ms
    assert 0.4 * expected <= fired <= 1.5 * expected + 2, (window, fired)
    cpus = {int(k.value): int(v.value) for k, v in maps["ticks"].items()}
    assert list(cpus) == [pmu.online_cpus()[0]] == list(link.resolution.cpus)
    time.sleep(0.1)
    assert _total(maps, 5) == fired  # detached: it fires no more


def test_hardware_counts_or_is_refused_naming_the_software_alternative(maps: Any) -> None:
    hook = Hardware("instructions", 100_000)
    if features.perf_hardware().status is not FeatureStatus.YES:
        assert pmu.cpu_pmu() is None or features.perf_hardware().status is FeatureStatus.NO
        with pytest.raises(NotSupportedError) as err:
            hook.attach(maps, "ehkperf_hw")
        assert str(err.value).startswith("hardware:instructions:100000 cannot attach: this "
                                         "kernel has no hardware perf events (")
        assert err.value.alternative == "software:cpu-clock"
        assert str(err.value).endswith("use the stable alternative instead: software:cpu-clock")
        assert perf_fds() == 0
        return
    child = _child(BURN)  # pragma: no cover  (a machine with a CPU PMU)
    try:
        with Hardware("instructions", 100_000, pid=child.pid).attach(maps, "ehkperf_hw"):
            cpu_s = float(_go(child).split()[0])
        counted = _total(maps, 6)
    finally:
        _end(child)
    # a busy loop retires well over 10**7 instructions a second on any CPU
    assert counted >= cpu_s * 10**7 / 100_000 / 2, (cpu_s, counted)


def test_link_owns_one_event_per_cpu_and_closes_them_on_exception(maps: Any) -> None:
    before = perf_fds()
    hook = Hook.from_spec("profile:hz:49")
    with pytest.raises(RuntimeError, match="boom"), hook.attach(maps, "ehkperf_sample") as link:
        assert perf_fds() == before + len(pmu.online_cpus())
        raise RuntimeError("boom")
    assert not link.attached and perf_fds() == before
    link.detach()  # a second detach does nothing
    one = hook.attach(maps, "ehkperf_sample")
    one.detach()
    assert perf_fds() == before


def test_perf_events_hold_the_program_until_they_close(perfbpf: Any) -> None:
    """bpfsys level: all or none of the CPUs, and the events own the program."""
    insns, license = _bcc.compiled_insns(perfbpf, "ehkperf_tick")
    prog = bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_PERF_EVENT, insns, license=license,
                            name=PREFIX + "held")
    before = perf_fds()
    try:
        with pytest.raises(AttachError, match="CPU 4095 is not online"):
            bpfsys.perf_event_attach(prog, bpfsys.PERF_TYPE_SOFTWARE, 0, sample_freq=49,
                                     cpus=[*pmu.online_cpus(), 4095])
        assert perf_fds() == before  # the CPUs before the bad one were closed again
        events = bpfsys.perf_event_attach(prog, bpfsys.PERF_TYPE_SOFTWARE, 0, sample_freq=49)
    finally:
        os.close(prog)
    assert len(events) == len(pmu.online_cpus()) == perf_fds() - before
    assert bpf_progs_named(PREFIX + "held", 0) == [PREFIX + "held"]  # held by the events
    events.close()
    assert perf_fds() == before
    assert bpf_progs_named(PREFIX) == []
