"""The perf-event family's shared half: :class:`PerfEventHook`, :class:`PerfEventResolution`,
and the numbers of its specs (bpftrace's counts, rates and durations).

The kinds themselves (``profile``, ``interval``, ``software``, ``hardware``) are in
:mod:`ebpfhooks.hooks.perf`, which re-exports the public names of this module.
"""

from __future__ import annotations

import re

from ebpfhooks import caps
from ebpfhooks.errors import HookNotFoundError, NotSupportedError, ProcessNotFoundError, SpecError
from ebpfhooks.hooks.base import Hook, Resolution

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from ebpfhooks._bcc import Attachment
    from ebpfhooks.hooks.link import Program
    from ebpfhooks.spec import Body

__all__ = ["MIN_CLOCK_PERIOD_NS", "PERF_TYPE_HARDWARE", "PERF_TYPE_SOFTWARE", "TIME_UNITS",
           "PerfEventHook", "PerfEventResolution", "parse_count", "parse_duration"]

PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
_CPU_CLOCK = 0  # PERF_COUNT_SW_CPU_CLOCK

#: The units of ``profile:UNIT:N`` / ``interval:UNIT:N``: ns per unit (``hz`` is a rate).
TIME_UNITS = {"hz": 0, "s": 1_000_000_000, "ms": 1_000_000, "us": 1_000}
#: Suffixes of the one-part form (``interval:1s``), as bpftrace reads them: ns per unit.
_DURATION_SUFFIXES = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                      "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
#: cpu-clock is an hrtimer: the kernel runs it at most every 10 us (perf_swevent_init_hrtimer).
MIN_CLOCK_PERIOD_NS = 10_000

_UAPI_NAMES = {
    PERF_TYPE_SOFTWARE: ("CPU_CLOCK", "TASK_CLOCK", "PAGE_FAULTS", "CONTEXT_SWITCHES",
                         "CPU_MIGRATIONS", "PAGE_FAULTS_MIN", "PAGE_FAULTS_MAJ",
                         "ALIGNMENT_FAULTS", "EMULATION_FAULTS", "DUMMY", "BPF_OUTPUT"),
    PERF_TYPE_HARDWARE: ("CPU_CYCLES", "INSTRUCTIONS", "CACHE_REFERENCES", "CACHE_MISSES",
                         "BRANCH_INSTRUCTIONS", "BRANCH_MISSES", "BUS_CYCLES",
                         "STALLED_CYCLES_FRONTEND", "STALLED_CYCLES_BACKEND",
                         "REF_CPU_CYCLES"),
}

# compiled on first use (re caches them): `ebpfhooks list` imports this module, never them
_NUMBER = r"(0[xX][0-9a-fA-F]+|[1-9]e[0-9]+|[0-9]+)"
_DURATION = _NUMBER + r"([a-z]*)"
_MAX = (1 << 63) - 1
_MAX_PID = (1 << 22) - 1
_MAX_CPU = (1 << 16) - 1


# --------------------------------------------------------------------------- numbers


def parse_count(text: str) -> int:
    """A count or rate as bpftrace writes it: decimal, ``0x`` hex, ``1e6`` (a digit 1-9,
    ``e``, an exponent), ``_`` between digits; positive, below 2**63.

    >>> parse_count("99"), parse_count("1e6"), parse_count("1_000"), parse_count("0x10")
    (99, 1000000, 1000, 16)

    Raises ``ValueError`` saying what is wrong.
    """
    digits = text.replace("_", "")
    if not digits:
        raise ValueError("missing number")
    if digits.startswith("-"):
        raise ValueError(f"negative number {text!r}")
    if not re.fullmatch(_NUMBER, digits):
        raise ValueError(f"{text!r} is not a number (decimal, 0x hex or 1e6)")
    if digits[:2] in ("0x", "0X"):
        value = int(digits, 16)
    elif "e" in digits:
        value = int(digits[0]) * 10 ** int(digits[2:])
    else:
        value = int(digits)
    if value == 0:
        raise ValueError("0 is not a positive number")
    if value > _MAX:
        raise ValueError(f"{text} is out of range (below 2**63 expected)")
    return value


