"""Perf events: :class:`Profile`, :class:`Interval`, :class:`Software`, :class:`Hardware`.

One family (:class:`PerfEventHook`): each hook is a perf event (a PMU's type and config,
a sample period or frequency) on which the program runs at every overflow, one event
per CPU, opened and owned by ebpfhooks (:func:`ebpfhooks.bpfsys.perf_event_attach`, in
place of bcc's ``attach_perf_event``). The timers sample the software PMU's
``cpu-clock``: ``profile`` on every CPU at the rate, ``interval`` on one CPU once per
period; ``software`` and ``hardware`` fire every N events of the kernel's software
events or the CPU's counters, with bpftrace's names, aliases and default periods.
The family's shared half and the spec numbers are in :mod:`ebpfhooks.hooks._perf`.
"""

from __future__ import annotations

import re

from ebpfhooks.errors import NotSupportedError, SpecError
from ebpfhooks.hooks._perf import (
    _CPU_CLOCK,
    _MAX,
    _MAX_CPU,
    _MAX_PID,
    MIN_CLOCK_PERIOD_NS,
    PERF_TYPE_HARDWARE,
    PERF_TYPE_SOFTWARE,
    TIME_UNITS,
    PerfEventHook,
    PerfEventResolution,
    _body_count,
    _optional,
    _options_text,
    _positive,
    parse_count,
    parse_duration,
)
from ebpfhooks.hooks.base import Found, Hook, Pattern
from ebpfhooks.names import WILDCARDS

TYPE_CHECKING = False  # typing is not imported at run time (`ebpfhooks list` starts fast)
if TYPE_CHECKING:
    from typing import ClassVar, Self

    from ebpfhooks.spec import Body

__all__ = ["HARDWARE_EVENTS", "MIN_CLOCK_PERIOD_NS", "PERF_TYPE_HARDWARE",
           "PERF_TYPE_SOFTWARE", "SOFTWARE_EVENTS", "TIME_UNITS", "Hardware", "Interval",
           "PerfCounterHook", "PerfEventHook", "PerfEventResolution", "PerfTimerHook",
           "Profile", "Software", "parse_count", "parse_duration"]

_EVENT_CHAR = r"[a-z0-9-]"  # compiled on first use (re caches it): not at import

#: name -> (config, alias, default period): bpftrace's software events (perf_sw_ids).
SOFTWARE_EVENTS: dict[str, tuple[int, str, int]] = {
    "cpu-clock": (0, "cpu", 1_000_000),
    "task-clock": (1, "", 1),
    "page-faults": (2, "faults", 100),
    "context-switches": (3, "cs", 1_000),
    "cpu-migrations": (4, "", 1),
    "minor-faults": (5, "", 100),
    "major-faults": (6, "", 1),
    "alignment-faults": (7, "", 1),
    "emulation-faults": (8, "", 1),
    "dummy": (9, "", 1),
    "bpf-output": (10, "", 1),
}
#: name -> (config, alias, default period): bpftrace's hardware events (perf_hw_ids).
HARDWARE_EVENTS: dict[str, tuple[int, str, int]] = {
    "cpu-cycles": (0, "cycles", 1_000_000),
    "instructions": (1, "", 1_000_000),
    "cache-references": (2, "", 1_000_000),
    "cache-misses": (3, "", 1_000_000),
    "branch-instructions": (4, "branches", 100_000),
    "branch-misses": (5, "", 100_000),
    "bus-cycles": (6, "", 100_000),
    "frontend-stalls": (7, "", 1_000_000),
    "backend-stalls": (8, "", 1_000_000),
    "ref-cycles": (9, "", 1_000_000),
}
#: The name a CPU PMU lists an event under in sysfs ``events/``, where it differs.
_SYSFS_NAMES = {"frontend-stalls": "stalled-cycles-frontend",
                "backend-stalls": "stalled-cycles-backend"}

# --------------------------------------------------------------------------- timers


