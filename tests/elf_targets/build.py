"""Compile the test targets of tests/test_elf_*.py into a directory (not committed)."""

from __future__ import annotations

import lzma
import pathlib
import shutil
import subprocess

HERE = pathlib.Path(__file__).resolve().parent


def _run(*cmd: str | pathlib.Path, cwd: pathlib.Path) -> None:
    subprocess.run([str(c) for c in cmd], cwd=cwd, check=True, capture_output=True)


def build_id(path: pathlib.Path) -> str:
    out = subprocess.run(["readelf", "-n", str(path)], check=True, capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split("Build ID:")[1].strip()
    raise AssertionError(f"no build-id in {path}")


def build_all(out: pathlib.Path) -> dict[str, pathlib.Path]:
    """Build every target; return name -> path. Needs gcc, objcopy, strip, xz (lzma)."""
    src = HERE
    t: dict[str, pathlib.Path] = {}
    progs = [src / "prog.c", src / "prog2.c"]
    _run("gcc", "-O1", "-g", "-fPIE", "-pie", "-o", "prog_pie", *progs, cwd=out)
    _run("gcc", "-O1", "-g", "-fno-pie", "-no-pie", "-o", "prog_nopie", *progs, cwd=out)
    _run("gcc", "-O1", "-g", "-shared", "-fPIC", f"-Wl,--version-script={src / 'vlib.map'}",
         "-Wl,-soname,libvlib.so", "-o", "libvlib.so", src / "vlib.c", cwd=out)
    _run("gcc", "-O1", "-o", "uses_vlib", src / "uses_vlib.c", "-L.", "-lvlib", cwd=out)
    for name in ("prog_pie", "prog_nopie", "libvlib.so", "uses_vlib"):
        t[name] = out / name

    # stripped + debug file found by build-id under a private debug root
    dbgroot = out / "debugroot"
    bid = build_id(out / "prog_pie")
    dst = dbgroot / ".build-id" / bid[:2] / (bid[2:] + ".debug")
    dst.parent.mkdir(parents=True)
    _run("objcopy", "--only-keep-debug", "prog_pie", dst, cwd=out)
    shutil.copy(out / "prog_pie", out / "prog_stripped")
    _run("strip", "--strip-all", "prog_stripped", cwd=out)
    t["prog_stripped"] = out / "prog_stripped"
    t["debugroot"] = dbgroot

    # stripped + .gnu_debuglink, debug file in .debug/ beside it (found by name + CRC)
    linkdir = out / "linked"
    (linkdir / ".debug").mkdir(parents=True)
    shutil.copy(out / "prog_nopie", linkdir / "prog_linked")
    _run("objcopy", "--only-keep-debug", "prog_linked", "prog_linked.debug", cwd=linkdir)
    _run("strip", "--strip-all", "--remove-section=.note.gnu.build-id", "prog_linked",
         cwd=linkdir)
    _run("objcopy", "--add-gnu-debuglink=prog_linked.debug", "prog_linked", cwd=linkdir)
    shutil.move(linkdir / "prog_linked.debug", linkdir / ".debug" / "prog_linked.debug")
    t["prog_linked"] = linkdir / "prog_linked"

    # stripped + MiniDebugInfo (.gnu_debugdata: xz of an ELF holding only .symtab)
    _run("objcopy", "--only-keep-debug", "--remove-section=.debug_*", "prog_pie", "mini.elf",
         cwd=out)
    (out / "mini.xz").write_bytes(lzma.compress((out / "mini.elf").read_bytes()))
    shutil.copy(out / "prog_pie", out / "prog_mini")
    _run("strip", "--strip-all", "--remove-section=.note.gnu.build-id",
         "--remove-section=.gnu_debuglink", "prog_mini", cwd=out)
    _run("objcopy", "--add-section", ".gnu_debugdata=mini.xz", "prog_mini", cwd=out)
    t["prog_mini"] = out / "prog_mini"
    return t
