"""The bulk paths a wildcard takes give exactly what the one-by-one paths give.

``expand`` builds uprobe hooks from the listing instead of parsing each spec; attach
resolves uprobes in bulk per file (``resolve_symbols``, a name index after 16 lookups);
the name validators check the whole name in one regex first. Each is compared with the
path it shortcuts, on real files (libc, bash, a built library).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ebpfhooks
from ebpfhooks import names
from ebpfhooks.elf import loaded as loaded_mod
from ebpfhooks.elf import resolve as resolve_mod
from ebpfhooks.elf.resolve import function_symbols, resolve_binary, resolve_symbol, resolve_symbols
from ebpfhooks.errors import EbpfHooksError, SymbolNotFoundError
from ebpfhooks.hooks import parse
from ebpfhooks.hooks.link import check_and_resolve
from ebpfhooks.hooks.uprobe import Address, Symbol, Uprobe, Uretprobe

LIBC = resolve_binary("c")


def _one_by_one(path: pathlib.Path, requests: list[tuple[str, int]]) -> list[object]:
    out: list[object] = []
    for name, off in requests:
        try:
            out.append(resolve_symbol(path, name, off))
        except EbpfHooksError as err:
            out.append(err)
    return out


def _same(a: list[object], b: list[object]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, Exception):
            assert type(x) is type(y) and str(x) == str(y)
        else:
            assert x == y


def test_resolve_symbols_equals_resolve_symbol_on_libc() -> None:
    loaded_mod._CACHE.clear()  # start without a name index
    funcs = sorted({s.name for s in function_symbols(LIBC)})
    requests = [(n, 0) for n in funcs[::7]]  # hundreds: the index is built on the way
    requests += [("malloc", 4), ("malloc", 1 << 30), ("memcpy@GLIBC_2.2.5", 0),
                 ("malloc@@GLIBC_9.9", 0), ("no_such_function_ehk", 0), ("malloc", -1)]
    bulk = resolve_symbols(LIBC, requests)
    loaded_mod._CACHE.clear()
    _same(bulk, _one_by_one(LIBC, requests))
    assert isinstance(bulk[-3], SymbolNotFoundError)
    assert sum(isinstance(r, Exception) for r in bulk) >= 4


def test_name_index_answers_like_the_hash_lookups() -> None:
    loaded_mod._CACHE.clear()
    loaded = loaded_mod._load(LIBC)
    root = resolve_mod.DEFAULT_DEBUG_ROOT
    probe = ["malloc", "free", "__libc_start_main", "memcpy", "no_such_ehk", "_IO_puts"]
    before = [loaded.candidates(n, root) for n in probe]
    for _ in range(loaded_mod._INDEX_AFTER + 1):
        loaded.candidates("malloc", root)
    assert root in loaded._by_name  # the index is in use now
    assert [loaded.candidates(n, root) for n in probe] == before


def test_stripped_binary_bulk_equals_one_by_one() -> None:
    bash = resolve_binary("bash")
    funcs = sorted({s.name for s in function_symbols(bash)})[:60]
    requests = [(n, 0) for n in funcs] + [("readline", 0), ("not_in_bash_ehk", 0)]
    loaded_mod._CACHE.clear()
    bulk = resolve_symbols(bash, requests)
    loaded_mod._CACHE.clear()
    _same(bulk, _one_by_one(bash, requests))


def test_uprobe_batch_equals_resolve_per_hook(uprobe_target: Path) -> None:
    vaddr = next(s.value for s in function_symbols(uprobe_target) if s.name == "ehk_target")
    hooks = [Uprobe(str(uprobe_target), "ehk_target"), Uretprobe(str(uprobe_target), "ehk_ret"),
             Uprobe(str(uprobe_target), Symbol("ehk_target", 1)),
             Uprobe(str(uprobe_target), "ehk_nope"), Uprobe(str(uprobe_target), Address(vaddr)),
             Uprobe("c", "malloc"), Uprobe("c", "malloc", pid=os.getpid()),
             Uprobe("/nonexistent/ehk", "x")]
    batch = Uprobe._resolve_batch(hooks)
    single: list[object] = []
    for hook in hooks:
        try:
            single.append(hook.resolve())
        except EbpfHooksError as err:
            single.append(err)
    _same(list(batch), single)
    assert [type(r).__name__ for r in batch][3] == "SymbolNotFoundError"
    assert type(batch[-1]).__name__ == "BinaryNotFoundError"


@pytest.fixture(scope="module")
def wide_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("wide")
    src = d / "wide.c"
    src.write_text("".join(f"__attribute__((noinline)) long ehk_w_{i}(long x) "
                           f"{{ return x * {i + 3}; }}\n" for i in range(300)))
    out = d / "libehkwide.so"
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out


def test_expand_builds_what_parse_builds(wide_library: Path) -> None:
    for spec in (f"uprobe:{wide_library}:ehk_w_1*", f"uretprobe:{wide_library}:ehk_w_2?",
                 f"u*:{wide_library.parent}/libehkw*.so:ehk_w_29*"):
        hooks = ebpfhooks.expand(spec)
        assert len(hooks) > 1
        assert list(hooks) == [parse(str(h)) for h in hooks]


@pytest.mark.live
def test_hookset_resolve_checks_everything_without_attaching(live: None,
                                                             wide_library: Path) -> None:
    before = Path("/sys/kernel/tracing/uprobe_events").read_text()
    hooks = ebpfhooks.expand(f"uprobe:{wide_library}:ehk_w_*")
    resolved = hooks.resolve()
    assert len(resolved) == len(hooks) == 300
    assert [r.hook for r in resolved] == list(hooks)
    assert resolved == [h.resolve() for h in hooks]
    assert Path("/sys/kernel/tracing/uprobe_events").read_text() == before
    with pytest.raises(SymbolNotFoundError):
        check_and_resolve([*hooks, Uprobe(str(wide_library), "ehk_w_nope")])


# the one-regex fast path of the validators agrees with the character-by-character rule
_ALPHABET = "aZ_09.$@-/ *?\t\x00é:"


def _slow_user_symbol(name: str) -> bool:
    return (bool(name) and len(name) <= names.USER_SYMBOL_LEN
            and re.match(r"[A-Za-z_.$]", name[0]) is not None
            and all(re.match(r"[A-Za-z0-9_.$@]", ch) for ch in name[1:]))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=12))
def test_validator_fast_path_agrees(name: str) -> None:
    assert (names.check_user_symbol(name) is None) == _slow_user_symbol(name)
    path_ok = bool(name) and name.isprintable() and not any(c in name for c in "*?")
    assert (names.check_path(name) is None) == path_ok
