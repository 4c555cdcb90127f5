"""Benchmark ebpfhooks.elf symbol resolution against bcc's native resolver, side by side.

Run: ``.venv/bin/python bench/bench_elf.py [--runs N] [--before REF]`` (needs bcc for the
comparison, objcopy for the large .symtab case, git for ``--before``).

Three sides run in the same process tree, alternating run by run: *after* (this
checkout's ``ebpfhooks``), *before* (the ``ebpfhooks`` package of git revision
``--before``, default ``main``, exported to a temporary directory; ``--before none``
leaves it out) and *bcc* (``BPF._check_path_symbol``, libbcc's ``bcc_resolve_symname``).

Cases:

1. cold: a new process resolves ``malloc`` in libc. Reported: the whole process
   (interpreter start, imports, resolution), import + resolution, and the resolution
   call alone (ebpfhooks' first call opens the file, which imports pyelftools since it
   reads ELF through it: the next row shows the call with pyelftools already imported).
2. warm: 2000 resolutions of libc symbols in one process (ebpfhooks caches by device,
   inode and mtime; bcc re-reads the ELF file on every call).
3. large .symtab: a symbol present only in ``.symtab`` of a copy of libLLVM-14
   (110 MB) to which objcopy added a ``.symtab`` of ~35k local function symbols
   (Debian ships libLLVM stripped), resolved cold in a new process.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
LLVM = "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"
REPO = pathlib.Path(__file__).resolve().parent.parent

OURS = """
import time, json, sys
if PRELOAD:
    import elftools.elf.elffile
t0 = time.perf_counter()
import ebpfhooks.elf as E
t1 = time.perf_counter()
p = E.resolve_binary(TARGET) if '/' not in TARGET else __import__('pathlib').Path(TARGET)
r = E.resolve_symbol(p, SYMBOL)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "call": t2 - t1, "off": r.file_offset,
                  "elftools": "elftools" in sys.modules}))
"""

BCC = """
import time, json
t0 = time.perf_counter()
import bcc
t1 = time.perf_counter()
_, off = bcc.BPF._check_path_symbol(TARGET.encode(), SYMBOL.encode(), 0, -1)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "call": t2 - t1, "off": off}))
"""

WARM_OURS = """
import time, json, pathlib
from ebpfhooks.elf import function_symbols, resolve_symbol
libc = pathlib.Path(LIBC)
names = sorted({s.name for s in function_symbols(libc) if s.binding == "GLOBAL"})[::200][:20]
resolve_symbol(libc, names[0])
t = time.perf_counter()
for _ in range(100):
    for n in names:
        resolve_symbol(libc, n)
print(json.dumps({"per": (time.perf_counter() - t) / (100 * len(names)), "names": names}))
"""

WARM_BCC = """
import time, json
import bcc
t = time.perf_counter()
for _ in range(100):
    for n in NAMES:
        bcc.BPF._check_path_symbol(LIBC.encode(), n.encode(), 0, -1)
print(json.dumps({"per": (time.perf_counter() - t) / (100 * len(NAMES))}))
"""


# Byte-code is written to a private prefix (and one warm-up run made) so imports cost what
# they cost in an installed package, even where PYTHONDONTWRITEBYTECODE is set.
PYCACHE = tempfile.mkdtemp(prefix="bench_elf_pycache_")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = PYCACHE


class Side:
    """One program to time: its code, and the directory its ``ebpfhooks`` comes from."""

    def __init__(self, name: str, code: str, root: pathlib.Path, preload: bool = False) -> None:
        self.name, self.code, self.root, self.preload = name, code, root, preload

    def run(self, prelude: str) -> dict[str, float]:
        env = dict(ENV, PYTHONPATH=str(self.root))
        prog = prelude + f"PRELOAD = {self.preload!r}\n" + self.code
        out = subprocess.run([sys.executable, "-c", prog], check=True, capture_output=True,
                             text=True, cwd=self.root, env=env).stdout
        got: dict[str, float] = json.loads(out.splitlines()[-1])
        return got


def _cold(sides: list[Side], target: str, symbol: str, runs: int) -> dict[str, dict[str, float]]:
    """Median wall, import and call per side; the sides alternate run by run."""
    prelude = f"TARGET = {target!r}\nSYMBOL = {symbol!r}\n"
    for side in sides:  # warm-up: byte-code written, files in the page cache
        side.run(prelude)
    raw: dict[str, dict[str, list[float]]] = {
        s.name: {"wall": [], "import": [], "call": [], "off": []} for s in sides}
    for _ in range(runs):
        for side in sides:
            t = time.perf_counter()
            got = side.run(prelude)
            raw[side.name]["wall"].append(time.perf_counter() - t)
            for key in ("import", "call", "off"):
                raw[side.name][key].append(got[key])
    out: dict[str, dict[str, float]] = {}
    for name, cols in raw.items():
        offs = set(cols["off"])
        out[name] = {k: statistics.median(v) for k, v in cols.items() if k != "off"}
        out[name]["offset"] = offs.pop() if len(offs) == 1 else -1
    return out


def _python_startup(runs: int) -> float:
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=ENV)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def _row(name: str, values: dict[str, float | None]) -> None:
    cells = []
    for side, v in values.items():
        cells.append(f"{side} {'-' if v is None else f'{v * 1e3:8.2f} ms':>11}")
    bcc = values.get("bcc")
    ratios = [f"{side}/bcc {v / bcc:5.2f}" for side, v in values.items()
              if side != "bcc" and v is not None and bcc]
    print(f"  {name:<40} " + "   ".join(cells) + ("   " + "  ".join(ratios) if ratios else ""))


def _export(ref: str, dest: pathlib.Path) -> str | None:
    """Write ``ebpfhooks/`` of git revision ``ref`` under ``dest``; its commit, or None."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, check=True,
                                capture_output=True, text=True).stdout.strip()
        archive = subprocess.run(["git", "archive", commit, "ebpfhooks"], cwd=REPO,
                                 check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return commit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="cold runs per case (median shown)")
    ap.add_argument("--before", default="main",
                    help="git revision whose ebpfhooks is the 'before' side ('none': leave out)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    try:
        import bcc  # noqa: F401
        have_bcc = True
    except ImportError:
        have_bcc = False
    before_dir = pathlib.Path(tempfile.mkdtemp(prefix="bench_elf_before_"))
    try:
        commit = _export(args.before, before_dir) if args.before != "none" else None
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                              capture_output=True, text=True).stdout.strip() or "?"
        print(f"python {sys.version.split()[0]}, bcc {'present' if have_bcc else 'absent'}, "
              f"median of {args.runs} runs, sides alternating; files in the page cache")
        print(f"  after = this checkout ({head}{', with local changes' if _dirty() else ''})"
              + (f"; before = {args.before} ({commit})" if commit else "; no before side"))
        _run(args.runs, have_bcc, before_dir if commit else None)
    finally:
        shutil.rmtree(before_dir, ignore_errors=True)


