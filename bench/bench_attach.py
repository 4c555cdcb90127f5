"""What ebpfhooks adds to attaching, next to bcc's own ``attach_*`` calls, side by side.

Run as root: ``.venv/bin/python bench/bench_attach.py [--runs N] [--json]``.

1. One hook, warm: ``Hook.from_spec(spec).attach(prog)`` + ``link.detach()`` against the
   direct bcc call for the same program (``attach_tracepoint``, ``attach_raw_tracepoint``,
   ``attach_uprobe``, ``attach_uretprobe``, ``attach_xdp``, ``attach_raw_socket``) and its
   detach, alternating, after one warm-up of each (the BPF compile and ``load_func``,
   which both share, are done before timing). Goal: ebpfhooks adds < 1 ms per attach.
2. Groups of uprobes: every function of a generated binary of N functions (N = 10, 100,
   1000; ``main`` calls each once), attached and detached, side by side in one run:

   - ebpfhooks: ``expand("uprobe:BIN:ehk_w_*").attach(prog)`` + ``group.detach()``, the
     path groups take here (one uprobe_multi link on kernels 6.6+);
   - ebpfhooks per probe: the same call with ``EBPFHOOKS_UPROBE_ATTACH=perf_event``
     (a perf event per uprobe: what kernels before 6.6 get);
   - bcc: ``attach_uprobe(name=BIN, sym_re=...)`` + ``cleanup()`` (its module compiled
     outside the timing).

   Every side's attach is checked by running the binary and counting N calls (outside
   the timing). A per-probe detach waits for the kernel (~0.1 s per uprobe here), so
   the per-probe sides are measured up to ``--per-probe-max`` (100) and extrapolated,
   labelled so, to larger N; ``--full`` measures them at every N once. Each run uses a
   fresh copy of the binary (no ELF cache hit) and is followed by a pause (``SETTLE_S``).
3. 10,000 functions of libLLVM (a fresh copy, so no running process gets breakpoints):
   ``expand("uprobe:COPY:_ZN4llvm*")[:10000]``, ``attach_all`` and detach, listing and
   resolution included.
4. The user-side work of a wildcard without the kernel calls, for both tools.
"""

from __future__ import annotations

import argparse
import contextlib
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
os.environ.setdefault("BCC_PROBE_LIMIT", "5000")

import ebpfhooks  # noqa: E402
from ebpfhooks import Hook, Program, bench  # noqa: E402

XDP_FLAGS_SKB_MODE = 2
#: Pause after each wildcard run before the next side starts. The kernel's first uprobe
#: registration after a quiet spell waits for one RCU grace period (``percpu_down_write``
#: of ``dup_mmap_sem`` -> ``rcu_sync_enter`` -> ``synchronize_rcu``). Back to back, the
#: side that starts sooner after the other's detach caught that wait at a different
#: point of the grace-period cycle (one period or two: 6 against 14 ms here), which is
#: the previous detach's doing, not the attaching tool's. After a pause both start from
#: the quiet state a user's first attach sees.
SETTLE_S = 0.2


def _ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3


