"""Per-event overhead of each hook kind on the running kernel (``ebpfhooks bench``).

docs/hooks.md rates each kind's overhead in words (very low, low, moderate); this
module measures it, the way the kernel selftests' ``bench``
does (tools/testing/selftests/bpf/benchs/bench_trigger.c): a tight trigger loop
runs without and with a minimal counting program attached, over several rounds,
and the program's own per-CPU counter proves every hit. The extra time per event
is the difference of the two loops, per event.

Triggers (a small C program compiled with gcc at first use into
``~/.cache/ebpfhooks/bench``, so the interpreter's own overhead never enters
the loop; it pins itself to one CPU):

- tracepoint ``syscalls:sys_enter_getppid``, raw tracepoint and tp_btf ``sys_enter``
  (filtered to getppid), kprobe and kretprobe on ``sys_getppid``, fentry and fexit
  on its kernel function (``__x64_sys_getppid``, or ``__task_pid_nr_ns``, which it
  calls once, where BTF has no FUNC of it): a loop of ``getppid()`` syscalls;
- uprobe and uretprobe: a loop of calls of ``ehk_bench_target()`` in the trigger;
- xdp (generic/skb mode) and raw_socket: 60-byte frames sent with an AF_PACKET
  socket over a veth pair made for the run (unique names, deleted afterwards);
  the receive path runs in the sender's softirq, so its cost lands in the loop.

The programs count only the trigger's own events (its pid for syscalls, its
EtherType for frames), so other processes cannot inflate the proof. Kinds the
kernel cannot attach (kprobes without ``CONFIG_KPROBES``, fentry/fexit without BPF
trampolines) are reported as not supported, with the reason, and the rest go on.

Needs root, bcc and gcc. Minimum kernel: that of each kind (4.17 for raw
tracepoints, 5.9 for the XDP link used by default).

>>> from ebpfhooks import bench                              # doctest: +SKIP
>>> report = bench.run(kinds=["tracepoint", "uprobe"], rounds=3)   # doctest: +SKIP
>>> print(report.format_table())                           # doctest: +SKIP

From the shell: ``ebpfhooks bench [--kinds K,...] [--rounds N] [--json] [--plot F.png]``
(or ``python -m ebpfhooks.bench``).

The package's modules: :mod:`~ebpfhooks.bench.trigger` (the C trigger and the veth pair),
:mod:`~ebpfhooks.bench.measure` (the counting programs and :func:`run`),
:mod:`~ebpfhooks.bench.report` (:class:`KindResult`, :class:`BenchReport`: table, JSON,
plot) and :mod:`~ebpfhooks.bench.cli` (the ``bench`` command); every name is importable
from ``ebpfhooks.bench``.
"""

from ebpfhooks.bench.cli import add_arguments as add_arguments
from ebpfhooks.bench.cli import main
from ebpfhooks.bench.cli import run_command as run_command
from ebpfhooks.bench.measure import BATCH_EVENTS as BATCH_EVENTS
from ebpfhooks.bench.measure import BATCHES as BATCHES
from ebpfhooks.bench.measure import CLOCKS as CLOCKS
from ebpfhooks.bench.measure import PROGRAM_SOURCE as PROGRAM_SOURCE
from ebpfhooks.bench.measure import parse_kinds as parse_kinds
from ebpfhooks.bench.measure import run
from ebpfhooks.bench.report import DEFAULT_ROUNDS as DEFAULT_ROUNDS
from ebpfhooks.bench.report import KIND_ORDER, BenchReport, KindResult, rating
from ebpfhooks.bench.report import TRIGGERS as TRIGGERS
from ebpfhooks.bench.trigger import BENCH_ETHERTYPE as BENCH_ETHERTYPE
from ebpfhooks.bench.trigger import TARGET_FUNCTION as TARGET_FUNCTION
from ebpfhooks.bench.trigger import TRIGGER_SOURCE as TRIGGER_SOURCE
from ebpfhooks.bench.trigger import build_trigger
from ebpfhooks.bench.trigger import cache_dir as cache_dir

__all__ = [
    "KIND_ORDER",
    "BenchReport",
    "KindResult",
    "build_trigger",
    "main",
    "rating",
    "run",
]
