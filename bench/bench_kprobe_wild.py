#!/usr/bin/env python3
"""Wildcard kprobes: ebpfhooks against bcc's ``attach_kprobe(event_re=...)``, side by side.

Needs a kernel with kprobes (run it in the VM tier's kernel)::

    .venv/bin/python tests/vmtier.py run -- .venv/bin/python bench/bench_kprobe_wild.py

For sizes near N = 10, 100, 1000 a name prefix is picked from this kernel's traceable
functions (the prefix whose match count is nearest N), and each side attaches one
counting-free program to every function it matches, then detaches them all:

- ebpfhooks: ``ebpfhooks.expand("kprobe:PREFIX*").attach(prog)``, ``group.detach()``;
- bcc: ``bpf.attach_kprobe(event_re="^PREFIX.*$", fn_name=...)``, then
  ``bpf.detach_kprobe(event=name)`` for each function bcc matched (bcc has no
  ``event_re`` detach).

The two tools choose their sets by their own rules (bcc skips a few name families), so
both counts are printed and the ratio is of the time per function. Sides alternate,
runs up to 100 functions are repeated (``--runs``), larger ones run once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("BCC_PROBE_LIMIT", "5000")

import ebpfhooks  # noqa: E402
from ebpfhooks import Program  # noqa: E402

PROGRAM = "int ehk_wild(struct pt_regs *ctx) { return 0; }"
CANDIDATES = (
    "security_file_", "security_inode_", "vfs_", "tcp_", "udp_", "ip_", "sock_", "dev_",
    "blk_", "pci_", "acpi_", "kmem_", "page_", "mm_", "do_", "net", "ext4_", "sys_", "x86_",
    "task_", "sched_", "cgroup_", "kernfs_", "sysfs_", "proc_", "irq_", "cpu", "__x64_sys_",
    "s", "p", "d", "i", "n", "a", "t", "x", "k", "m", "b", "c", "r", "e", "f", "g", "h",
)


def pick(targets: list[int]) -> list[tuple[int, str, int]]:
    """(target, prefix, count) with the prefix whose ebpfhooks count is nearest each target."""
    import math

    funcs = [h.split(":")[-1] for h in ebpfhooks.list_hooks("kprobe:*")]
    counts = {p: sum(1 for f in funcs if f.startswith(p)) for p in CANDIDATES}
    out = []
    for n in targets:
        best = min((p for p in counts if counts[p]), key=lambda p: abs(math.log(counts[p] / n)))
        out.append((n, best, counts[best]))
    return out


def _one(bpf: Any, prefix: str, side: str) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    if side == "ebpfhooks":
        # optional: like event_re, a function the kernel refuses is skipped, not fatal
        group = ebpfhooks.expand(f"kprobe:{prefix}*").attach(Program(bpf, "ehk_wild"),
                                                            optional=True)
        n = len(group)
        t1 = time.perf_counter()
        group.detach()
    else:
        def mine() -> set[bytes]:  # bcc keeps an emptied {} per event after a detach
            return {k for k, fns in bpf.kprobe_fds.items() if b"ehk_wild" in fns}

        before = mine()
        bpf.attach_kprobe(event_re=f"^{prefix}.*$".encode(), fn_name=b"ehk_wild")
        events = sorted(mine() - before)
        n = len(events)
        t1 = time.perf_counter()
        for ev in events:  # b"p_" + the function name (bcc's event name)
            bpf.detach_kprobe(event=ev[2:])
    return t1 - t0, time.perf_counter() - t1, n


def measure(targets: list[int], runs: int) -> dict[str, Any]:
    import resource

    from bcc import BPF

    # every attached kprobe holds a perf event fd: 1000 of them need more than the
    # usual soft limit of 1024 open files (both tools fail the same way without this)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    bpf = BPF(text=PROGRAM)
    bpf.load_func(b"ehk_wild", BPF.KPROBE)
    rows = []
    try:
        for target, prefix, count in pick(targets):
            n_runs = runs if count <= 100 else 1
            got: dict[str, list[tuple[float, float, int]]] = {"ebpfhooks": [], "bcc": []}
            for i in range(n_runs):
                order = ("ebpfhooks", "bcc") if i % 2 == 0 else ("bcc", "ebpfhooks")
                for side in order:
                    got[side].append(_one(bpf, prefix, side))
            row: dict[str, Any] = {"target": target, "pattern": f"kprobe:{prefix}*",
                                   "runs": n_runs}
            for side, res in got.items():
                row[f"{side}_functions"] = res[0][2]
                row[f"{side}_attach_ms"] = statistics.median(r[0] for r in res) * 1e3
                row[f"{side}_detach_ms"] = statistics.median(r[1] for r in res) * 1e3
            for what in ("attach", "detach"):
                ours = row[f"ebpfhooks_{what}_ms"] / max(row["ebpfhooks_functions"], 1)
                theirs = row[f"bcc_{what}_ms"] / max(row["bcc_functions"], 1)
                row[f"{what}_ratio_per_function"] = ours / theirs
            rows.append(row)
    finally:
        bpf.cleanup()
    return {"kernel": os.uname().release, "rows": rows}


def format_result(res: dict[str, Any]) -> str:
    lines = [f"Wildcard kprobes on {res['kernel']} (median ms; ratio = ebpfhooks/bcc per "
             "function)",
             f"{'pattern':<28} {'N ours/bcc':>11} {'attach ours':>12} {'bcc':>9} {'ratio':>6}"
             f"   {'detach ours':>11} {'bcc':>9} {'ratio':>6}"]
    for r in res["rows"]:
        lines.append(
            f"{r['pattern']:<28} {r['ebpfhooks_functions']:>5}/{r['bcc_functions']:<5} "
            f"{r['ebpfhooks_attach_ms']:>12.1f} {r['bcc_attach_ms']:>9.1f} "
            f"{r['attach_ratio_per_function']:>6.2f}   {r['ebpfhooks_detach_ms']:>11.1f} "
            f"{r['bcc_detach_ms']:>9.1f} {r['detach_ratio_per_function']:>6.2f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # bcc prints compile warnings
        res = measure([int(s) for s in args.sizes.split(",")], args.runs)
    print(json.dumps(res, indent=2) if args.json else format_result(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