def _dirty() -> bool:
    out = subprocess.run(["git", "status", "--porcelain", "ebpfhooks"], cwd=REPO,
                         capture_output=True, text=True).stdout
    return bool(out.strip())


def _sides(before: pathlib.Path | None, have_bcc: bool) -> list[Side]:
    sides = [Side("after", OURS, REPO)]
    if before is not None:
        sides.append(Side("before", OURS, before))
    if have_bcc:
        sides.append(Side("bcc", BCC, REPO))
    return sides


def _run(runs: int, have_bcc: bool, before: pathlib.Path | None) -> None:
    startup = _python_startup(runs)
    print(f"  {'python -c pass (interpreter start)':<40} {startup * 1e3:8.2f} ms")

    print(f"\n1. cold: new process, resolve 'malloc' in libc ('c' -> {LIBC})")
    sides = _sides(before, have_bcc)
    got = _cold(sides, "c", "malloc", runs)
    names = [s.name for s in sides]
    _row("whole process", {n: got[n]["wall"] for n in names})
    _row("import + resolve", {n: got[n]["import"] + got[n]["call"] for n in names})
    _row("resolve call only (first file opened)", {n: got[n]["call"] for n in names})
    pre = _cold([Side("after", OURS, REPO, preload=True)], "c", "malloc", runs)
    _row("  same, pyelftools imported beforehand", {
        "after": pre["after"]["call"], "before": got["before"]["call"] if before else None,
        "bcc": got["bcc"]["call"] if have_bcc else None})
    print("  same file offset: " + ", ".join(f"{n} 0x{got[n]['offset']:x}" for n in names))

    print("\n2. warm: repeated resolutions in one process (libc, 20 names x 100)")
    prelude = f"LIBC = {LIBC!r}\n"
    warm: dict[str, float | None] = {}
    names_used: list[str] = []
    for side in [s for s in sides if s.name != "bcc"]:
        w = Side(side.name, WARM_OURS, side.root).run(prelude)
        warm[side.name] = w["per"]
        names_used = w["names"]  # type: ignore[assignment]
    if have_bcc:
        warm["bcc"] = Side("bcc", WARM_BCC, REPO).run(prelude + f"NAMES = {names_used!r}\n")["per"]
    _row("per resolution", warm)

    print("\n3. a .symtab-only symbol in a large binary (libLLVM-14 + objcopy'd .symtab)")
    if not os.path.exists(LLVM) or not shutil.which("objcopy"):
        print("  skipped: needs /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1 (apt-get install "
              "libllvm14) and objcopy")
        return
    with tempfile.TemporaryDirectory() as tmp:
        big = _llvm_with_symtab(pathlib.Path(tmp))
        nsyms = _symtab_count(big)
        symbol = "_ZN4llvm2cl6Option11addArgumentEv.priv"
        print(f"  {big.stat().st_size / 1e6:.0f} MB, .symtab {nsyms} symbols, symbol {symbol}")
        got = _cold(sides, str(big), symbol, runs)
        _row("whole process", {n: got[n]["wall"] for n in names})
        _row("resolve call only (cold file)", {n: got[n]["call"] for n in names})
        print("  same file offset: " + ", ".join(f"{n} 0x{got[n]['offset']:x}" for n in names))


def _llvm_with_symtab(tmp: pathlib.Path) -> pathlib.Path:
    out = subprocess.run(["nm", "-D", "--defined-only", LLVM], check=True, capture_output=True,
                         text=True).stdout
    sections = subprocess.run(["readelf", "-SW", LLVM], check=True, capture_output=True,
                              text=True).stdout
    text_addr = next(int(line.split()[3], 16) for line in sections.splitlines()
                     if " .text " in line)
    args = []
    for line in out.splitlines():
        addr, kind, name = line.split()
        if kind in "TtWi":
            base = name.split("@")[0]
            args.append(f"--add-symbol={base}.priv=.text:0x{int(addr, 16) - text_addr:x},"
                        "function,local")
    argfile = tmp / "args"
    argfile.write_text("\n".join(args))
    big = tmp / "libLLVM-symtab.so"
    subprocess.run(["objcopy", f"@{argfile}", LLVM, str(big)], check=True)
    return big


def _symtab_count(path: pathlib.Path) -> int:
    from ebpfhooks.elf.elffile import ElfFile
    from ebpfhooks.elf.symbols import SymbolIndex

    idx = SymbolIndex(ElfFile.open(path))
    return len(idx.symtab) if idx.symtab is not None else 0


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(PYCACHE, ignore_errors=True)
