"""ebpfhooks.elf against bcc's native resolver (bcc_resolve_symname) on real system files.

Every defined FUNC/IFUNC symbol name of libc, bash and the Python interpreter is
resolved by both; file and offset must agree. Two differences are intended and
checked one by one rather than skipped:

- *default version*: a name with several versions at different addresses
  (``memcpy@@GLIBC_2.14`` and ``memcpy@GLIBC_2.2.5``): we take the default
  (``@@``) version, the one new programs bind to; bcc takes whichever comes
  first in ``.dynsym``. bcc's answer must be one of the other versions.
- *ambiguous*: two different LOCAL (static) functions with one name (from two
  source files): we raise AmbiguousSymbolError, bcc takes the first. bcc's
  answer must be one of the definitions listed.

IFUNC symbols are not a difference: both resolve the resolver.
"""

from __future__ import annotations

import collections
import pathlib

import pytest

from ebpfhooks.elf import function_symbols, resolve_symbol
from ebpfhooks.errors import AmbiguousSymbolError

SYSTEM_FILES = [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/bin/bash",
    "/usr/bin/python3.11",
]


@pytest.mark.parametrize("name", SYSTEM_FILES)
def test_every_function_symbol_agrees_with_bcc(name: str) -> None:
    bcc = pytest.importorskip("bcc")
    path = pathlib.Path(name)
    if not path.exists():
        pytest.skip(f"{name} not installed")
    funcs = function_symbols(path)
    by_name: dict[str, list[int]] = collections.defaultdict(list)
    for s in funcs:
        by_name[s.name].append(s.value)
    outcome: collections.Counter[str] = collections.Counter()
    for sym in sorted(by_name):
        theirs_mod, theirs = bcc.BPF._check_path_symbol(name.encode(), sym.encode(), 0, -1)
        assert theirs_mod.decode() == name
        try:
            ours = resolve_symbol(path, sym)
        except AmbiguousSymbolError as err:
            defs = [s for s in funcs if s.name == sym]
            assert all(s.binding == "LOCAL" for s in defs), sym
            offsets = {_offset(path, s.value) for s in defs}
            assert theirs in offsets and str(err).count(f"{sym} at vaddr") >= 2, sym
            outcome["ambiguous"] += 1
            continue
        if ours.file_offset == theirs:
            outcome["ifunc" if ours.ifunc else "same"] += 1
            continue
        assert ours.note and ours.note.startswith("default version chosen"), sym
        others = {_offset(path, s.value) for s in funcs if s.name == sym and not s.default}
        assert theirs in others, sym
        outcome["default version"] += 1
    print(f"\n{name}: {len(by_name)} names compared: {dict(outcome)}")
    assert outcome["same"] + outcome["ifunc"] > 0.95 * len(by_name)


def _offset(path: pathlib.Path, vaddr: int) -> int:
    from ebpfhooks.elf import resolve_address

    return resolve_address(path, vaddr).file_offset
