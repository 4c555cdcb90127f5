"""Live: groups of uprobes attached in batches, counted per hook by their BPF cookies.

On the host (6.18) a group's uprobes on one file are one uprobe_multi link; in the VM
tier (Debian's 6.1: no uprobe_multi) each is a perf event carrying its cookie through a
BPF_PERF_EVENT link. The same tests run on both: every call of a generated binary's
functions is counted exactly once, under the cookie of its hook; nothing is left after
detach, after errors, or after SIGKILL. The per-probe path costs ~0.1 s per detached
uprobe (much more under emulation), so its groups are smaller.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import bpf_prog_names, not_possible, uprobe_events

import ebpfhooks
from ebpfhooks import Hook, LinkGroup, Uprobe
from ebpfhooks.errors import AttachError, SymbolNotFoundError
from ebpfhooks.hooks.uprobe import Symbol, UprobeResolution, UserProbeHook
from ebpfhooks.kernel import features

pytestmark = [pytest.mark.live, pytest.mark.guest]

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS = 1000  # in the generated binary
NSLOTS = FUNCTIONS + 1  # one counter per cookie, the last for out-of-range cookies
PREFIX = "ehkm_"  # the programs of these tests
KILL_PREFIX = "ehkk_"  # the SIGKILLed worker's

PROGRAMS = r"""
#include <uapi/linux/ptrace.h>

BPF_ARRAY(hits, u64, NSLOTS);   /* per cookie */
BPF_ARRAY(rets, u64, NSLOTS);   /* the last return value seen per cookie */

static inline int slot(void *ctx) {
    u64 cookie = bpf_get_attach_cookie(ctx);
    return cookie < NSLOTS - 1 ? (int)cookie : NSLOTS - 1;
}

int ehkm_call(struct pt_regs *ctx) {
    int k = slot(ctx);
    u64 *v = hits.lookup(&k);
    if (v) __sync_fetch_and_add(v, 1);
    return 0;
}

int ehkm_ret(struct pt_regs *ctx) {
    int k = slot(ctx);
    u64 *v = hits.lookup(&k);
    if (v) __sync_fetch_and_add(v, 1);
    u64 rc = PT_REGS_RC(ctx);
    v = rets.lookup(&k);
    if (v) *v = rc;
    return 0;
}
"""


def multi() -> bool:
    """Whether groups take the uprobe_multi path here (the host), else per probe (VM)."""
    have = features.uprobe_multi()
    assert have.known, have
    assert bool(have) == (features.kernel_version() >= (6, 6, 0)), have
    assert features.perf_link(), features.perf_link()  # both kernels here are >= 5.15
    return bool(have)


def pattern(binary: Path) -> str:
    """The whole binary on the multi path; 11 functions (ehk_f99, ehk_f990..999) per probe."""
    return f"uprobe:{binary}:ehk_f*" if multi() else f"uprobe:{binary}:ehk_f99*"


def number(hook: Hook) -> int:
    """K of the hook's function ehk_fK (ehk_fK(1) returns K + 1)."""
    assert isinstance(hook, UserProbeHook) and isinstance(hook.location, Symbol)
    return int(hook.location.name.removeprefix("ehk_f"))


@pytest.fixture(scope="module")
def mbpf(live: None) -> Iterator[Any]:
    from bcc import BPF

    module = BPF(text=PROGRAMS, cflags=[f"-DNSLOTS={NSLOTS}"])
    yield module
    module.cleanup()


@pytest.fixture
def maps(mbpf: Any) -> Iterator[Any]:
    for name in ("hits", "rets"):
        mbpf[name].clear()
    before = uprobe_events()
    yield mbpf
    assert uprobe_events() == before  # no tracefs event on either path
    # what the links loaded is gone; bcc's own copy of each function stays (at most one)
    assert _settled(lambda: len(_programs()) == len(set(_programs()))), _programs()


def _programs() -> list[str]:
    """This module's programs still loaded (bcc's own copies stay until its cleanup)."""
    return sorted(n for n in bpf_prog_names() if n.startswith(PREFIX))