def parse_duration(text: str) -> int:
    """The ns of bpftrace's one-part time (``interval:1s``): a number and an optional
    suffix ``ns`` (the default), ``us``, ``ms``, ``s``, ``m``, ``h``, ``d``.

    >>> parse_duration("1s"), parse_duration("250ms"), parse_duration("1000000")
    (1000000000, 250000000, 1000000)

    Raises ``ValueError`` saying what is wrong (``99hz`` is a rate, not a duration).
    """
    m = re.fullmatch(_DURATION, text.replace("_", ""))
    if m is None:
        raise ValueError(f"{text!r} is not a number with a time suffix")
    number, suffix = m.group(1), m.group(2)
    if suffix == "hz":
        raise ValueError(f"{text!r} is a rate, not a duration")
    if suffix and suffix not in _DURATION_SUFFIXES:
        raise ValueError(f"unknown time suffix {suffix!r} in {text!r} (ns, us, ms, s, m, h, d)")
    ns = parse_count(number) * _DURATION_SUFFIXES[suffix or "ns"]
    if ns > _MAX:
        raise ValueError(f"{text} is out of range")
    return ns


def _body_count(body: Body, start: int, end: int, what: str) -> int:
    try:
        return parse_count(body.t.text[start:end])
    except ValueError as err:
        raise body.error(start, end, f"{what}: {err}",
                         "expected a positive number: 99, 0x63, 1e6, 1_000") from None


def _positive(value: object, field: str, limit: int = _MAX) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= limit:
        raise SpecError(f"{field} must be a positive int (at most {limit}), got {value!r}")
    return value