def _single(bpf: Any, bcc: Any, runs: int, trigger: Path, veth: str) -> list[dict[str, Any]]:
    path = str(trigger).encode()
    sym = bench.TARGET_FUNCTION.encode()
    xdp_fn = bpf.load_func(b"bench_xdp", bcc.BPF.XDP)
    sock_fn = bpf.load_func(b"bench_socket", bcc.BPF.SOCKET_FILTER)

    def raw_socket_attach() -> None:
        bcc.BPF.attach_raw_socket(sock_fn, veth.encode())

    cases: list[tuple[str, str, str, Callable[[], None], Callable[[], None]]] = [
        ("tracepoint", "tracepoint:syscalls:sys_enter_getppid", "bench_tp",
         lambda: bpf.attach_tracepoint(tp=b"syscalls:sys_enter_getppid", fn_name=b"bench_tp"),
         lambda: bpf.detach_tracepoint(b"syscalls:sys_enter_getppid")),
        ("rawtracepoint", "rawtracepoint:sys_enter", "bench_rawtp",
         lambda: bpf.attach_raw_tracepoint(tp=b"sys_enter", fn_name=b"bench_rawtp"),
         lambda: bpf.detach_raw_tracepoint(b"sys_enter")),
        ("uprobe", f"uprobe:{trigger}:{bench.TARGET_FUNCTION}", "bench_uprobe",
         lambda: bpf.attach_uprobe(name=path, sym=sym, fn_name=b"bench_uprobe"),
         lambda: bpf.detach_uprobe(name=path, sym=sym)),
        ("uretprobe", f"uretprobe:{trigger}:{bench.TARGET_FUNCTION}", "bench_uretprobe",
         lambda: bpf.attach_uretprobe(name=path, sym=sym, fn_name=b"bench_uretprobe"),
         lambda: bpf.detach_uretprobe(name=path, sym=sym)),
        ("xdp", f"xdp:{veth}:skb", "bench_xdp",
         lambda: bcc.BPF.attach_xdp(veth.encode(), xdp_fn, XDP_FLAGS_SKB_MODE),
         lambda: bcc.BPF.remove_xdp(veth.encode(), XDP_FLAGS_SKB_MODE)),
        ("raw_socket", f"raw_socket:{veth}", "bench_socket", raw_socket_attach,
         lambda: os.close(sock_fn.sock)),
    ]
    rows = []
    for kind, spec, fn, bcc_attach, bcc_detach in cases:
        prog = Program(bpf, fn)
        ours_a: list[float] = []
        ours_d: list[float] = []
        theirs_a: list[float] = []
        theirs_d: list[float] = []
        for i in range(runs + 1):  # run 0 warms both up
            for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                t0 = time.perf_counter()
                if side == 0:
                    link = Hook.from_spec(spec).attach(prog)
                    t1 = time.perf_counter()
                    link.detach()
                else:
                    bcc_attach()
                    t1 = time.perf_counter()
                    bcc_detach()
                t2 = time.perf_counter()
                if i:
                    (ours_a if side == 0 else theirs_a).append(t1 - t0)
                    (ours_d if side == 0 else theirs_d).append(t2 - t1)
        own = []  # ebpfhooks' own steps, without the kernel call: parse, checks, resolve
        for _ in range(runs):
            t0 = time.perf_counter()
            hook = Hook.from_spec(spec)
            hook.check_privileges()
            hook.check_supported()
            hook.resolve()
            own.append(time.perf_counter() - t0)
        rows.append({
            "kind": kind, "spec": spec, "runs": runs, "ebpfhooks_own_steps_ms": _ms(own),
            "ebpfhooks_attach_ms": _ms(ours_a), "bcc_attach_ms": _ms(theirs_a),
            "added_attach_ms": _ms(ours_a) - _ms(theirs_a),
            "attach_ratio": _ms(ours_a) / _ms(theirs_a),
            "ebpfhooks_detach_ms": _ms(ours_d), "bcc_detach_ms": _ms(theirs_d),
            "detach_ratio": _ms(ours_d) / _ms(theirs_d),
        })
    return rows


def _library(n: int, directory: Path) -> Path:
    src = directory / f"wild{n}.c"
    src.write_text("".join(
        f"__attribute__((noinline)) long ehk_w_{i}(long x) {{ return x * {i + 3} + {i}; }}\n"
        for i in range(n)))
    out = directory / f"libehkwild{n}.so"
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out


#: The per-probe sides are measured up to this N (each detached uprobe waits ~0.1 s for
#: the kernel here) and extrapolated linearly above it, unless ``--full``.
PER_PROBE_MAX = 100
#: The group sides' counting program: every call of a probed function adds one.
COUNT_SOURCE = r"""
BPF_ARRAY(bw_hits, u64, 1);
int bw_count(struct pt_regs *ctx) {
    int k = 0;
    u64 *v = bw_hits.lookup(&k);
    if (v) __sync_fetch_and_add(v, 1);
    return 0;
}
"""
SYM_RE = rb"^ehk_w_[0-9]+$"
LLVM_GLOBS = ("/usr/lib/llvm-*/lib/libLLVM-*.so.1", "/usr/lib/*/libLLVM-*.so.1",
              "/usr/lib*/libLLVM*.so*")