def _settled(ok: Any, timeout: float = 60.0) -> bool:
    """Poll ``ok()``: the kernel frees programs and uprobes after RCU grace periods."""
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _table(bpf: Any, name: str) -> list[int]:
    return [int(v.value) for v in bpf[name].values()]


@pytest.fixture(scope="module")
def binary(live: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A C program with FUNCTIONS functions ehk_fK(x) = x + K, each called once after a
    gate (``wait``: prints ready and waits for a line on stdin)."""
    import shutil

    if shutil.which("gcc") is None:
        not_possible("gcc is needed to build the target")
    directory = tmp_path_factory.mktemp("multi")
    src = directory / "multi.c"
    body = ["#include <stdio.h>", "#include <string.h>"]
    body += [f"__attribute__((noipa)) int ehk_f{i}(int x) {{ return x + {i}; }}"
             for i in range(FUNCTIONS)]
    body += ["int main(int argc, char **argv) {",
             "    char line[16];",
             '    if (argc > 1 && strcmp(argv[1], "wait") == 0) {',
             '        printf("ready\\n"); fflush(stdout);',
             "        if (!fgets(line, sizeof line, stdin)) return 2;",
             "    }",
             "    long s = 0;"]
    body += [f"    s += ehk_f{i}(1);" for i in range(FUNCTIONS)]
    body += ['    printf("sum %ld\\n", s);', "    return 0;", "}"]
    src.write_text("\n".join(body) + "\n")
    out = directory / "multi"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(src)], check=True)
    return out


def _start(binary: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([str(binary), "wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def _finish(proc: subprocess.Popen[str]) -> None:
    out, _ = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, out


def _run(binary: Path) -> None:
    subprocess.run([str(binary)], check=True, capture_output=True)


def _check_once_each(bpf: Any, group: LinkGroup, hooks: list[Hook]) -> None:
    """Every hook's function was called once: its cookie's counter is 1, the rest 0."""
    hits = _table(bpf, "hits")
    assert [link.cookie for link in group] == list(range(len(hooks)))
    assert hits[:len(hooks)] == [1] * len(hooks)
    assert sum(hits) == len(hooks)  # no other counter, no out-of-range cookie


# --------------------------------------------------------------------------- counting


def test_wildcard_group_counts_every_call_once_by_cookie(maps: Any, binary: Path) -> None:
    hooks = ebpfhooks.expand(pattern(binary))
    assert len(hooks) == (FUNCTIONS if multi() else 11)
    before = _programs()
    with hooks.attach(maps, "ehkm_call") as group:
        assert {link.via for link in group} == {"uprobe_multi" if multi() else "perf_link"}
        if multi():  # one link holds them all: one fd, one program loaded for it
            assert len({link.fd for link in group}) == 1
            assert _programs() == sorted([*before, "ehkm_call"])
        _run(binary)
        _check_once_each(maps, group, list(hooks))
    assert not group.attached
    _run(binary)
    assert sum(_table(maps, "hits")) == len(hooks)  # detached: nothing more counted


def test_uretprobe_group_sees_each_return_value(maps: Any, binary: Path) -> None:
    hooks = [ebpfhooks.Uretprobe(h.binary, h.location)  # type: ignore[attr-defined]
             for h in ebpfhooks.expand(pattern(binary))]
    with ebpfhooks.attach_all(hooks, maps, "ehkm_ret") as group:
        _run(binary)
        _check_once_each(maps, group, hooks)
        rets = _table(maps, "rets")
        assert [rets[link.cookie] for link in group  # type: ignore[index]
                ] == [number(link.hook) + 1 for link in group]


def test_pid_filter(maps: Any, binary: Path) -> None:
    first, second = _start(binary), _start(binary)
    try:
        hooks = [Uprobe(h.binary, h.location, pid=first.pid)  # type: ignore[attr-defined]
                 for h in ebpfhooks.expand(pattern(binary))]
        with ebpfhooks.attach_all(hooks, maps, "ehkm_call") as group:
            _finish(second)
            _run(binary)
            assert sum(_table(maps, "hits")) == 0  # other processes: not probed
            _finish(first)
            _check_once_each(maps, group, hooks)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_detaching_one_link_detaches_its_batch(maps: Any, binary: Path) -> None:
    hooks = ebpfhooks.expand(pattern(binary))
    with hooks.attach(maps, "ehkm_call") as group:
        group.links[3].detach()
        _run(binary)
        hits = _table(maps, "hits")
        if multi():  # the kernel removed the whole link: every sibling is detached
            assert [link.attached for link in group] == [False] * len(hooks)
            assert sum(hits) == 0
        else:  # a perf event each: only that one
            assert [link.attached for link in group].count(False) == 1
            assert hits[:len(hooks)] == [1, 1, 1, 0] + [1] * (len(hooks) - 4)
    assert not group.attached


def test_per_probe_path_counts_by_cookie_too(maps: Any, binary: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """EBPFHOOKS_UPROBE_ATTACH=perf_event: the VM tier's path, on any kernel."""
    monkeypatch.setenv("EBPFHOOKS_UPROBE_ATTACH", "perf_event")
    hooks = ebpfhooks.expand(f"uprobe:{binary}:ehk_f99*")
    with hooks.attach(maps, "ehkm_call") as group:
        assert {link.via for link in group} == {"perf_link"}
        _run(binary)
        _check_once_each(maps, group, list(hooks))


# --------------------------------------------------------------------------- errors


def test_error_missing_symbol_is_the_single_attach_error(maps: Any, binary: Path) -> None:
    hooks = [*ebpfhooks.expand(f"uprobe:{binary}:ehk_f99*")[:3],
             Hook.from_spec(f"uprobe:{binary}:ehk_f1000")]
    with pytest.raises(SymbolNotFoundError) as in_group:
        ebpfhooks.attach_all(hooks, maps, "ehkm_call")
    with pytest.raises(SymbolNotFoundError) as alone:
        hooks[3].attach(maps, "ehkm_call")
    assert str(in_group.value) == str(alone.value)
    assert "ehk_f1000" in str(alone.value) and "ehk_f100" in str(alone.value)  # close names
    with ebpfhooks.attach_all(hooks, maps, "ehkm_call", optional=True) as group:
        assert [(h, str(e)) for h, e in group.skipped] == [(hooks[3], str(alone.value))]
        _run(binary)
        _check_once_each(maps, group, hooks[:3])


def _one_past_the_end(monkeypatch: pytest.MonkeyPatch, binary: Path, bad: Hook) -> None:
    """Resolve ``bad`` to an offset past the end of the file: the kernel refuses it."""
    import attrs

    real = Uprobe._resolve_batch.__func__  # type: ignore[attr-defined]
    size = binary.stat().st_size

    def resolve(cls: type[Uprobe], hooks: list[Hook]) -> list[Any]:
        out = real(cls, hooks)
        for i, hook in enumerate(hooks):
            if hook == bad:
                res = out[i]
                assert isinstance(res, UprobeResolution)
                out[i] = UprobeResolution(hook, target=attrs.evolve(
                    res.target, file_offset=size + 0x10000))
        return list(out)

    monkeypatch.setattr(Uprobe, "_resolve_batch", classmethod(resolve))


def test_error_the_kernel_refuses_a_batch(maps: Any, binary: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """All or nothing: the typed error, nothing attached; optional: that hook skipped."""
    hooks = list(ebpfhooks.expand(f"uprobe:{binary}:ehk_f99*"))
    _one_past_the_end(monkeypatch, binary, hooks[4])
    with pytest.raises(AttachError) as err:
        ebpfhooks.attach_all(hooks, maps, "ehkm_call")
    assert err.value.errno == 22  # EINVAL: the offset is past the end of the file
    assert str(binary) in str(err.value)
    _run(binary)
    assert sum(_table(maps, "hits")) == 0  # nothing stayed attached
    with ebpfhooks.attach_all(hooks, maps, "ehkm_call", optional=True) as group:
        assert [h for h, _ in group.skipped] == [hooks[4]]
        skipped = group.skipped[0][1]
        assert isinstance(skipped, AttachError) and skipped.errno == 22
        assert str(hooks[4]) in str(skipped)  # its own error, naming it
        assert [link.cookie for link in group] == [0, 1, 2, 3, *range(5, len(hooks))]
        _run(binary)
        hits = _table(maps, "hits")
        assert hits[:len(hooks)] == [1, 1, 1, 1, 0] + [1] * (len(hooks) - 5)


# --------------------------------------------------------------------------- lifetimes

WORKER = r"""
import sys, time
from bcc import BPF
import ebpfhooks
b = BPF(text="int ehkk_call(struct pt_regs *ctx) { return (int)bpf_get_attach_cookie(ctx); }")
group = ebpfhooks.expand(sys.argv[1]).attach(b, "ehkk_call")
print(len(group), group.links[0].via, flush=True)
time.sleep(600)
"""


def test_sigkill_of_a_process_holding_a_batch_leaves_nothing(
        live: None, binary: Path, tmp_path: Path) -> None:
    events = uprobe_events()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    worker = subprocess.Popen([sys.executable, str(script), pattern(binary)],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert worker.stdout is not None
        ready, _, _ = select.select([worker.stdout], [], [], 300)
        line = worker.stdout.readline() if ready else ""
        expected = f"{FUNCTIONS} uprobe_multi" if multi() else "11 perf_link"
        assert line.strip() == expected, line
        loaded = sorted(n for n in bpf_prog_names() if n.startswith(KILL_PREFIX))
        assert loaded == ["ehkk_call"]  # the link's copy (multi), or bcc's (per probe)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert worker.returncode == -signal.SIGKILL
    # the kernel closed the worker's fds: the link (or the perf links), the programs
    assert _settled(lambda: not any(n.startswith(KILL_PREFIX) for n in bpf_prog_names()))
    assert uprobe_events() == events


# --------------------------------------------------------------------------- trace


def _bpftool(what: str) -> list[dict[str, Any]]:
    out = subprocess.run(["bpftool", what, "list", "--json"], capture_output=True, text=True,
                         check=True).stdout
    return list(json.loads(out))


def test_trace_counts_a_uprobe_wildcard_per_hook(live: None, binary: Path) -> None:
    """`ebpfhooks trace` counts each hook of the group by its cookie, with one function."""
    spec = f"uprobe:{binary}:ehk_f1*" if multi() else f"uprobe:{binary}:ehk_f99*"
    want = 111 if multi() else 11  # ehk_f1, ehk_f10..19, ehk_f100..199
    proc = subprocess.Popen([sys.executable, "-m", "ebpfhooks", "trace", spec, "--json",
                             "--duration", "6"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], 300)
    line = proc.stderr.readline() if ready else ""
    if not line.startswith("ebpfhooks: tracing"):
        proc.kill()
        pytest.fail(f"trace did not attach: {line}{proc.communicate()[1]}")
    # one counting function for the whole wildcard, on one uprobe_multi link (6.6+)
    progs = _bpftool("prog")
    cookie_progs = {p["id"] for p in progs if p.get("name") == "ehk_cookie"}
    assert cookie_progs, [p.get("name") for p in progs]
    if multi():
        assert any(link.get("type") in (12, "uprobe_multi") and link.get("prog_id") in
                   cookie_progs for link in _bpftool("link"))
    target = _start(binary)
    _finish(target)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    rows = json.loads(out)["hooks"]
    assert len(rows) == want
    for row in rows:
        assert [(p["pid"], p["hits"]) for p in row["processes"]] == [(target.pid, 1)], row


def test_group_program_reads_its_cookie_with_ctypes(maps: Any, binary: Path) -> None:
    """``{link.cookie: link.hook}`` maps a counter back to its hook (docs/uprobes.md)."""
    with ebpfhooks.expand(f"uprobe:{binary}:ehk_f99*").attach(maps, "ehkm_call") as group:
        by_cookie = {link.cookie: link.hook for link in group}
        subprocess.run([str(binary)], check=True, capture_output=True)
        table = maps["hits"]
        counted = {str(by_cookie[c]): int(table[ctypes.c_int(c)].value)  # type: ignore[index]
                   for c in by_cookie}
    assert counted == {f"uprobe:{binary}:ehk_f99{d}": 1 for d in ["", *"0123456789"]}
