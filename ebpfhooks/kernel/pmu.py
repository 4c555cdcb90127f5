"""Perf-event PMUs and CPUs, as sysfs and procfs describe them.

Pure parsers (:func:`parse_cpu_list`) and thin readers of the live files: the PMUs under
``/sys/bus/event_source/devices`` (their ``type`` and ``events/``), the online CPUs
(``/sys/devices/system/cpu/online``) and ``kernel.perf_event_max_sample_rate``::

    from ebpfhooks.kernel import pmu
    pmu.online_cpus()        # (0, 1)
    pmu.cpu_pmu()            # 'cpu' on x86 with a hardware PMU, None in most VMs

Nothing is cached (CPUs go on- and offline); importing reads nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["CPU_ONLINE", "MAX_SAMPLE_RATE", "PMU_DIR", "cpu_pmu", "max_sample_rate",
           "online_cpus", "parse_cpu_list", "pmu_event_names", "pmu_type", "pmus"]

PMU_DIR = Path("/sys/bus/event_source/devices")
CPU_ONLINE = Path("/sys/devices/system/cpu/online")
MAX_SAMPLE_RATE = Path("/proc/sys/kernel/perf_event_max_sample_rate")

#: Directory names of CPU (hardware-event) PMUs: x86, hybrid x86, arm64, s390, others.
_CPU_PMU = re.compile(r"^(cpu|cpu_core|cpu_atom|armv\d.*|arm_cortex.*|cpum_cf)$")


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """The CPUs of a kernel CPU list (``0-3,8,10-11``), sorted, without repeats.

    >>> parse_cpu_list("0-2,5\\n")
    (0, 1, 2, 5)
    >>> parse_cpu_list("")
    ()

    Raises ``ValueError`` for text that is not a CPU list.
    """
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"not a CPU list: {text.strip()!r}")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"not a CPU list: {text.strip()!r} ({part} runs backwards)")
        cpus.update(range(first, last + 1))
    return tuple(sorted(cpus))


def online_cpus() -> tuple[int, ...]:
    """The online CPUs (``/sys/devices/system/cpu/online``).

    >>> online_cpus()  # doctest: +SKIP
    (0, 1)

    Falls back to ``os.sched_getaffinity``'s CPUs when sysfs cannot be read.
    """
    try:
        cpus = parse_cpu_list(CPU_ONLINE.read_text(encoding="ascii"))
    except (OSError, ValueError):
        cpus = ()
    if cpus:
        return cpus
    import os

    return tuple(sorted(os.sched_getaffinity(0)))


def pmus() -> list[str]:
    """The names of the PMUs the kernel registered (sorted; empty when unreadable)."""
    try:
        return sorted(p.name for p in PMU_DIR.iterdir())
    except OSError:
        return []


def pmu_type(name: str) -> int | None:
    """The ``perf_event_attr.type`` of PMU ``name`` (its sysfs ``type``), or None."""
    try:
        return int((PMU_DIR / name / "type").read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def cpu_pmu() -> str | None:
    """The name of the CPU PMU that serves hardware events (``cpu``, ``cpu_core``,
    ``armv8_pmuv3_0`` ...), or None when the kernel registered none (most VMs)."""
    return next((p for p in pmus() if _CPU_PMU.match(p)), None)


def pmu_event_names(name: str) -> frozenset[str] | None:
    """The event names PMU ``name`` lists in its sysfs ``events/`` directory, or None
    when it has none (the software PMU lists none: its events are fixed by the uapi)."""
    try:
        return frozenset(p.name for p in (PMU_DIR / name / "events").iterdir()
                         if not p.name.endswith((".scale", ".unit", ".per-pkg",
                                                 ".snapshot")))
    except OSError:
        return None


def max_sample_rate() -> int | None:
    """``kernel.perf_event_max_sample_rate``: the highest ``sample_freq`` the kernel
    accepts (it lowers it by itself when sampling interrupts take too long), or None."""
    try:
        return int(MAX_SAMPLE_RATE.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