LLVM_PATTERN = "_ZN4llvm*"
#: ``(attach s, detach s, how)`` of one run on a fresh copy of the binary.
Once = Callable[[Path], tuple[float, float, str]]


def _binary(n: int, directory: Path) -> Path:
    """An executable whose ``main`` calls each of its ``n`` functions ``ehk_w_<i>`` once."""
    src = directory / f"group{n}.c"
    lines = [f"__attribute__((noipa)) long ehk_w_{i}(long x) {{ return x * {i + 3} + {i}; }}"
             for i in range(n)]
    lines += ["int main(void) {", "    long s = 0;"]
    lines += [f"    s += ehk_w_{i}(1);" for i in range(n)]
    lines += ["    return s == 0;", "}"]
    src.write_text("\n".join(lines) + "\n")
    out = directory / f"group{n}"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(src)], check=True)
    return out


def _hits(bpf: Any) -> int:
    import ctypes

    return int(bpf["bw_hits"][ctypes.c_int(0)].value)


def _counted(bpf: Any, copy: Path, n: int, side: str) -> None:
    """Run the binary once: every one of its n functions must be counted once."""
    bpf["bw_hits"].clear()
    subprocess.run([str(copy)], check=True)
    if _hits(bpf) != n:
        raise SystemExit(f"{side}: counted {_hits(bpf)} of {n} calls of {copy}")


def _group_side(bpf: Any, n: int, mode: str) -> Once:
    """ebpfhooks: ``expand(...).attach`` + ``group.detach()`` with EBPFHOOKS_UPROBE_ATTACH."""
    prog = Program(bpf, "bw_count")

    def once(copy: Path) -> tuple[float, float, str]:
        os.environ["EBPFHOOKS_UPROBE_ATTACH"] = mode
        try:
            t0 = time.perf_counter()
            group = ebpfhooks.expand(f"uprobe:{copy}:ehk_w_*").attach(prog)
            t1 = time.perf_counter()
            try:
                if len(group) != n:
                    raise SystemExit(f"ebpfhooks ({mode}) attached {len(group)} of {n}")
                via = group.links[0].via
                _counted(bpf, copy, n, f"ebpfhooks ({mode})")
            finally:
                t2 = time.perf_counter()
                group.detach()
                t3 = time.perf_counter()
        finally:
            del os.environ["EBPFHOOKS_UPROBE_ATTACH"]
        return t1 - t0, t3 - t2, via

    return once


def _bcc_side(bcc: Any, n: int) -> Once:
    """bcc: ``attach_uprobe(name=BIN, sym_re=...)`` + ``cleanup()``."""

    def once(copy: Path) -> tuple[float, float, str]:
        b = bcc.BPF(text=COUNT_SOURCE)  # compiled outside the timing
        try:
            name = str(copy).encode()
            t0 = time.perf_counter()
            b.attach_uprobe(name=name, sym_re=SYM_RE, fn_name=b"bw_count")
            t1 = time.perf_counter()
            if len(b.uprobe_fds) != n:
                raise SystemExit(f"bcc attached {len(b.uprobe_fds)} of {n}")
            _counted(b, copy, n, "bcc")
            t2 = time.perf_counter()
            b.cleanup()
            t3 = time.perf_counter()
        finally:
            b.cleanup()
        return t1 - t0, t3 - t2, "perf_event (bcc)"

    return once


def _timed(label: str, binary: Path, runs: int, tmp: Path, once: Once) -> dict[str, Any]:
    att, det, how = [], [], ""
    for i in range(runs):
        copy = tmp / f"{label}_{i}"
        shutil.copy(binary, copy)  # a fresh file: no side finds the other's ELF data cached
        a, d, how = once(copy)
        att.append(a)
        det.append(d)
        copy.unlink()
        time.sleep(SETTLE_S)
    return {"runs": runs, "via": how, "attach_ms": _ms(att), "detach_ms": _ms(det),
            "total_ms": _ms(att) + _ms(det),
            "attach_runs_ms": [round(x * 1e3, 2) for x in att],
            "detach_runs_ms": [round(x * 1e3, 2) for x in det]}


