"""pyelftools is imported when an ELF file is opened, and not before.

``import ebpfhooks``, ``import ebpfhooks.elf`` and ``ebpfhooks list 'tracepoint:*'`` must
not pay for it (~25 ms of imports); resolving a uprobe target must use it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def _imported_modules(args: list[str]) -> tuple[str, int]:
    """Run ``python -X importtime ARGS``; return the import log and the exit status."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                          text=True, timeout=120)
    return proc.stderr, proc.returncode


def test_import_ebpfhooks_does_not_import_pyelftools() -> None:
    log, status = _imported_modules(["-c", "import ebpfhooks, ebpfhooks.elf"])
    assert status == 0, log
    assert "import time:" in log
    assert "elftools" not in log


def test_list_tracepoints_does_not_import_pyelftools() -> None:
    log, status = _imported_modules(["-m", "ebpfhooks", "list", "tracepoint:*"])
    assert "import time:" in log and "ebpfhooks.cli" in log, log[-2000:]
    if status != 0 and "tracefs" not in log:
        pytest.fail(f"ebpfhooks list failed: {log[-2000:]}")
    assert "elftools" not in log


def test_opening_an_elf_file_uses_pyelftools() -> None:
    code = ("import sys, pathlib; from ebpfhooks.elf import resolve_symbol; "
            "assert 'elftools' not in sys.modules; "
            "resolve_symbol(pathlib.Path(sys.executable).resolve(), 'Py_BytesMain'); "
            "assert 'elftools.elf.elffile' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_error_pyelftools_missing_says_how_to_install() -> None:
    code = '''
import sys, pathlib
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "elftools" or name.startswith("elftools."):
            raise ImportError("No module named 'elftools'")
sys.meta_path.insert(0, Block())
from ebpfhooks.elf import resolve_symbol
from ebpfhooks.errors import NotSupportedError
try:
    resolve_symbol(pathlib.Path(sys.executable).resolve(), "Py_BytesMain")
except NotSupportedError as err:
    print(err)
'''
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    assert out.startswith("ebpfhooks reads uprobe targets with pyelftools, which cannot be "
                          "imported (No module named 'elftools'); install it: pip install "
                          "'pyelftools>=0.32'"), out
