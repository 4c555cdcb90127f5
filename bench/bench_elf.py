"""Benchmark ebpfhooks.elf symbol resolution against bcc's native resolver, side by side.

Run: ``.venv/bin/python bench/bench_elf.py [--runs N]`` (needs bcc for the comparison,
objcopy for the large .symtab case).

Cases:

1. cold: a new process resolves ``malloc`` in libc. Reported: the whole process
   (interpreter start, imports, resolution), and import + resolution, and the
   resolution call alone, for ours and for bcc (``import bcc`` +
   ``BPF._check_path_symbol``).
2. warm: 2000 resolutions of libc symbols in one process (ours is cached by device,
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
import time, json
t0 = time.perf_counter()
import ebpfhooks.elf as E
t1 = time.perf_counter()
p = E.resolve_binary(TARGET) if '/' not in TARGET else __import__('pathlib').Path(TARGET)
r = E.resolve_symbol(p, SYMBOL)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "call": t2 - t1, "off": r.file_offset}))
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


# Byte-code is written to a private prefix (and one warm-up run made) so imports cost what
# they cost in an installed package, even where PYTHONDONTWRITEBYTECODE is set.
PYCACHE = tempfile.mkdtemp(prefix="bench_elf_pycache_")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = PYCACHE


def _cold(code: str, target: str, symbol: str, runs: int) -> dict[str, float]:
    prog = f"TARGET = {target!r}\nSYMBOL = {symbol!r}\n" + code
    walls, imports, calls, offs = [], [], [], set()
    subprocess.run([sys.executable, "-c", prog], check=True, capture_output=True, cwd=REPO,
                   env=ENV)
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", prog], check=True, capture_output=True,
                             text=True, cwd=REPO, env=ENV).stdout
        walls.append(time.perf_counter() - t)
        got = json.loads(out)
        imports.append(got["import"])
        calls.append(got["call"])
        offs.add(got["off"])
    return {"wall": statistics.median(walls), "import": statistics.median(imports),
            "call": statistics.median(calls), "offset": offs.pop() if len(offs) == 1 else -1}


def _python_startup(runs: int) -> float:
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=ENV)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def _row(name: str, ours: float, theirs: float | None) -> None:
    if theirs is None:
        print(f"  {name:<38} ours {ours * 1e3:9.2f} ms")
    else:
        print(f"  {name:<38} ours {ours * 1e3:9.2f} ms   bcc {theirs * 1e3:9.2f} ms   "
              f"ratio ours/bcc {ours / theirs:5.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="cold runs per case (median shown)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    try:
        import bcc  # noqa: F401
        have_bcc = True
    except ImportError:
        have_bcc = False
    print(f"python {sys.version.split()[0]}, bcc {'present' if have_bcc else 'absent'}, "
          f"median of {args.runs} runs; files in the page cache")
    startup = _python_startup(args.runs)
    print(f"  {'python -c pass (interpreter start)':<38} {startup * 1e3:9.2f} ms")

    print(f"\n1. cold: new process, resolve 'malloc' in libc ('c' -> {LIBC})")
    ours = _cold(OURS, "c", "malloc", args.runs)
    theirs = _cold(BCC, "c", "malloc", args.runs) if have_bcc else None
    _row("whole process", ours["wall"], theirs and theirs["wall"])
    _row("import + resolve", ours["import"] + ours["call"],
         theirs and theirs["import"] + theirs["call"])
    _row("resolve call only", ours["call"], theirs and theirs["call"])
    if theirs:
        print(f"  same file offset: {ours['offset'] == theirs['offset']} (0x{ours['offset']:x})")

    print("\n2. warm: repeated resolutions in one process (libc, 20 names x 100)")
    from ebpfhooks.elf import function_symbols, resolve_symbol

    libc = pathlib.Path(LIBC)
    names = sorted({s.name for s in function_symbols(libc) if s.binding == "GLOBAL"})[::200][:20]
    resolve_symbol(libc, names[0])
    t = time.perf_counter()
    for _ in range(100):
        for n in names:
            resolve_symbol(libc, n)
    ours_warm = (time.perf_counter() - t) / (100 * len(names))
    bcc_warm = None
    if have_bcc:
        import bcc as bccmod

        t = time.perf_counter()
        for _ in range(100):
            for n in names:
                bccmod.BPF._check_path_symbol(LIBC.encode(), n.encode(), 0, -1)
        bcc_warm = (time.perf_counter() - t) / (100 * len(names))
    _row("per resolution", ours_warm, bcc_warm)

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
        ours = _cold(OURS, str(big), symbol, args.runs)
        theirs = _cold(BCC, str(big), symbol, args.runs) if have_bcc else None
        _row("whole process", ours["wall"], theirs and theirs["wall"])
        _row("resolve call only (cold file)", ours["call"], theirs and theirs["call"])
        if theirs:
            print(f"  same file offset: {ours['offset'] == theirs['offset']} "
                  f"(0x{ours['offset']:x})")


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