def _groups(bcc: Any, sizes: list[int], runs: int, per_probe_runs: int,
            per_probe_max: int, full: bool) -> list[dict[str, Any]]:
    """Part 2: one row per N, every side's attach, detach and total (see the docstring)."""
    bpf = bcc.BPF(text=COUNT_SOURCE)
    rows: list[dict[str, Any]] = []
    measured: dict[str, tuple[int, dict[str, Any]]] = {}  # largest measured N per side
    try:
        with tempfile.TemporaryDirectory(prefix="ehk_bench_group_") as tmp_s:
            tmp = Path(tmp_s)
            for n in sizes:
                binary = _binary(n, tmp)
                row: dict[str, Any] = {"functions": n, "settle_s": SETTLE_S}
                sides: list[tuple[str, Once]] = [
                    ("ebpfhooks", _group_side(bpf, n, "auto")),
                    ("ebpfhooks_per_probe", _group_side(bpf, n, "perf_event")),
                    ("bcc", _bcc_side(bcc, n))]
                for key, once in sides:
                    slow = key != "ebpfhooks"
                    if slow and n > per_probe_max and not full:
                        base_n, base = measured[key]
                        scale = n / base_n
                        row[key] = {"extrapolated_from": base_n,
                                    "attach_ms": base["attach_ms"] * scale,
                                    "detach_ms": base["detach_ms"] * scale,
                                    "total_ms": base["total_ms"] * scale, "via": base["via"]}
                        continue
                    n_runs = runs if not slow or n <= 10 else (
                        per_probe_runs if n <= per_probe_max else 1)
                    row[key] = _timed(f"{key}{n}", binary, n_runs, tmp, once)
                    if slow:
                        measured[key] = (n, row[key])
                ours = row["ebpfhooks"]["total_ms"]
                row["ratios"] = {
                    "bcc_vs_ebpfhooks": row["bcc"]["total_ms"] / ours,
                    "per_probe_vs_ebpfhooks": row["ebpfhooks_per_probe"]["total_ms"] / ours,
                    "bcc_attach_vs_ebpfhooks": row["bcc"]["attach_ms"]
                    / row["ebpfhooks"]["attach_ms"],
                }
                rows.append(row)
    finally:
        bpf.cleanup()
    return rows


def _find_llvm() -> Path | None:
    import glob

    for pattern in LLVM_GLOBS:
        for hit in sorted(glob.glob(pattern), reverse=True):
            path = Path(hit)
            if path.is_file() and path.stat().st_size > 10 << 20:
                return path.resolve()
    return None


def _llvm(bcc: Any, count: int, runs: int) -> dict[str, Any]:
    """Part 3: ``count`` functions of a fresh copy of libLLVM through one group."""
    lib = _find_llvm()
    if lib is None:
        return {"skipped": "no libLLVM found (" + ", ".join(LLVM_GLOBS) + ")"}
    bpf = bcc.BPF(text=COUNT_SOURCE)
    prog = Program(bpf, "bw_count")
    lst, att, det, found, via = [], [], [], 0, ""
    try:
        with tempfile.TemporaryDirectory(prefix="ehk_bench_llvm_") as tmp_s:
            for i in range(runs):
                copy = Path(tmp_s) / f"libLLVM_copy_{i}.so"
                shutil.copy(lib, copy)
                t0 = time.perf_counter()
                hooks = ebpfhooks.expand(f"uprobe:{copy}:{LLVM_PATTERN}")[:count]
                t1 = time.perf_counter()
                group = ebpfhooks.attach_all(hooks, prog)
                t2 = time.perf_counter()
                found, via = len(group), group.links[0].via
                group.detach()
                t3 = time.perf_counter()
                copy.unlink()
                lst.append(t1 - t0)
                att.append(t2 - t1)
                det.append(t3 - t2)
                time.sleep(SETTLE_S)
    finally:
        bpf.cleanup()
    totals = [a + b + c for a, b, c in zip(lst, att, det, strict=True)]
    return {"library": str(lib), "pattern": LLVM_PATTERN, "functions": found, "via": via,
            "runs": runs, "list_ms": _ms(lst), "attach_ms": _ms(att), "detach_ms": _ms(det),
            "total_ms": _ms(totals), "total_runs_ms": [round(x * 1e3, 1) for x in totals]}


