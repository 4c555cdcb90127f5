"""Peak memory of listing and of resolving a symbol in a large library, next to bcc and bpftrace.

Run: ``.venv/bin/python bench/bench_memory.py [--json]`` (root for the listing).

1. Peak RSS (``ru_maxrss`` of the child, from ``wait4``) of a new process that:
   imports nothing (the interpreter alone), imports ebpfhooks, lists every hook
   (``ebpfhooks list '*'`` when the CLI exists, else ``ebpfhooks.discover.list_hooks('*')``;
   beside ``bpftrace -l '*'``), and resolves a symbol in libLLVM-14 with ebpfhooks and with
   bcc's native resolver (``BPF._check_path_symbol``).
2. kallsyms held once: ``tracemalloc`` peak against what stays allocated while the
   kallsyms index is built (a second copy of the table as Python objects at any
   step would show as peak >= 2 x retained), and the same for the listing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
LLVM = "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"
LLVM_SYMBOL = "LLVMContextCreate"


def peak_rss(argv: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of a child process run to completion."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {proc.returncode}")
    return usage.ru_maxrss / 1024, wall


def _best(argv: list[str], runs: int) -> dict[str, float]:
    samples = [peak_rss(argv) for _ in range(runs)]
    return {"peak_rss_mib": min(s[0] for s in samples),
            "wall_s": sorted(s[1] for s in samples)[len(samples) // 2]}


def _list_command() -> tuple[list[str], str]:
    if (REPO / "ebpfhooks" / "cli.py").exists():
        return [PY, "-m", "ebpfhooks.cli", "list", "*"], "ebpfhooks list '*'"
    return ([PY, "-c", "from ebpfhooks.discover import list_hooks; list_hooks('*')"],
            "ebpfhooks.discover.list_hooks('*') (the CLI does not exist yet)")


KALLSYMS_PROBE = """
import json, tracemalloc
tracemalloc.start()
from ebpfhooks.kernel.kallsyms import kallsyms
k = kallsyms()
cur, peak = tracemalloc.get_traced_memory()
n = sum(1 for _ in open('/proc/kallsyms'))
print(json.dumps({"retained_mib": cur / 2**20, "peak_mib": peak / 2**20, "lines": n}))
"""

LISTING_PROBE = """
import json, tracemalloc
tracemalloc.start()
from ebpfhooks.discover import list_hooks
hooks = list_hooks('*')
cur, peak = tracemalloc.get_traced_memory()
print(json.dumps({"retained_mib": cur / 2**20, "peak_mib": peak / 2**20, "hooks": len(hooks)}))
"""


def _traced(code: str) -> dict[str, Any]:
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    data["peak_over_retained"] = data["peak_mib"] / data["retained_mib"]
    return data


def measure(runs: int = 3) -> dict[str, Any]:
    res: dict[str, Any] = {"rss": {}}
    rss = res["rss"]
    rss["python -c pass"] = _best([PY, "-c", "pass"], runs)
    rss["import ebpfhooks"] = _best([PY, "-c", "import ebpfhooks"], runs)
    argv, label = _list_command()
    if (REPO / "ebpfhooks" / "discover.py").exists():
        rss[label] = _best(argv, runs)
    if shutil.which("bpftrace"):
        rss["bpftrace -l '*'"] = _best(["bpftrace", "-l", "*"], runs)
    if Path(LLVM).exists():
        rss[f"ebpfhooks: resolve {LLVM_SYMBOL} in libLLVM-14"] = _best(
            [PY, "-c", "from pathlib import Path; from ebpfhooks.elf import resolve_symbol; "
             f"resolve_symbol(Path({LLVM!r}), {LLVM_SYMBOL!r})"], runs)
        rss[f"bcc: resolve {LLVM_SYMBOL} in libLLVM-14"] = _best(
            [PY, "-c", "from bcc import BPF; "
             f"BPF._check_path_symbol({LLVM.encode()!r}, {LLVM_SYMBOL.encode()!r}, 0, -1)"],
            runs)
    else:
        res["llvm"] = f"{LLVM} missing: apt-get install -y libllvm14"
    res["kallsyms_index"] = _traced(KALLSYMS_PROBE)
    if (REPO / "ebpfhooks" / "discover.py").exists():
        res["listing"] = _traced(LISTING_PROBE)
    return res


def format_result(res: dict[str, Any]) -> str:
    lines = [f"{'process':<62} {'peak RSS MiB':>12} {'wall s':>7}"]
    for name, r in res["rss"].items():
        lines.append(f"{name:<62} {r['peak_rss_mib']:>12.1f} {r['wall_s']:>7.2f}")
    if "llvm" in res:
        lines.append(res["llvm"])
    k = res["kallsyms_index"]
    lines += ["", f"kallsyms index ({k['lines']} lines): retained {k['retained_mib']:.1f} MiB, "
              f"tracemalloc peak {k['peak_mib']:.1f} MiB "
              f"(peak/retained {k['peak_over_retained']:.2f})"]
    if "listing" in res:
        li = res["listing"]
        lines.append(f"list_hooks('*') ({li['hooks']} hooks): retained {li['retained_mib']:.1f} "
                     f"MiB, peak {li['peak_mib']:.1f} MiB "
                     f"(peak/retained {li['peak_over_retained']:.2f})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = measure(args.runs)
    print(json.dumps(res, indent=2) if args.json else format_result(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
