"""The bench's results: per-kind figures (:class:`KindResult`), the table and the plot.

:class:`KindResult` holds one kind's rounds of ``(baseline, hooked)`` ns per event and the
program's own count of the events; :class:`BenchReport` all of them with the machine's
facts, as JSON (:meth:`~BenchReport.to_dict`), a text table
(:meth:`~BenchReport.format_table`) or a bar chart (:meth:`~BenchReport.plot`)::

    >>> r = KindResult("uprobe", "uprobe:/t:f", "call", rounds=[(0.5, 250.5), (1.5, 249.5)])
    >>> r.overhead_ns, r.spread_ns
    (249.0, (248.0, 250.0))
"""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass, field
from typing import Any

from ebpfhooks.errors import NotSupportedError

__all__ = ["DEFAULT_ROUNDS", "KIND_ORDER", "TRIGGERS", "BenchReport", "KindResult", "rating"]

#: The kinds the bench measures, in the registry's order (ebpfhooks.hooks.KINDS).
KIND_ORDER = ("kprobe", "kretprobe", "tracepoint", "rawtracepoint", "xdp", "uprobe",
              "uretprobe", "raw_socket", "fentry", "fexit", "tp_btf")


def rating(kind: str) -> str:
    """The overhead rating of docs/hooks.md for ``kind`` (the kind's ``overhead``).

    >>> rating("tracepoint")
    'moderate'
    """
    from ebpfhooks.hooks import kind_of

    found = kind_of(kind)
    assert found is not None, kind
    return found.overhead


#: What each kind's trigger does, per event.
TRIGGERS: dict[str, str] = {
    "kprobe": "getppid() syscall",
    "kretprobe": "getppid() syscall",
    "tracepoint": "getppid() syscall",
    "rawtracepoint": "getppid() syscall",
    "xdp": "60-byte frame over veth",
    "uprobe": "call of a C function",
    "uretprobe": "call of a C function",
    "raw_socket": "60-byte frame over veth",
    "fentry": "getppid() syscall",
    "fexit": "getppid() syscall",
    "tp_btf": "getppid() syscall",
}

#: Rounds per kind by default, by trigger. The median of many short rounds repeats
#: within 3-9% on a quiet machine; the median of 5-7 long rounds did not (on this
#: 2-vCPU VM a syscall's cost jumps between ~215 and ~290 ns, and a frame's receive
#: softirq now and then runs in ksoftirqd). Packets are the noisiest (a few hundred ns
#: on a ~2.5 us path), calls the least.
DEFAULT_ROUNDS = {"syscall": 41, "call": 21, "send": 81}