def _wildcard_own(bcc: Any, sizes: list[int], runs: int) -> list[dict[str, Any]]:
    """User-side work of a wildcard attach, without the kernel calls, for both tools.

    ebpfhooks: ``expand(spec).resolve()`` (the checks once per kind and the targets in
    bulk, as ``HookSet.attach`` runs them before the kernel); bcc:
    ``get_user_addresses`` and, per address, the ``_check_path_symbol`` that
    ``attach_uprobe(addr=...)`` runs. A fresh copy of the
    library per run.
    """
    rows = []
    with tempfile.TemporaryDirectory(prefix="ehk_bench_wown_") as tmp:
        for n in sizes:
            lib = _library(n, Path(tmp))
            ours: list[float] = []
            theirs: list[float] = []
            for i in range(runs):
                for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                    copy = Path(tmp) / f"libown{n}_{i}_{side}.so"
                    shutil.copy(lib, copy)
                    t0 = time.perf_counter()
                    if side == 0:  # what HookSet.attach checks before the kernel
                        count = len(ebpfhooks.expand(f"uprobe:{copy}:ehk_w_*").resolve())
                    else:
                        name = str(copy).encode()
                        addrs = bcc.BPF.get_user_addresses(name, rb"^ehk_w_[0-9]+$")
                        for addr in addrs:
                            bcc.BPF._check_path_symbol(name, b"", addr, -1)
                        count = len(addrs)
                    (ours if side == 0 else theirs).append(time.perf_counter() - t0)
                    copy.unlink()
                    if count != n:
                        raise SystemExit(f"side {side} found {count} of {n} functions")
            rows.append({"functions": n, "runs": runs,
                         "ebpfhooks_own_ms": _ms(ours), "bcc_own_ms": _ms(theirs),
                         "own_ratio": _ms(ours) / _ms(theirs)})
    return rows


def measure(runs: int = 21, wild_runs: int = 9, sizes: tuple[int, ...] = (10, 100, 1000),
            per_probe_runs: int = 3, per_probe_max: int = PER_PROBE_MAX, full: bool = False,
            llvm: int = 10000) -> dict[str, Any]:
    """Every part; returns a JSON-ready dict."""
    from ebpfhooks import _bcc
    from ebpfhooks.kernel import features

    bcc = _bcc.load()
    trigger = bench.build_trigger()
    bpf = bcc.BPF(text=bench.PROGRAM_SOURCE, cflags=["-DNR_GETPPID=110",
                                                     f"-DETHERTYPE={bench.BENCH_ETHERTYPE}"])
    try:
        with bench.trigger._veth_pair() as (a, _b):
            single = _single(bpf, bcc, runs, trigger, a)
    finally:
        bpf.cleanup()
    groups = _groups(bcc, list(sizes), wild_runs, per_probe_runs, per_probe_max, full)
    out: dict[str, Any] = {
        "kernel": os.uname().release, "uprobe_multi": str(features.uprobe_multi()),
        "perf_link": str(features.perf_link()), "single": single, "groups": groups,
        "kprobe_wildcard": "bench/bench_kprobe_wild.py, in the VM tier (make bench)"}
    if llvm:
        out["llvm"] = _llvm(bcc, llvm, 3)
    out["wildcard_own"] = _wildcard_own(bcc, [n for n in sizes if n <= 1000], 5)
    return out