class PerfTimerHook(PerfEventHook):
    """``profile`` and ``interval``: cpu-clock at a rate (``hz``) or a period."""

    __slots__ = ("cpu", "pid", "unit", "value")
    _fields = ("unit", "value", "pid", "cpu")
    unit: str
    value: int

    example = "hz:99"
    target_noun = "rate"
    target_shape = "UNIT:N"

    def __init__(self, unit: str, value: int, *, pid: int | None = None,
                 cpu: int | None = None) -> None:
        if unit not in TIME_UNITS:
            raise SpecError(f"{self.kind} unit must be one of {', '.join(TIME_UNITS)}, "
                            f"got {unit!r}")
        scale = TIME_UNITS[unit] or 1
        value = _positive(value, f"{self.kind} {'rate' if unit == 'hz' else 'period'}",
                          _MAX // scale)
        if pid is not None and "pid" not in self.options:
            raise SpecError(f"{self.kind} hooks take no pid: they fire on one CPU whatever "
                            "runs; filter on bpf_get_current_pid_tgid() in the program")
        self._init(unit=unit, value=value, pid=_optional(pid, "pid", 1, _MAX_PID),
                   cpu=_optional(cpu, "cpu", 0, _MAX_CPU))

    @property
    def period_ns(self) -> int | None:
        """The period in ns (None for a rate in ``hz``)."""
        return None if self.unit == "hz" else self.value * TIME_UNITS[self.unit]

    def spec(self) -> str:
        """``KIND:UNIT:N[options]``."""
        return f"{self.kind}:{self.unit}:{self.value}{_options_text(self.pid, self.cpu)}"

    def _target_names(self) -> tuple[str, str]:
        return f"{self.unit}_{self.value}", self.kind

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``UNIT ":" N`` (UNIT one of ``hz``, ``s``, ``ms``, ``us``) or bpftrace's one-part
        ``DURATION``: a number with a suffix ``ns`` (none), ``us``, ``ms``, ``s``, ``m``,
        ``h``, ``d`` (``interval:1s``, ``profile:10ms``), at least 1 us and a whole
        number of us; it becomes the largest unit that holds it exactly (``5m`` is
        ``s:300``). ``99hz`` is not bpftrace's: a rate is ``hz:99``."""
        cls._no_libbpf(body)
        t = body.t
        colon = body.find(":")
        if body.pattern:
            unit_text = t.text[body.start:colon] if colon != -1 else None
            value_text = t.text[colon + 1:body.end] if colon != -1 else t.text[
                body.start:body.end]
            from ebpfhooks.spec import has_wildcard, matcher

            if unit_text is not None and not has_wildcard(unit_text) and \
                    unit_text not in TIME_UNITS:
                raise body.error(body.start, colon, f"unknown {cls.kind} unit {unit_text!r}",
                                 f"expected {', '.join(TIME_UNITS)}")
            unit_ok = matcher(unit_text)
            if unit_ok is not None and not any(unit_ok(u) for u in TIME_UNITS):
                raise body.error(body.start, colon, f"no {cls.kind} unit matches {unit_text!r}")
            if not has_wildcard(value_text):
                start = body.start if colon == -1 else colon + 1
                if colon == -1:
                    cls._duration(body, start, body.end)
                else:
                    _body_count(body, start, body.end, f"{cls.kind} value")
            return Pattern(cls, unit=unit_text, value=value_text)
        opts = cls._options(body)
        if colon == -1:
            unit, value = cls._duration(body, body.start, body.end)
        else:
            unit = t.text[body.start:colon]
            if unit not in TIME_UNITS:
                hint = (f"expected {cls.kind}:hz:N, {cls.kind}:s:N, {cls.kind}:ms:N or "
                        f"{cls.kind}:us:N")
                if unit == "ns":
                    hint = f"nanoseconds are written without a unit: {cls.kind}:N (N >= 1000)"
                raise body.error(body.start, max(colon, body.start + 1),
                                 f"unknown {cls.kind} unit {unit!r}", hint)
            if body.find(":", colon + 1) != -1:
                extra = body.find(":", colon + 1)
                raise body.error(extra, extra + 1, "too many ':' parts",
                                 f"expected {cls.kind}:UNIT:N")
            value = _body_count(body, colon + 1, body.end,
                                f"{cls.kind} {'rate' if unit == 'hz' else 'period'}")
            scale = TIME_UNITS[unit] or 1
            if value > _MAX // scale:
                raise body.error(colon + 1, body.end, f"{value} {unit} is out of range")
        try:
            return cls(unit, value, pid=opts.get("pid"), cpu=opts.get("cpu"))
        except SpecError as err:
            raise body.error(body.end, len(t.text), str(err)) from None

    @classmethod
    def _duration(cls, body: Body, start: int, end: int) -> tuple[str, int]:
        text = body.t.text[start:end]
        try:
            ns = parse_duration(text)
        except ValueError as err:
            hint = "e.g. 1s, 100ms, 500us, or UNIT:N"
            if text.endswith("hz"):
                hint = f"a rate is written {cls.kind}:hz:{text[:-2] or 'N'}"
            raise body.error(start, end, f"{cls.kind} time: {err}", hint) from None
        if ns < 1_000:
            raise body.error(start, end, f"{cls.kind} time {text!r} is {ns} ns: the least is "
                             "1 us (1000)", f"e.g. {cls.kind}:us:1")
        if ns % 1_000:
            raise body.error(start, end, f"{cls.kind} time {text!r} is not a whole number of "
                             "microseconds (bpftrace would cut it down)",
                             f"write {cls.kind}:us:{ns // 1_000} or {cls.kind}:us:"
                             f"{ns // 1_000 + 1}")
        for unit in ("s", "ms", "us"):
            if ns % TIME_UNITS[unit] == 0:
                return unit, ns // TIME_UNITS[unit]
        raise AssertionError(ns)  # pragma: no cover  (us always divides)

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """A timer has no list of names: a pattern without wildcards is its one hook;
        with wildcards, nothing (a note says what the grammar takes)."""
        from ebpfhooks.spec import has_wildcard

        unit, value = pattern["unit"], pattern["value"]
        found.sources[cls.kind] = "the spec itself (timers are not listed)"
        if (unit is None or not has_wildcard(unit)) and value and not has_wildcard(value):
            hook = Hook.from_spec(f"{cls.kind}:{unit}:{value}" if unit else
                                  f"{cls.kind}:{value}")
            assert isinstance(hook, cls)
            found.add(hook.spec(), cls, hook.unit, hook.value)
            return
        found.note(f"{cls.kind} hooks are not listed: give the rate, {cls.kind}:hz:N, or "
                   f"the period, {cls.kind}:s|ms|us:N or {cls.kind}:1s")

    @staticmethod
    def _with_cpu(hook: PerfEventHook, cpu: int) -> PerfEventHook:
        assert isinstance(hook, PerfTimerHook)
        return type(hook)(hook.unit, hook.value, pid=hook.pid, cpu=cpu)

    def _event(self) -> tuple[int, str]:
        return _CPU_CLOCK, "cpu-clock"

    def _sampling(self) -> tuple[int, int]:
        if self.unit == "hz":
            return 0, self.value
        return self.value * TIME_UNITS[self.unit], 0

    def _at_rate(self, hz: int) -> str | None:
        return type(self)("hz", hz, pid=self.pid, cpu=self.cpu).spec()

    def _sampling_text(self, period: int, freq: int) -> str:
        if freq:
            return (f"{freq} times a second (sample_freq {freq}; the kernel sets the "
                    f"period, {1_000_000_000 // freq} ns)")
        return f"every {period} ns (sample_period {period})"


class Profile(PerfTimerHook):
    """A timer on every CPU: ``profile:hz:N``, ``profile:s|ms|us:N``, ``profile:1ms``.

    >>> str(Profile("hz", 99)), str(Hook.from_spec("profile:10ms"))
    ('profile:hz:99', 'profile:ms:10')

    The software PMU's cpu-clock, one event per online CPU: the program runs on each CPU
    at the rate, interrupting whatever runs there (sample stacks, count comms). Options
    ``[pid=N]`` (only while that process runs) and ``[cpu=N]``. Minimum kernel 4.9.
    """

    __slots__ = ()
    kind = "profile"
    bcc_prefix = "profile"
    aliases = ("p",)
    hooks = "a timer on every CPU (the software PMU's cpu-clock)"
    fires = "on every CPU at the rate, interrupting whatever runs there"


class Interval(PerfTimerHook):
    """A timer on one CPU: ``interval:s:N``, ``interval:ms|us|hz:N``, ``interval:1s``.

    >>> str(Interval("s", 1)), str(Hook.from_spec("i:500ms"))
    ('interval:s:1', 'interval:ms:500')

    cpu-clock on the first online CPU (or ``[cpu=N]``): the program runs once per
    period, whatever runs (print and clear maps, as bpftrace's ``interval`` does).
    Minimum kernel 4.9.
    """

    __slots__ = ()
    kind = "interval"
    bcc_prefix = "interval"
    aliases = ("i",)
    options = ("cpu",)
    example = "s:1"
    attach_via = ("perf_event_open + PERF_EVENT_IOC_SET_BPF on one CPU, owned by the link "
                  "(replaces bcc attach_perf_event)")
    hooks = "a timer on one CPU (the software PMU's cpu-clock)"
    fires = "once per period, on one CPU"

    def _cpus(self) -> tuple[int, ...]:
        from ebpfhooks.kernel.pmu import online_cpus

        return (self.cpu,) if self.cpu is not None else online_cpus()[:1]

    def _sampling_text(self, period: int, freq: int) -> str:
        if freq:
            return f"{freq} times a second (sample_freq {freq})"
        return f"every {period} ns (sample_period {period})"


# --------------------------------------------------------------------------- counters


class PerfCounterHook(PerfEventHook):
    """``software`` and ``hardware``: every N events of one named event."""

    __slots__ = ("count", "cpu", "event", "pid")
    _fields = ("event", "count", "pid", "cpu")
    event: str
    count: int | None

    target_noun = "event"
    target_shape = "EVENT[:N]"
    events: ClassVar[dict[str, tuple[int, str, int]]] = {}

    def __init__(self, event: str, count: int | None = None, *, pid: int | None = None,
                 cpu: int | None = None) -> None:
        if not isinstance(event, str):
            raise SpecError(f"{self.kind} event must be a str, got {type(event).__name__} "
                            f"{event!r}")
        name = self._canonical(event)
        if name is None:
            raise SpecError(self._unknown(event), spec=event, column=0,
                            length=max(1, len(event)))
        self._init(event=name,
                   count=None if count is None else _positive(count, f"{self.kind} count"),
                   pid=_optional(pid, "pid", 1, _MAX_PID),
                   cpu=_optional(cpu, "cpu", 0, _MAX_CPU))

    @classmethod
    def _canonical(cls, word: str) -> str | None:
        if word in cls.events:
            return word
        return next((n for n, (_, alias, _) in cls.events.items() if alias and alias == word),
                    None)

    @classmethod
    def _unknown(cls, word: str) -> str:
        from ebpfhooks._util import close_matches

        names = [*cls.events, *(a for _, a, _ in cls.events.values() if a)]
        close = close_matches(word, names)
        return (f"{word!r} is not a {cls.kind} event" + (f"; closest: {', '.join(close)}"
                                                         if close else "")
                + f" (ebpfhooks list '{cls.kind}:*' lists them)")

    @property
    def period(self) -> int:
        """The sample period: ``count``, else bpftrace's default for the event."""
        return self.count if self.count is not None else self.events[self.event][2]

    def spec(self) -> str:
        """``KIND:EVENT[:N][options]`` with the event's full name."""
        count = f":{self.count}" if self.count is not None else ""
        return f"{self.kind}:{self.event}{count}{_options_text(self.pid, self.cpu)}"

    def _target_names(self) -> tuple[str, str]:
        return self.event, self.event

    @classmethod
    def parse_target(cls, body: Body) -> Self | Pattern:
        """``EVENT [":" [N]]``: a name or alias of bpftrace's (``page-faults`` or
        ``faults``); N events between samples (bpftrace's default for the event when left
        out, or after a bare ``:``)."""
        cls._no_libbpf(body)
        t = body.t
        colon = body.find(":")
        name_end = body.end if colon == -1 else colon
        word = t.name(body.start, name_end, _check_event_chars)
        if colon != -1 and body.find(":", colon + 1) != -1:
            extra = body.find(":", colon + 1)
            raise body.error(extra, extra + 1, "too many ':' parts",
                             f"expected {cls.kind}:EVENT[:N]")
        count_text = t.text[colon + 1:body.end] if colon != -1 else ""
        if body.pattern:
            from ebpfhooks.spec import has_wildcard

            if count_text and not has_wildcard(count_text):
                _body_count(body, colon + 1, body.end, f"{cls.kind} count")
            return Pattern(cls, event=word, count=count_text or None)
        if cls._canonical(word) is None:
            raise body.error(body.start, name_end, cls._unknown(word))
        opts = cls._options(body)
        count = _body_count(body, colon + 1, body.end, f"{cls.kind} count") \
            if count_text else None
        return cls(word, count, pid=opts.get("pid"), cpu=opts.get("cpu"))

    @classmethod
    def list_matching(cls, pattern: Pattern, found: Found) -> None:
        """bpftrace's event table: every event whose name or alias matches (listed
        under its name), with the pattern's count if it gives one."""
        from ebpfhooks.spec import has_wildcard, matcher

        ok = matcher(pattern["event"])
        assert ok is not None
        count_text = pattern["count"]
        count = parse_count(count_text) if count_text and not has_wildcard(count_text) \
            else None
        if not cls._listable(found):
            return
        for name, (_, alias, _) in cls.events.items():
            if ok(name) or (alias and ok(alias)):
                hook = cls(name, count)
                found.add(hook.spec(), cls, name, count)

    @classmethod
    def _listable(cls, found: Found) -> bool:
        found.sources[cls.kind] = "bpftrace's software events (the uapi's perf_sw_ids)"
        return True

    @staticmethod
    def _with_cpu(hook: PerfEventHook, cpu: int) -> PerfEventHook:
        assert isinstance(hook, PerfCounterHook)
        return type(hook)(hook.event, hook.count, pid=hook.pid, cpu=cpu)

    def _event(self) -> tuple[int, str]:
        return self.events[self.event][0], self.event

    def _sampling(self) -> tuple[int, int]:
        return self.period, 0

    def _sampling_text(self, period: int, freq: int) -> str:
        given = "given" if self.count is not None else "bpftrace's default"
        return f"every {period}{self.period_unit} (sample_period, {given})"


def _check_event_chars(name: str) -> tuple[int, int, str] | None:
    if not name:
        return (0, 1, "empty event name")
    for i, ch in enumerate(name):
        if ch in WILDCARDS:
            return (i, 1, f"wildcard {ch!r} in a single-hook spec: a hook names exactly one "
                    "event; list them with `ebpfhooks list 'KIND:*'`")
        if not re.match(_EVENT_CHAR, ch):
            return (i, 1, f"character {ch!r} cannot be in an event name (a-z, 0-9, '-')")
    return None


class Software(PerfCounterHook):
    """A kernel software event: ``software:EVENT[:N]`` (``software:faults:100``).

    >>> str(Software("faults", 100)), Software("cs").period
    ('software:page-faults:100', 1000)

    The program runs every N events (bpftrace's default period when N is left out) of
    the software PMU's event, on every CPU, or ``[pid=N]`` one process, ``[cpu=N]`` one
    CPU. Events and aliases: cpu-clock (cpu), task-clock, page-faults (faults),
    context-switches (cs), cpu-migrations, minor-faults, major-faults,
    alignment-faults, emulation-faults, dummy, bpf-output. Minimum kernel 4.9.
    """

    __slots__ = ()
    kind = "software"
    bcc_prefix = "software"
    aliases = ("s",)
    example = "page-faults:100"
    hooks = "kernel software event (page faults, context switches, CPU clock ...)"
    fires = "every N times the event happens"
    events = SOFTWARE_EVENTS


class Hardware(PerfCounterHook):
    """A CPU hardware counter: ``hardware:EVENT[:N]`` (``hardware:cache-misses:1e6``).

    >>> str(Hardware("cycles")), Hardware("branches").period
    ('hardware:cpu-cycles', 100000)

    The program runs every N counted events of the CPU PMU (cycles, instructions, cache
    and branch misses ...), on every CPU or as the options say. Needs a CPU PMU: most
    virtual machines have none, and then attaching raises :class:`NotSupportedError`
    naming ``software:cpu-clock``. Minimum kernel 4.9.
    """

    __slots__ = ()
    kind = "hardware"
    bcc_prefix = "hardware"
    aliases = ("h",)
    example = "cache-misses:1000000"
    hooks = "CPU hardware counter (cycles, instructions, cache misses ...)"
    fires = "every N counted events"
    feature = "perf_hardware"
    perf_type = PERF_TYPE_HARDWARE
    events = HARDWARE_EVENTS

    def _alternative(self) -> str:
        return Software("cpu-clock", pid=self.pid, cpu=self.cpu).spec()

    def check_supported(self) -> None:
        """Raise :class:`NotSupportedError` naming ``software:cpu-clock`` where the
        kernel has no hardware perf events (no CPU PMU)."""
        self._require("hardware perf events", "a CPU PMU (hardware perf events)",
                      self._alternative)

    def _no_pmu_reason(self) -> str:
        from ebpfhooks.kernel.pmu import PMU_DIR

        return f"no CPU PMU in {PMU_DIR}"

    def _pmu(self) -> str:
        """The CPU PMU, which must list the event where it lists events (x86 does)."""
        from ebpfhooks.kernel.pmu import PMU_DIR, cpu_pmu, pmu_event_names, pmus

        pmu = cpu_pmu()
        if pmu is None:
            raise NotSupportedError(
                f"{self} cannot attach: no CPU PMU in {PMU_DIR} (PMUs: "
                f"{', '.join(pmus()) or 'none'}): this machine gives the kernel no hardware "
                "counters (most virtual machines do not)",
                missing="a CPU PMU (hardware perf events)", alternative=self._alternative())
        listed = pmu_event_names(pmu)
        want = _SYSFS_NAMES.get(self.event, self.event)
        if pmu.startswith("cpu") and listed is not None and want not in listed:
            # x86 lists exactly the generic events its CPU maps (events_sysfs_show)
            ours = {_SYSFS_NAMES.get(n, n): n for n in HARDWARE_EVENTS}
            has = sorted(ours[n] for n in listed if n in ours)
            raise NotSupportedError(
                f"{self} cannot attach: the CPU PMU {pmu!r} has no {want} event "
                f"({PMU_DIR / pmu / 'events'} does not list it); the hardware events it "
                f"has: {', '.join(has) or 'none'}",
                missing=f"the {self.event} counter on this CPU",
                alternative=self._alternative())
        return pmu

    @classmethod
    def _listable(cls, found: Found) -> bool:
        from ebpfhooks.kernel.pmu import PMU_DIR, cpu_pmu

        found.sources[cls.kind] = "bpftrace's hardware events (the uapi's perf_hw_ids)"
        if cpu_pmu() is not None or found.include_unsupported:
            return True
        found.note(f"hardware hooks not listed: no CPU PMU in {PMU_DIR} (no hardware "
                   "counters here); `ebpfhooks list --all` (include_unsupported=True) lists "
                   "them")
        return False
