"""Reproduce every number in docs/performance.md in one command (``make bench``).

Run as root: ``.venv/bin/python bench/run_all.py [--quick] [--plot docs/bench-overhead.png]``.

1. ``ebpfhooks bench`` (:mod:`ebpfhooks.bench`) twice, and how far the two runs are
   apart per kind (the repeatability goal is 15% on an idle machine);
2. ``bench/bench_attach.py``: attach/detach cost against bcc, one hook and wildcards;
3. ``bench/bench_memory.py``: peak RSS against bcc and bpftrace, kallsyms held once;
4. ``bench/bench_elf.py`` and ``bench/bench_discover.py`` (when present): uprobe
   resolution against bcc's resolver, listing against ``bpftrace -l``;
5. ``ebpfhooks bench`` inside the VM tier's kernel (Debian's, with kprobes), booted by
   ``tests/vmtier.py run`` under qemu software emulation (``--no-vm`` skips it): every
   kind there, kprobe and kretprobe included; then ``bench/bench_kprobe_wild.py`` there
   (wildcard kprobes against bcc's ``event_re``, ~8 minutes). Emulated CPUs are many
   times slower than real ones, so compare the kinds with each other there, not with
   the host.

``--quick`` uses fewer rounds and skips the 1000-function wildcard (detaching 1000
uprobes takes minutes on a kernel whose uprobe unregister waits for RCU grace periods).
``--json FILE`` also writes every result as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ebpfhooks import bench  # noqa: E402


def _section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _script(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / name), *args], cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"{name} failed ({proc.returncode}):\n{proc.stderr.strip()[-2000:]}"
    return proc.stdout.rstrip()


def agreement(first: bench.BenchReport, second: bench.BenchReport) -> dict[str, float]:
    """Per kind: |a - b| / mean(a, b) of the two runs' extra ns per event."""
    out = {}
    for a, b in zip(first.results, second.results, strict=True):
        if a.overhead_ns is None or b.overhead_ns is None:
            continue
        mean = (a.overhead_ns + b.overhead_ns) / 2
        out[a.kind] = abs(a.overhead_ns - b.overhead_ns) / mean if mean else 0.0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, no N=1000")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart of the first bench run")
    parser.add_argument("--json", metavar="FILE", help="write every result as JSON too")
    parser.add_argument("--no-vm", action="store_true", help="skip the VM kernel's bench")
    args = parser.parse_args()
    rounds = 7 if args.quick else None
    results: dict[str, Any] = {}

    _section("ebpfhooks bench: extra ns per event, two runs of "
             f"{rounds or 'the default'} rounds")
    runs = []
    for i in (1, 2):
        report = bench.run(rounds=rounds)
        runs.append(report)
        print(f"-- run {i}\n{report.format_table()}", flush=True)
    agree = agreement(*runs)
    print("\nrun 1 vs run 2, |a-b|/mean of the extra ns per event: " +
          ", ".join(f"{k} {v:.0%}" for k, v in agree.items()))
    results["overhead"] = [r.to_dict() for r in runs]
    results["overhead_agreement"] = agree
    if args.plot:
        runs[0].plot(args.plot)
        print(f"plot written to {args.plot}")

    _section("attach cost against bcc (bench/bench_attach.py)")
    attach_args = ["--json", "--sizes", "10,100" if args.quick else "10,100,1000"]
    out = _script("bench_attach.py", *attach_args)
    try:
        results["attach"] = json.loads(out)
        from bench_attach import format_result as attach_table

        print(attach_table(results["attach"]))
    except (json.JSONDecodeError, ImportError):
        print(out)

    _section("memory (bench/bench_memory.py)")
    out = _script("bench_memory.py", "--json")
    try:
        results["memory"] = json.loads(out)
        from bench_memory import format_result as memory_table

        print(memory_table(results["memory"]))
    except (json.JSONDecodeError, ImportError):
        print(out)

    _section("uprobe resolution against bcc (bench/bench_elf.py)")
    results["elf"] = _script("bench_elf.py")
    print(results["elf"])
    if (REPO / "bench" / "bench_discover.py").exists():
        _section("listing against bpftrace -l (bench/bench_discover.py)")
        results["discover"] = _script("bench_discover.py")
        print(results["discover"])
    vmtier = REPO / "tests" / "vmtier.py"
    if not args.no_vm and vmtier.exists():
        _section("ebpfhooks bench in the VM tier's kernel (tests/vmtier.py, qemu TCG)")
        proc = subprocess.run(
            [sys.executable, str(vmtier), "run", "--",
             str(Path(sys.executable)), "-m", "ebpfhooks.bench", "--rounds", "3",
             "--scale", "0.1"], cwd=REPO, capture_output=True, text=True)
        results["vm"] = proc.stdout + (proc.stderr[-2000:] if proc.returncode else "")
        print(results["vm"].rstrip())
        _section("wildcard kprobes against bcc event_re in the VM tier's kernel "
                 "(bench/bench_kprobe_wild.py)")
        proc = subprocess.run(
            [sys.executable, str(vmtier), "run", "--", str(Path(sys.executable)),
             str(REPO / "bench" / "bench_kprobe_wild.py")]
            + (["--sizes", "10,100"] if args.quick else []),
            cwd=REPO, capture_output=True, text=True)
        # libbcc prints a line per function the kernel refuses: keep the table
        out = [line for line in proc.stdout.splitlines() if "cannot attach kprobe" not in line]
        results["kprobe_wildcard"] = "\n".join(out)
        print(results["kprobe_wildcard"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "bench"))
    sys.exit(main())