def format_result(res: dict[str, Any]) -> str:
    lines = ["One hook, warm (median ms per call; own = ebpfhooks' parse + checks + resolve,"
             " without the kernel call):",
             f"{'kind':<15} {'ebpfhooks':>10} {'bcc':>8} {'added':>8} {'ratio':>6} {'own':>6}   "
             f"{'detach ours':>11} {'bcc':>6} {'ratio':>6}"]
    for r in res["single"]:
        lines.append(
            f"{r['kind']:<15} {r['ebpfhooks_attach_ms']:>10.3f} {r['bcc_attach_ms']:>8.3f} "
            f"{r['added_attach_ms']:>+8.3f} {r['attach_ratio']:>6.2f} "
            f"{r['ebpfhooks_own_steps_ms']:>6.3f}   "
            f"{r['ebpfhooks_detach_ms']:>11.3f} {r['bcc_detach_ms']:>6.3f} "
            f"{r['detach_ratio']:>6.2f}")
    lines += ["", f"Groups of N uprobes on one binary (kernel {res.get('kernel', '?')}; "
              "median ms; attach+detach, fresh copy per run):",
              f"{'N':>5} {'side':<22} {'via':<17} {'attach':>9} {'detach':>10} {'total':>10}"
              f" {'vs ebpfhooks':>12}"]
    for r in res.get("groups", []):
        ours = r["ebpfhooks"]["total_ms"]
        for key, label in (("ebpfhooks", "ebpfhooks group"),
                           ("ebpfhooks_per_probe", "ebpfhooks per probe"),
                           ("bcc", "bcc sym_re + cleanup")):
            side = r[key]
            note = (f"  (extrapolated from N={side['extrapolated_from']})"
                    if "extrapolated_from" in side else f"  ({side['runs']} runs)")
            lines.append(f"{r['functions']:>5} {label:<22} {side['via']:<17} "
                         f"{side['attach_ms']:>9.1f} {side['detach_ms']:>10.1f} "
                         f"{side['total_ms']:>10.1f} {side['total_ms'] / ours:>11,.0f}x{note}")
    llvm = res.get("llvm")
    if llvm:
        if "skipped" in llvm:
            lines += ["", f"libLLVM: {llvm['skipped']}"]
        else:
            lines += ["", f"{llvm['functions']} functions of {llvm['library']} (a fresh copy; "
                      f"expand('{llvm['pattern']}')[:N], attach_all, detach; via "
                      f"{llvm['via']}), median of {llvm['runs']}: list {llvm['list_ms']:.0f} "
                      f"ms, attach {llvm['attach_ms']:.0f} ms (resolution included), detach "
                      f"{llvm['detach_ms']:.0f} ms, total {llvm['total_ms']:.0f} ms "
                      f"(runs {llvm['total_runs_ms']})"]
    lines += ["", "Wildcard, user-side work only (no kernel calls; median ms of 5):",
              f"{'N':>5} {'ebpfhooks':>10} {'bcc':>8} {'ratio':>6}"]
    for r in res.get("wildcard_own", []):
        lines.append(f"{r['functions']:>5} {r['ebpfhooks_own_ms']:>10.1f} "
                     f"{r['bcc_own_ms']:>8.1f} {r['own_ratio']:>6.2f}")
    lines.append(f"(kernel-function wildcards: {res['kprobe_wildcard']})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per single-hook case")
    parser.add_argument("--wild-runs", type=int, default=9,
                        help="runs per group size of the ebpfhooks side (and of the per-probe "
                             "sides up to N=10)")
    parser.add_argument("--per-probe-runs", type=int, default=3,
                        help="runs of the per-probe sides for 10 < N <= --per-probe-max")
    parser.add_argument("--per-probe-max", type=int, default=PER_PROBE_MAX,
                        help="largest N the per-probe sides are measured at (above: "
                             "extrapolated)")
    parser.add_argument("--full", action="store_true",
                        help="measure the per-probe sides at every N (N=1000 takes ~100 s "
                             "per side, once)")
    parser.add_argument("--sizes", default="10,100,1000", help="group sizes")
    parser.add_argument("--llvm", type=int, default=10000,
                        help="libLLVM functions in one group (0 skips)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # bcc prints compile warnings
        res = measure(args.runs, args.wild_runs, tuple(int(s) for s in args.sizes.split(",")),
                      args.per_probe_runs, args.per_probe_max, args.full, args.llvm)
    print(json.dumps(res, indent=2) if args.json else format_result(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
