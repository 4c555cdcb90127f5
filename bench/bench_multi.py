"""Many uprobes on one binary: one uprobe_multi link against one perf event per probe.

Run as root: ``.venv/bin/python bench/bench_multi.py [--functions 1000] [--per-probe 100]
[--runs 5] [--per-probe-runs 1] [--llvm 10000] [--json]``.

Side by side in one run, on generated binaries whose functions ``ehk_f<i>`` are each
called once by ``main`` (every side's attach is checked by running the binary once and
counting the calls it saw, outside the timing):

1. **bcc**: ``BPF.attach_uprobe(name=BIN, sym_re="^ehk_f[0-9]+$")`` (bcc resolves the
   symbols and opens one perf event per function), then ``BPF.cleanup()`` as the detach.
2. **per-probe (bpfsys)**: :func:`ebpfhooks.bpfsys.perf_uprobe` per function (one
   perf_event_open + ``PERF_EVENT_IOC_SET_BPF`` each), closing them all as the detach.
3. **uprobe_multi (bpfsys)**: :func:`ebpfhooks.bpfsys.uprobe_multi`, one
   ``BPF_LINK_CREATE`` for every function, closing its fd as the detach.

The two per-probe sides cost ~0.1 s a probe on the 6.18 host (detaching a uprobe waits
for the kernel: an RCU grace period per probe), so by default they run on a binary of
``--per-probe`` (100) functions and their time for ``--functions`` (1000) is
extrapolated linearly and labelled so; uprobe_multi runs on both binaries.
``--per-probe 1000`` measures the full size (about 100 s per per-probe side).
Each run uses a fresh copy of the binary (no side finds the other's ELF data or page
cache), followed by a short pause (``SETTLE_S``; see bench/bench_attach.py).

4. **libLLVM**: ``--llvm`` (10,000) functions of libLLVM through one uprobe_multi link:
   resolution (``ebpfhooks.elf.resolve.function_symbols`` + file offsets), attach and
   detach. On a fresh copy of the library, so no running process (bcc itself maps
   libLLVM) gets breakpoints written into it.

Attach and detach times are medians: ``--runs`` (5) of the uprobe_multi sides,
``--per-probe-runs`` (1) of the per-probe sides, at most 3 of libLLVM; "resolve" is
ebpfhooks' own symbol reading for the bpfsys sides (bcc's is inside its attach). The
default run takes about a minute here.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("BCC_PROBE_LIMIT", "20000")

from ebpfhooks import _bcc, bpfsys  # noqa: E402
from ebpfhooks.elf.elffile import ElfFile  # noqa: E402
from ebpfhooks.elf.resolve import function_symbols  # noqa: E402
from ebpfhooks.kernel import features  # noqa: E402

SETTLE_S = 0.2
PROGRAM = r"""
#include <uapi/linux/ptrace.h>
BPF_ARRAY(bm_hits, u64, 1);
int bm_count(struct pt_regs *ctx) {
    int k = 0;
    u64 *v = bm_hits.lookup(&k);
    if (v) __sync_fetch_and_add(v, 1);
    return 0;
}
"""
SYM_RE = rb"^ehk_f[0-9]+$"
LLVM_GLOBS = ("/usr/lib/llvm-*/lib/libLLVM-*.so.1", "/usr/lib/*/libLLVM-*.so.1",
              "/usr/lib*/libLLVM*.so*")


def _ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3


def generate(directory: Path, n: int) -> Path:
    """A binary whose ``main`` calls each of ``n`` functions ``ehk_f<i>`` once."""
    src = directory / f"multi{n}.c"
    lines = [f"__attribute__((noipa)) int ehk_f{i}(int x) {{ return x + {i}; }}"
             for i in range(n)]
    lines += ["int main(void) {", "    long s = 0;"]
    lines += [f"    s += ehk_f{i}(1);" for i in range(n)]
    lines += ["    return s == 0;", "}"]
    src.write_text("\n".join(lines) + "\n")
    out = directory / f"multi{n}"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(src)], check=True)
    return out


def file_offsets(path: Path, prefix: str | None = None, limit: int | None = None
                 ) -> list[int]:
    """File offsets of the FUNC symbols of ``path`` (named ``prefix*``), first ``limit``."""
    elf = ElfFile.open(path)
    seen: set[int] = set()
    out = []
    for sym in function_symbols(path):
        if sym.type != "FUNC" or (prefix is not None and not sym.name.startswith(prefix)):
            continue
        off = elf.vaddr_to_offset(sym.value)
        if off is None or off in seen:
            continue
        seen.add(off)
        out.append(off)
        if limit is not None and len(out) == limit:
            break
    return out


class Counter:
    """The ``bm_hits`` counter of a compiled module."""

    def __init__(self, bpf: Any) -> None:
        self.bpf = bpf

    def reset(self) -> None:
        self.bpf["bm_hits"].clear()

    def value(self) -> int:
        return int(self.bpf["bm_hits"][ctypes.c_int(0)].value)


def _check(counter: Counter, binary: Path, expected: int, side: str) -> None:
    counter.reset()
    subprocess.run([str(binary)], check=True)
    got = counter.value()
    if got != expected:
        raise SystemExit(f"{side}: counted {got} of {expected} calls of {binary}")


def _runs(label: str, binary: Path, runs: int, tmp: Path,
          once: Callable[[Path], tuple[float, float, float]]) -> dict[str, Any]:
    """``once(copy) -> (resolve_s, attach_s, detach_s)`` on a fresh copy per run."""
    res, att, det = [], [], []
    for i in range(runs):
        copy = tmp / f"{label}_{i}"
        shutil.copy(binary, copy)
        r, a, d = once(copy)
        res.append(r)
        att.append(a)
        det.append(d)
        copy.unlink()
        time.sleep(SETTLE_S)
    return {"runs": runs, "resolve_ms": _ms(res), "attach_ms": _ms(att),
            "detach_ms": _ms(det), "total_ms": _ms(res) + _ms(att) + _ms(det),
            "attach_runs_ms": [round(x * 1e3, 2) for x in att],
            "detach_runs_ms": [round(x * 1e3, 2) for x in det]}


def bcc_side(bcc: Any, n: int, counter_of: Callable[[Any], Counter]) -> Callable[
        [Path], tuple[float, float, float]]:
    def once(copy: Path) -> tuple[float, float, float]:
        b = bcc.BPF(text=PROGRAM)  # compiled outside the timing
        try:
            name = str(copy).encode()
            before = len(b.uprobe_fds)
            t0 = time.perf_counter()
            b.attach_uprobe(name=name, sym_re=SYM_RE, fn_name=b"bm_count")
            t1 = time.perf_counter()
            if len(b.uprobe_fds) - before != n:
                raise SystemExit(f"bcc attached {len(b.uprobe_fds) - before} of {n}")
            _check(counter_of(b), copy, n, "bcc")
            t2 = time.perf_counter()
            b.cleanup()
            t3 = time.perf_counter()
        finally:
            b.cleanup()
        return 0.0, t1 - t0, t3 - t2

    return once


def per_probe_side(prog: int, n: int, counter: Counter) -> Callable[
        [Path], tuple[float, float, float]]:
    def once(copy: Path) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        offsets = file_offsets(copy, "ehk_f")
        t1 = time.perf_counter()
        probes = [bpfsys.perf_uprobe(prog, copy, off) for off in offsets]
        t2 = time.perf_counter()
        try:
            if len(probes) != n:
                raise SystemExit(f"per-probe attached {len(probes)} of {n}")
            _check(counter, copy, n, "per-probe")
        finally:
            t3 = time.perf_counter()
            for probe in probes:
                probe.close()
            t4 = time.perf_counter()
        return t1 - t0, t2 - t1, t4 - t3

    return once


def multi_side(prog: int, n: int, counter: Counter) -> Callable[
        [Path], tuple[float, float, float]]:
    def once(copy: Path) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        offsets = file_offsets(copy, "ehk_f")
        t1 = time.perf_counter()
        link = bpfsys.uprobe_multi(prog, copy, offsets)
        t2 = time.perf_counter()
        try:
            if len(offsets) != n:
                raise SystemExit(f"uprobe_multi attached {len(offsets)} of {n}")
            _check(counter, copy, n, "uprobe_multi")
        finally:
            t3 = time.perf_counter()
            os.close(link)
            t4 = time.perf_counter()
        return t1 - t0, t2 - t1, t4 - t3

    return once


def find_llvm() -> Path | None:
    for pattern in LLVM_GLOBS:
        for hit in sorted(glob.glob(pattern), reverse=True):
            path = Path(hit)
            if path.is_file() and path.stat().st_size > 10 << 20:
                return path.resolve()
    return None


def llvm(prog: int, count: int, runs: int, tmp: Path) -> dict[str, Any]:
    lib = find_llvm()
    if lib is None:
        return {"skipped": "no libLLVM found (" + ", ".join(LLVM_GLOBS) + ")"}
    res, att, det, found = [], [], [], 0
    for i in range(runs):
        copy = tmp / f"libLLVM_copy_{i}.so"
        shutil.copy(lib, copy)
        t0 = time.perf_counter()
        offsets = file_offsets(copy, None, count)
        t1 = time.perf_counter()
        link = bpfsys.uprobe_multi(prog, copy, offsets)
        t2 = time.perf_counter()
        os.close(link)
        t3 = time.perf_counter()
        copy.unlink()
        found = len(offsets)
        res.append(t1 - t0)
        att.append(t2 - t1)
        det.append(t3 - t2)
        time.sleep(SETTLE_S)
    return {"library": str(lib), "functions": found, "runs": runs,
            "resolve_ms": _ms(res), "attach_ms": _ms(att), "detach_ms": _ms(det),
            "total_ms": _ms(res) + _ms(att) + _ms(det),
            "resolve_runs_ms": [round(x * 1e3, 1) for x in res],
            "attach_runs_ms": [round(x * 1e3, 2) for x in att],
            "detach_runs_ms": [round(x * 1e3, 2) for x in det]}


def measure(functions: int = 1000, per_probe: int = 100, runs: int = 5,
            llvm_functions: int = 10000, per_probe_runs: int = 1) -> dict[str, Any]:
    bcc = _bcc.load()
    multi_ok = features.uprobe_multi()
    out: dict[str, Any] = {"kernel": os.uname().release, "functions": functions,
                           "per_probe_functions": per_probe,
                           "uprobe_multi": str(multi_ok), "perf_link": str(features.perf_link())}
    mod = bcc.BPF(text=PROGRAM)
    counter = Counter(mod)
    insns, license = _bcc.compiled_insns(mod, "bm_count")
    kprobe = bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, insns, license=license,
                              name="ehkbench_pp")
    multi = (bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_KPROBE, insns, license=license,
                              name="ehkbench_multi",
                              expected_attach_type=bpfsys.BPF_TRACE_UPROBE_MULTI)
             if multi_ok else None)
    try:
        with tempfile.TemporaryDirectory(prefix="ehk_bench_multi_") as tmp_s:
            tmp = Path(tmp_s)
            small = generate(tmp, per_probe)
            big = small if functions == per_probe else generate(tmp, functions)
            sides: dict[str, Any] = {}
            sides["bcc"] = _runs("bcc", small, per_probe_runs, tmp,
                                 bcc_side(bcc, per_probe, Counter))
            sides["per_probe"] = _runs("pp", small, per_probe_runs, tmp,
                                       per_probe_side(kprobe, per_probe, counter))
            if multi is not None:
                sides["multi_small"] = _runs("ms", small, runs, tmp,
                                             multi_side(multi, per_probe, counter))
                sides["multi"] = _runs("mb", big, runs, tmp,
                                       multi_side(multi, functions, counter))
                if llvm_functions:
                    out["llvm"] = llvm(multi, llvm_functions, min(runs, 3), tmp)
            out["sides"] = sides
    finally:
        os.close(kprobe)
        if multi is not None:
            os.close(multi)
        mod.cleanup()
    scale = functions / per_probe
    for key in ("bcc", "per_probe"):
        side = out["sides"][key]
        side[f"attach_detach_ms_at_{functions}"] = (side["attach_ms"] + side["detach_ms"]) * scale
        side["extrapolated"] = scale != 1
    if multi is not None:
        m = out["sides"]["multi"]
        ms = out["sides"]["multi_small"]
        multi_total = m["attach_ms"] + m["detach_ms"]
        out["ratios"] = {
            f"bcc_vs_multi_at_{per_probe}": (out["sides"]["bcc"]["attach_ms"]
                                             + out["sides"]["bcc"]["detach_ms"])
            / (ms["attach_ms"] + ms["detach_ms"]),
            f"per_probe_vs_multi_at_{per_probe}": (out["sides"]["per_probe"]["attach_ms"]
                                                   + out["sides"]["per_probe"]["detach_ms"])
            / (ms["attach_ms"] + ms["detach_ms"]),
            f"bcc_vs_multi_at_{functions}": out["sides"]["bcc"][
                f"attach_detach_ms_at_{functions}"] / multi_total,
            f"per_probe_vs_multi_at_{functions}": out["sides"]["per_probe"][
                f"attach_detach_ms_at_{functions}"] / multi_total,
            f"bcc_vs_multi_at_{functions}_resolution_included": out["sides"]["bcc"][
                f"attach_detach_ms_at_{functions}"] / m["total_ms"],
        }
    return out


def format_result(res: dict[str, Any]) -> str:
    n, p = res["functions"], res["per_probe_functions"]
    lines = [f"kernel {res['kernel']}; {res['uprobe_multi']}; {res['perf_link']}",
             f"ms, median of {res['sides']['multi']['runs'] if 'multi' in res['sides'] else 0} "
             f"runs (uprobe_multi) and {res['sides']['bcc']['runs']} (per-probe sides); "
             "'resolve' = ebpfhooks reading the symbols (bcc's is inside its attach)", "",
             f"{'side':<28} {'functions':>9} {'resolve':>9} {'attach':>10} {'detach':>10}"
             f" {'attach+detach':>14}"]
    rows = [("bcc attach_uprobe(sym_re)", "bcc", p), ("per-probe perf events", "per_probe", p),
            ("uprobe_multi (one link)", "multi_small", p), ("uprobe_multi (one link)", "multi", n)]
    for label, key, count in rows:
        side = res["sides"].get(key)
        if side is None:
            continue
        lines.append(f"{label:<28} {count:>9} {side['resolve_ms']:>9.1f} {side['attach_ms']:>10.1f}"
                     f" {side['detach_ms']:>10.1f} {side['attach_ms'] + side['detach_ms']:>14.1f}")
    for label, key in (("bcc attach_uprobe(sym_re)", "bcc"), ("per-probe perf events",
                                                              "per_probe")):
        side = res["sides"][key]
        how = f"extrapolated from {p} x {n / p:g}" if side["extrapolated"] else "measured"
        lines.append(f"{label:<28} {n:>9} {'':>9} {'':>10} {'':>10} "
                     f"{side[f'attach_detach_ms_at_{n}']:>14.1f}  ({how})")
    if "ratios" in res:
        lines += ["", "ratios (attach+detach, per-probe side / uprobe_multi):"]
        lines += [f"  {k}: {v:,.0f}x" for k, v in res["ratios"].items()]
    llvm_res = res.get("llvm")
    if llvm_res:
        if "skipped" in llvm_res:
            lines += ["", f"libLLVM: {llvm_res['skipped']}"]
        else:
            lines += ["", f"{llvm_res['functions']} functions of {llvm_res['library']} "
                      f"(a fresh copy) through one uprobe_multi link: resolve "
                      f"{llvm_res['resolve_ms']:.0f} ms, attach {llvm_res['attach_ms']:.1f} ms,"
                      f" detach {llvm_res['detach_ms']:.1f} ms, total "
                      f"{llvm_res['total_ms']:.0f} ms"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=1000,
                        help="functions in the uprobe_multi binary (1000)")
    parser.add_argument("--per-probe", type=int, default=100,
                        help="functions for the per-probe sides (100; 1000 takes ~100 s each)")
    parser.add_argument("--runs", type=int, default=5, help="runs of the uprobe_multi sides (5)")
    parser.add_argument("--per-probe-runs", type=int, default=1,
                        help="runs of the per-probe sides (1)")
    parser.add_argument("--llvm", type=int, default=10000,
                        help="libLLVM functions through uprobe_multi (10000; 0 skips)")
    parser.add_argument("--json", action="store_true", help="print JSON instead")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_multi needs root", file=sys.stderr)
        return 2
    if not 0 < args.per_probe <= args.functions:
        parser.error("--per-probe must be between 1 and --functions")
    res = measure(args.functions, args.per_probe, args.runs, args.llvm, args.per_probe_runs)
    print(json.dumps(res, indent=2) if args.json else format_result(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