@dataclass
class KindResult:
    """The measured overhead of one hook kind (per event, in nanoseconds).

    ``rounds`` holds one ``(baseline, hooked)`` pair of ns per event per round
    (each the median of the round's timed batches); the figures are medians over
    rounds; ``hits``/``expected`` is the BPF program's own count against
    the events triggered while attached; ``clock`` how batches were timed.
    """

    kind: str
    spec: str
    trigger: str
    supported: bool = True
    reason: str | None = None
    events_per_batch: int = 0
    batches: int = 0
    rounds: list[tuple[float, float]] = field(default_factory=list)
    hits: int = 0
    expected: int = 0
    clock: str = "cpu"

    @property
    def rating(self) -> str:
        """The kind's overhead rating in docs/hooks.md, e.g. ``'moderate'``."""
        return rating(self.kind)

    @property
    def proven(self) -> bool:
        """True when the program counted exactly the events triggered while attached."""
        return self.supported and self.expected > 0 and self.hits == self.expected

    def _overheads(self) -> list[float]:
        return [h - b for b, h in self.rounds]

    @property
    def baseline_ns(self) -> float | None:
        """Median ns per event of the loop without the hook."""
        return statistics.median(b for b, _ in self.rounds) if self.rounds else None

    @property
    def hooked_ns(self) -> float | None:
        """Median ns per event of the loop with the hook attached."""
        return statistics.median(h for _, h in self.rounds) if self.rounds else None

    @property
    def overhead_ns(self) -> float | None:
        """Median over rounds of the extra ns per event the hook adds."""
        return statistics.median(self._overheads()) if self.rounds else None

    @property
    def spread_ns(self) -> tuple[float, float] | None:
        """(min, max) over rounds of the extra ns per event."""
        o = self._overheads()
        return (min(o), max(o)) if o else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every figure (ns per event, events per second)."""
        base, hooked = self.baseline_ns, self.hooked_ns
        spread = self.spread_ns
        return {
            "kind": self.kind,
            "spec": self.spec,
            "trigger": self.trigger,
            "rating": self.rating,
            "supported": self.supported,
            "reason": self.reason,
            "events_per_batch": self.events_per_batch,
            "batches": self.batches,
            "clock": self.clock,
            "rounds": [{"baseline_ns": b, "hooked_ns": h} for b, h in self.rounds],
            "baseline_ns": base,
            "hooked_ns": hooked,
            "overhead_ns": self.overhead_ns,
            "overhead_min_ns": spread[0] if spread else None,
            "overhead_max_ns": spread[1] if spread else None,
            "baseline_events_per_s": 1e9 / base if base else None,
            "hooked_events_per_s": 1e9 / hooked if hooked else None,
            "hits": self.hits,
            "expected": self.expected,
            "proven": self.proven,
        }


@dataclass
class BenchReport:
    """Results for every kind asked for, with the facts of the machine they were taken on."""

    kernel: str
    cpus: int
    cpu: int | None
    rounds: int | None
    scale: float
    results: list[KindResult]
    clock: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``ebpfhooks bench --json`` prints it)."""
        return {
            "kernel": self.kernel,
            "machine": platform.machine(),
            "cpus": self.cpus,
            "pinned_cpu": self.cpu,
            "rounds": self.rounds,
            "scale": self.scale,
            "clock": self.clock,
            "kinds": [r.to_dict() for r in self.results],
        }

    def rounds_text(self) -> str:
        """The rounds run per kind, e.g. ``'41 (syscalls), 21 (calls), 81 (packets)'``."""
        if self.rounds is not None:
            return str(self.rounds)
        return ", ".join(f"{DEFAULT_ROUNDS[m]} ({w})" for m, w in
                         (("syscall", "syscalls"), ("call", "calls"), ("send", "packets")))

    def format_table(self) -> str:
        """A text table: ns per event (median, min-max), events/s, the counter's proof."""
        head = ("kind", "rating", "trigger", "base ns", "hooked ns", "+ns/event", "(min..max)",
                "events/s base -> hooked", "hits")
        rows: list[tuple[str, ...]] = [head]
        notes = []
        for r in self.results:
            if not r.supported:
                rows.append((r.kind, r.rating, r.trigger, "-", "-", "n/a", "", "", ""))
                notes.append(f"{r.kind}: not supported here: {r.reason}")
                continue
            base, hooked, over, spread = r.baseline_ns, r.hooked_ns, r.overhead_ns, r.spread_ns
            assert base is not None and hooked is not None and over is not None and spread
            rows.append((
                r.kind, r.rating, r.trigger, f"{base:.1f}", f"{hooked:.1f}", f"{over:+.1f}",
                f"({spread[0]:.1f}..{spread[1]:.1f})",
                f"{_rate(1e9 / base)} -> {_rate(1e9 / hooked)}",
                f"{r.hits}/{r.expected}" + ("" if r.proven else " MISMATCH"),
            ))
        widths = [max(_width(row[i]) for row in rows) for i in range(len(head))]
        lines = [
            "  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row))
            .rstrip() for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        footer = (f"kernel {self.kernel}, {self.cpus} CPUs, trigger pinned to CPU {self.cpu}, "
                  f"{self.rounds_text()} rounds, {self.clock} time; +ns/event = hooked - base, "
                  "median over rounds")
        return "\n".join([*lines, "", footer, *notes])

    def plot(self, path: str | os.PathLike[str]) -> None:
        """Write a bar chart of the extra ns per event (needs ``pip install ebpfhooks[plot]``).

        Raises :class:`ebpfhooks.NotSupportedError` when matplotlib is missing.
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise NotSupportedError(
                "--plot needs matplotlib, which is not installed: "
                "pip install 'ebpfhooks[plot]' (or pip install matplotlib)",
                missing="matplotlib",
            ) from err
        done = [r for r in self.results if r.supported and r.rounds]
        fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(self.results), 2) + 1.2), dpi=80)
        names = [f"{r.kind} ({r.rating})" for r in self.results]
        values = [r.overhead_ns or 0.0 for r in self.results]
        lo = [max(0.0, (r.overhead_ns or 0) - (r.spread_ns or (0, 0))[0]) for r in self.results]
        hi = [max(0.0, (r.spread_ns or (0, 0))[1] - (r.overhead_ns or 0)) for r in self.results]
        ys = list(range(len(self.results)))
        ax.barh(ys, values, xerr=[lo, hi], color="#4c72b0", capsize=3)
        ax.set_yticks(ys)
        ax.set_yticklabels(names)
        ax.invert_yaxis()
        top = max([v + h for v, h in zip(values, hi, strict=True)] or [1.0])
        for y, r, v, h in zip(ys, self.results, values, hi, strict=True):
            label = f"{r.overhead_ns:+.0f} ns" if r in done and r.overhead_ns is not None \
                else "not supported on this kernel"
            ax.text(v + h if r in done else 0, y, "  " + label, va="center", fontsize=8)
        ax.set_xlim(0, top * 1.3)
        ax.set_xlabel("extra ns per event (median over rounds, bars: min..max)")
        ax.set_title(f"Hook overhead, kernel {self.kernel}", fontsize=10)
        fig.tight_layout()
        fig.savefig(os.fspath(path))
        plt.close(fig)


def _rate(per_s: float) -> str:
    return f"{per_s / 1e6:.2f}M/s" if per_s >= 1e6 else f"{per_s / 1e3:.0f}k/s"


def _width(text: str) -> int:
    # CJK characters take two columns in a terminal
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text)