def _optional(value: object, field: str, lo: int, hi: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise SpecError(f"{field} must be an int in {lo}..{hi} or None, got {value!r}")
    return value


def _options_text(pid: int | None, cpu: int | None) -> str:
    opts = [f"pid={pid}"] * (pid is not None) + [f"cpu={cpu}"] * (cpu is not None)
    return f"[{','.join(opts)}]" if opts else ""


def _cpu_text(cpus: tuple[int, ...] | None, pid: int | None) -> str:
    if cpus is None:
        return f"one event following pid {pid} on any CPU"
    shown = ", ".join(map(str, cpus))
    return f"CPU {shown}" if len(cpus) == 1 else f"CPUs {shown} (one event each)"


# --------------------------------------------------------------------------- resolution


class PerfEventResolution(Resolution):
    """The perf event a hook opens: its PMU, ``type`` and ``config``, the sampling
    (``sample_period``, or ``sample_freq`` a second), the ``cpus`` (None: one event that
    follows ``pid`` on any CPU)."""

    __slots__ = ("config", "cpus", "pid", "pmu", "sample_freq", "sample_period", "type")
    _fields = ("hook", "note", "pmu", "type", "config", "sample_period", "sample_freq",
               "cpus", "pid")
    pmu: str
    type: int
    config: int
    sample_period: int
    sample_freq: int
    cpus: tuple[int, ...] | None
    pid: int | None

    def __init__(self, hook: Hook, *, pmu: str, type: int, config: int,
                 sample_period: int = 0, sample_freq: int = 0,
                 cpus: tuple[int, ...] | None, pid: int | None = None,
                 note: str | None = None) -> None:
        self._init(hook=hook, note=note, pmu=pmu, type=type, config=config,
                   sample_period=sample_period, sample_freq=sample_freq, cpus=cpus, pid=pid)

    def describe(self) -> str:
        unit = getattr(self.hook, "period_unit", "")
        rate = (f"{self.sample_freq} Hz" if self.sample_freq
                else f"every {self.sample_period}{unit}")
        return (f"{self.hook} -> {self.pmu} PMU, type {self.type} config {self.config}, "
                f"{rate}, {_cpu_text(self.cpus, self.pid)}")


# --------------------------------------------------------------------------- the family


class PerfEventHook(Hook):
    """A perf event the program runs on at each overflow: the family's shared half.

    The program takes ``struct bpf_perf_event_data *ctx`` (``#include
    <uapi/linux/bpf_perf_event.h>``): the interrupted registers (``ctx->regs``), the
    sample period, the address. Minimum kernel 4.9.
    """

    __slots__ = ()
    cpu: int | None
    pid: int | None

    options: ClassVar[tuple[str, ...]] = ("pid", "cpu")
    attach_via = ("perf_event_open + PERF_EVENT_IOC_SET_BPF, one event per CPU, owned by "
                  "the link (replaces bcc attach_perf_event)")
    bcc_entry = "attach_perf_event"
    stable = True
    overhead = "low"
    min_kernel = (4, 9)
    program_type = "PERF_EVENT"
    program_ctx = "struct bpf_perf_event_data *ctx"
    feature = "perf_software"
    capabilities = caps.TRACING
    #: The perf_event_attr.type and the PMU directory that serves it.
    perf_type: ClassVar[int] = PERF_TYPE_SOFTWARE

    @property
    def period_unit(self) -> str:
        """What a sample period counts, for messages: ``" ns"`` or ``" events"``."""
        _config, name = self._event()
        return " ns" if name in ("cpu-clock", "task-clock") else " events"

    @classmethod
    def _options(cls, body: Body) -> dict[str, int]:
        opts = dict(body.options)
        pid, cpu = opts.get("pid"), opts.get("cpu")
        t = body.t
        if pid is not None and not 0 < pid <= _MAX_PID:
            raise t.error(body.end, len(t.text), f"pid {pid} is out of range",
                          f"a pid is 1..{_MAX_PID}")
        if cpu is not None and cpu > _MAX_CPU:
            raise t.error(body.end, len(t.text), f"cpu {cpu} is out of range",
                          "see /sys/devices/system/cpu/online")
        return opts

    @classmethod
    def _no_libbpf(cls, body: Body) -> None:
        if body.libbpf:
            sep = body.start - 1
            raise body.error(sep, sep + 1,
                             f"libbpf has no SEC() form for {cls.kind} hooks (its "
                             "SEC(\"perf_event\") names no event)",
                             f"write {cls.kind}:{cls.example}")

    # -- what every member answers -----------------------------------------------------

    def _event(self) -> tuple[int, str]:
        """(config, event name)."""
        raise NotImplementedError

    def _sampling(self) -> tuple[int, int]:
        """(sample_period, sample_freq): exactly one is non-zero."""
        raise NotImplementedError

    def _cpus(self) -> tuple[int, ...] | None:
        """The CPUs to open an event on (None: one event following ``pid``)."""
        from ebpfhooks.kernel.pmu import online_cpus

        if self.cpu is not None:
            return (self.cpu,)
        return None if self.pid is not None else online_cpus()

    def _pmu(self) -> str:
        """The PMU that serves the event (raises :class:`NotSupportedError` without one)."""
        from ebpfhooks.kernel.pmu import PMU_DIR, pmus

        if (PMU_DIR / "software").exists() or not PMU_DIR.is_dir():
            return "software"
        raise NotSupportedError(
            f"{self} cannot attach: no software PMU in {PMU_DIR} (PMUs: "
            f"{', '.join(pmus()) or 'none'}); the kernel was built without "
            "CONFIG_PERF_EVENTS", missing="the software PMU (CONFIG_PERF_EVENTS)")

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` on a kernel without software perf events."""
        self._require("software perf events", "the software PMU (CONFIG_PERF_EVENTS)")

    def resolve(self) -> PerfEventResolution:
        """The PMU, type, config, sampling and CPUs of the event, checked on this system.

        >>> Profile("hz", 99).resolve().describe()  # doctest: +SKIP
        'profile:hz:99 -> software PMU, type 1 config 0, 99 Hz, CPUs 0, 1 (one event each)'

        Raises :class:`NotSupportedError` without the PMU (or the event on it, or a rate
        above ``kernel.perf_event_max_sample_rate``), :class:`ProcessNotFoundError` for a
        ``pid`` that does not exist, :class:`HookNotFoundError` for a ``cpu`` that is
        not online (the online ones as candidates).
        """
        from ebpfhooks.kernel.pmu import max_sample_rate, online_cpus

        pmu = self._pmu()
        config, _name = self._event()
        period, freq = self._sampling()
        if self.cpu is not None and self.cpu not in (online := online_cpus()):
            raise HookNotFoundError(
                f"CPU {self.cpu}", where="the online CPUs (/sys/devices/system/cpu/online: "
                f"{', '.join(map(str, online))})",
                candidates=[type(self)._with_cpu(self, c).spec() for c in online[:5]])
        if self.pid is not None:
            import os

            if not os.path.exists(f"/proc/{self.pid}"):
                raise ProcessNotFoundError(str(self.pid), where="this pid namespace (/proc)")
        limit = max_sample_rate()
        if freq and limit is not None and freq > limit:
            raise NotSupportedError(
                f"{self} cannot attach: {freq} Hz is above kernel.perf_event_max_sample_rate "
                f"({limit}; the kernel lowers it by itself when sampling interrupts take too "
                "long, and refuses faster rates with EINVAL)",
                missing=f"a sample rate of at most {limit} Hz",
                alternative=self._at_rate(limit))
        note = None
        if config == _CPU_CLOCK and pmu == "software":
            ns = period or (1_000_000_000 // freq)
            if ns < MIN_CLOCK_PERIOD_NS:
                note = ("the kernel runs cpu-clock at most every 10 us: this period is "
                        "raised to 10 us")
        return PerfEventResolution(self, pmu=pmu, type=self.perf_type, config=config,
                                   sample_period=period, sample_freq=freq,
                                   cpus=self._cpus(), pid=self.pid, note=note)

    def _at_rate(self, hz: int) -> str | None:
        """The same hook at ``hz`` samples a second, where the kind has rates."""
        return None

    @staticmethod
    def _with_cpu(hook: PerfEventHook, cpu: int) -> PerfEventHook:
        raise NotImplementedError

    def info_facts(self, facts: dict[str, Any], text: list[str]) -> None:
        """The PMU (and whether it is there), type and config, the sampling, the CPUs."""
        from ebpfhooks.kernel.pmu import PMU_DIR, pmu_type

        config, name = self._event()
        period, freq = self._sampling()
        try:
            pmu: str | None = self._pmu()
        except NotSupportedError:
            pmu = None
        facts.update({"pmu": pmu, "type": self.perf_type, "config": config, "event": name,
                      "sample_period": period, "sample_freq": freq,
                      "pid": self.pid, "cpu": self.cpu})
        uapi = ("PERF_COUNT_SW_" if self.perf_type == PERF_TYPE_SOFTWARE else
                "PERF_COUNT_HW_") + _UAPI_NAMES[self.perf_type][config]
        kind = "PERF_TYPE_SOFTWARE" if self.perf_type == PERF_TYPE_SOFTWARE else \
            "PERF_TYPE_HARDWARE"
        if pmu is None:
            text.append(f"    PMU: none here ({self._no_pmu_reason()})")
        else:
            sys_type = pmu_type(pmu)
            text.append(f"    PMU: {pmu} ({PMU_DIR / pmu}"
                        + (f", sysfs type {sys_type})" if sys_type is not None else ")"))
        text.append(f"    event: type {self.perf_type} ({kind}), config {config} ({uapi}): "
                    f"{name}")
        text.append("    sampling: " + self._sampling_text(period, freq))
        cpus = self._cpus()
        facts["cpus"] = list(cpus) if cpus is not None else None
        text.append(f"    runs on: {_cpu_text(cpus, self.pid)}"
                    + (f", only while pid {self.pid} (and what it starts) runs"
                       if self.pid is not None and cpus is not None else ""))
        text.append("    program: struct bpf_perf_event_data *ctx (regs, sample_period, "
                    "addr; #include <uapi/linux/bpf_perf_event.h>)")

    def _no_pmu_reason(self) -> str:
        return "no software PMU"

    def _sampling_text(self, period: int, freq: int) -> str:
        raise NotImplementedError

    def _attach_resolved(self, program: Program, resolution: Resolution) -> Attachment:
        from ebpfhooks import _bcc

        assert isinstance(resolution, PerfEventResolution)
        return _bcc.attach_perf_event(
            program.bpf, program.fn_name, resolution.type, resolution.config,
            sample_period=resolution.sample_period, sample_freq=resolution.sample_freq,
            pid=resolution.pid, cpus=resolution.cpus, what=str(self))
