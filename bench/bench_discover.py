#!/usr/bin/env python3
"""Whole-command speed of `ebpfhooks list` against `bpftrace -l`, side by side in one run.

    .venv/bin/python bench/bench_discover.py [--rounds 15] [--json]

Each round runs, in alternating order, `ebpfhooks list PATTERN` (a fresh process, the
installed console script) and `bpftrace -l PATTERN`, for each pattern; the medians and
the ratio ebpfhooks/bpftrace are printed (below 1.0: ebpfhooks is faster). Also
measures `import ebpfhooks` in a fresh interpreter (and checks it imports neither bcc
nor the kallsyms module). Needs root (both tools read tracefs) and bpftrace.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PATTERNS = ("tracepoint:syscalls:*", "*execve*")
ROOT = Path(__file__).resolve().parent.parent


#: As a user runs it: byte-code caches written and used (some shells set this to 1).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env=ENV)
    return time.perf_counter() - start


def _import_cost(python: str) -> tuple[float, bool]:
    code = ("import sys, time; t = time.perf_counter(); import ebpfhooks; "
            "d = time.perf_counter() - t; "
            "print(d, 'bcc' in sys.modules or 'ebpfhooks.kernel.kallsyms' in sys.modules)")
    runs = []
    heavy = False
    for _ in range(9):
        out = subprocess.run([python, "-c", code], capture_output=True, text=True,
                             check=True, env=ENV).stdout.split()
        runs.append(float(out[0]))
        heavy = heavy or out[1] == "True"
    return statistics.median(runs), heavy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    bpftrace = shutil.which("bpftrace")
    if bpftrace is None:
        print("bench_discover: bpftrace is not installed (apt-get install bpftrace)",
              file=sys.stderr)
        return 1
    exe = Path(sys.executable).parent / "ebpfhooks"
    ours = [str(exe)] if exe.exists() else [sys.executable, "-m", "ebpfhooks"]
    results = []
    for pattern in PATTERNS:
        mine: list[float] = []
        theirs: list[float] = []
        # warm the page cache and tracefs dentries for both tools
        _time([*ours, "list", pattern])
        _time([bpftrace, "-l", pattern])
        for i in range(args.rounds):
            pair = [(mine, [*ours, "list", pattern]), (theirs, [bpftrace, "-l", pattern])]
            for bucket, argv in (pair if i % 2 == 0 else pair[::-1]):
                bucket.append(_time(argv))
        m, t = statistics.median(mine), statistics.median(theirs)
        results.append({"pattern": pattern, "ebpfhooks_ms": round(m * 1e3, 1),
                        "bpftrace_ms": round(t * 1e3, 1), "ratio": round(m / t, 2)})
    imp, heavy = _import_cost(sys.executable)
    report = {"rounds": args.rounds, "list": results,
              "import_ebpfhooks_ms": round(imp * 1e3, 1),
              "import_loads_bcc_or_kallsyms": heavy}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'command':<44} {'ebpfhooks':>10} {'bpftrace -l':>12} {'ratio':>6}")
    for r in results:
        print(f"{'list ' + repr(r['pattern']):<44} {r['ebpfhooks_ms']:>8.1f}ms "
              f"{r['bpftrace_ms']:>10.1f}ms {r['ratio']:>6.2f}")
    print(f"import ebpfhooks: {report['import_ebpfhooks_ms']} ms "
          f"(imports bcc or kallsyms: {heavy})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
