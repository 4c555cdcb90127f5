"""What ebpfhooks adds to attaching, next to bcc's own ``attach_*`` calls, side by side.

Run as root: ``.venv/bin/python bench/bench_attach.py [--runs N] [--json]``.

1. One hook, warm: ``Hook.from_spec(spec).attach(prog)`` + ``link.detach()`` against the
   direct bcc call for the same program (``attach_tracepoint``, ``attach_raw_tracepoint``,
   ``attach_uprobe``, ``attach_uretprobe``, ``attach_xdp``, ``attach_raw_socket``) and its
   detach, alternating, after one warm-up of each (the BPF compile and ``load_func``,
   which both share, are done before timing). Goal: ebpfhooks adds < 1 ms per attach.
2. A wildcard of N uprobe functions (N = 10, 100, 1000 in a generated shared library):
   ebpfhooks (``expand`` when the package exports it, else ``function_symbols`` +
   ``LinkGroup.attach_all``) against bcc's ``attach_uprobe(sym_re=...)``, and the detach of
   all of them (bcc has no ``sym_re`` detach: ``detach_uprobe(addr=...)`` per address of
   ``get_user_addresses``, the same loop its attach runs). Each run uses a fresh copy of
   the library, so neither side finds the other's ELF data in a cache, and is followed by
   a pause (``SETTLE_S``) so that each side's first registration meets the kernel in the
   same state (see ``SETTLE_S``).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
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
from ebpfhooks import Hook, LinkGroup, Program, bench  # noqa: E402
from ebpfhooks.elf.resolve import function_symbols  # noqa: E402

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
        ours_a, ours_d, theirs_a, theirs_d = [], [], [], []
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


def _wildcard(bpf: Any, bcc: Any, sizes: list[int], runs: int) -> list[dict[str, Any]]:
    prog = Program(bpf, "bench_uprobe")
    use_expand = hasattr(ebpfhooks, "expand")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ehk_bench_wild_") as tmp:
        for n in sizes:
            lib = _library(n, Path(tmp))
            n_runs = runs if n <= 100 else 1  # detaching 1000 uprobes takes minutes here
            ours_a, ours_d, theirs_a, theirs_d = [], [], [], []
            for i in range(n_runs):
                for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                    copy = Path(tmp) / f"libcopy{n}_{i}_{side}.so"  # cold ELF caches
                    shutil.copy(lib, copy)
                    t0 = time.perf_counter()
                    if side == 0:
                        if use_expand:
                            group = ebpfhooks.expand(f"uprobe:{copy}:ehk_w_*").attach(prog)
                        else:
                            hooks = [ebpfhooks.Uprobe(str(copy), ebpfhooks.Symbol(s.name))
                                     for s in function_symbols(copy)
                                     if fnmatch.fnmatchcase(s.name, "ehk_w_*")]
                            group = LinkGroup.attach_all(hooks, prog)
                        attached = len(group)
                        t1 = time.perf_counter()
                        group.detach()
                    else:
                        name = str(copy).encode()
                        before = len(bpf.uprobe_fds)
                        bpf.attach_uprobe(name=name, sym_re=rb"^ehk_w_[0-9]+$",
                                          fn_name=b"bench_uprobe")
                        attached = len(bpf.uprobe_fds) - before
                        t1 = time.perf_counter()
                        for addr in bcc.BPF.get_user_addresses(name, rb"^ehk_w_[0-9]+$"):
                            bpf.detach_uprobe(name=name, addr=addr)
                    t2 = time.perf_counter()
                    if attached != n:
                        raise SystemExit(f"side {side} attached {attached} of {n} functions")
                    (ours_a if side == 0 else theirs_a).append(t1 - t0)
                    (ours_d if side == 0 else theirs_d).append(t2 - t1)
                    copy.unlink()
                    time.sleep(SETTLE_S)
            rows.append({
                "functions": n, "runs": n_runs, "settle_s": SETTLE_S,
                "via": "expand" if use_expand else "function_symbols + LinkGroup.attach_all",
                "ebpfhooks_attach_ms": _ms(ours_a), "bcc_attach_ms": _ms(theirs_a),
                "attach_ratio": _ms(ours_a) / _ms(theirs_a),
                "ebpfhooks_detach_ms": _ms(ours_d), "bcc_detach_ms": _ms(theirs_d),
                "detach_ratio": _ms(ours_d) / _ms(theirs_d),
                "ebpfhooks_attach_runs_ms": [round(x * 1e3, 2) for x in ours_a],
                "bcc_attach_runs_ms": [round(x * 1e3, 2) for x in theirs_a],
            })
    return rows


def _wildcard_own(bcc: Any, sizes: list[int], runs: int) -> list[dict[str, Any]]:
    """User-side work of a wildcard attach, without the kernel calls, for both tools.

    ebpfhooks: ``expand(spec).resolve()`` (the checks once per kind and the targets in
    bulk, as ``HookSet.attach`` runs them before the kernel); bcc:
    ``get_user_addresses`` and, per address, the ``_check_path_symbol`` that
    ``attach_uprobe(addr=...)`` runs. A fresh copy of the
    library per run.
    """
    use_expand = hasattr(ebpfhooks, "expand")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ehk_bench_wown_") as tmp:
        for n in sizes:
            lib = _library(n, Path(tmp))
            ours, theirs = [], []
            for i in range(runs):
                for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                    copy = Path(tmp) / f"libown{n}_{i}_{side}.so"
                    shutil.copy(lib, copy)
                    t0 = time.perf_counter()
                    if side == 0:
                        if use_expand:  # what HookSet.attach checks before the kernel
                            count = len(ebpfhooks.expand(f"uprobe:{copy}:ehk_w_*").resolve())
                        else:
                            hooks = [ebpfhooks.Uprobe(str(copy), ebpfhooks.Symbol(s.name))
                                     for s in function_symbols(copy)
                                     if fnmatch.fnmatchcase(s.name, "ehk_w_*")]
                            for hook in hooks:
                                hook.check_privileges()
                                hook.check_supported()
                                hook.resolve()
                            count = len(hooks)
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


def measure(runs: int = 21, wild_runs: int = 9,
            sizes: tuple[int, ...] = (10, 100, 1000)) -> dict[str, Any]:
    """Both parts; returns a JSON-ready dict."""
    from ebpfhooks import _bcc

    bcc = _bcc.load()
    trigger = bench.build_trigger()
    bpf = bcc.BPF(text=bench.PROGRAM_SOURCE, cflags=["-DNR_GETPPID=110",
                                                     f"-DETHERTYPE={bench.BENCH_ETHERTYPE}"])
    try:
        with bench.trigger._veth_pair() as (a, _b):
            single = _single(bpf, bcc, runs, trigger, a)
        wild = _wildcard(bpf, bcc, list(sizes), wild_runs)
    finally:
        bpf.cleanup()
    own = _wildcard_own(bcc, list(sizes), 5)
    return {"single": single, "wildcard": wild, "wildcard_own": own,
            "kprobe_wildcard": "bench/bench_kprobe_wild.py, in the VM tier (make bench)"}


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
    lines += ["", "Wildcard of N uprobe functions (median ms, fresh library copy per run):",
              f"{'N':>5} {'attach ours':>12} {'bcc sym_re':>11} {'ratio':>6}   "
              f"{'detach ours':>11} {'bcc':>8} {'ratio':>6}"]
    for r in res["wildcard"]:
        lines.append(
            f"{r['functions']:>5} {r['ebpfhooks_attach_ms']:>12.1f} {r['bcc_attach_ms']:>11.1f} "
            f"{r['attach_ratio']:>6.2f}   {r['ebpfhooks_detach_ms']:>11.1f} "
            f"{r['bcc_detach_ms']:>8.1f} {r['detach_ratio']:>6.2f}")
    lines += ["", "Wildcard, user-side work only (no kernel calls; median ms of 5):",
              f"{'N':>5} {'ebpfhooks':>10} {'bcc':>8} {'ratio':>6}"]
    for r in res.get("wildcard_own", []):
        lines.append(f"{r['functions']:>5} {r['ebpfhooks_own_ms']:>10.1f} "
                     f"{r['bcc_own_ms']:>8.1f} {r['own_ratio']:>6.2f}")
    lines.append(f"(ebpfhooks side via {res['wildcard'][0]['via'] if res['wildcard'] else '-'}; "
                 f"kernel-function wildcards: {res['kprobe_wildcard']})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per single-hook case")
    parser.add_argument("--wild-runs", type=int, default=9,
                        help="runs per wildcard size up to 100 (1000 is run once)")
    parser.add_argument("--sizes", default="10,100,1000", help="wildcard sizes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # bcc prints compile warnings
        res = measure(args.runs, args.wild_runs, tuple(int(s) for s in args.sizes.split(",")))
    print(json.dumps(res, indent=2) if args.json else format_result(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
