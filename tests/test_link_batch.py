"""Groups of uprobes without the live kernel: batches, cookies, fallbacks, errors.

The kernel calls (``bpfsys.prog_load``, ``bpfsys.uprobe_multi``, ``bpfsys.perf_uprobe``)
and bcc's per-probe attach are replaced by recorders that hand out real file
descriptors (of /dev/null), so closing is checked too; the targets are resolved for
real in a small gcc-built binary. tests/test_live_multi.py proves the same paths
against the kernel.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ebpfhooks
from ebpfhooks import Hook, LinkGroup, Program, bpfsys
from ebpfhooks import _bcc as adapter
from ebpfhooks.errors import (
    AttachError,
    HookPermissionError,
    ProgramError,
    SymbolNotFoundError,
)
from ebpfhooks.kernel import features
from ebpfhooks.kernel.features import Feature, FeatureStatus

FUNCTIONS = 5


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A binary with functions ehk_b0..ehk_b4."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the target")
    src = tmp_path_factory.mktemp("batch") / "batch.c"
    lines = [f"__attribute__((noipa)) int ehk_b{i}(int x) {{ return x + {i}; }}"
             for i in range(FUNCTIONS)]
    lines += ["int main(void) { return " + " + ".join(f"ehk_b{i}(0)" for i in range(FUNCTIONS))
              + "; }"]
    src.write_text("\n".join(lines) + "\n")
    out = src.with_suffix("")
    subprocess.run(["gcc", "-O1", "-o", str(out), str(src)], check=True)
    return out


class FakeModule:
    """Passes for a bcc module (``load_func`` and ``funcs``)."""

    def __init__(self) -> None:
        self.funcs: dict[bytes, Any] = {}

    def load_func(self, name: bytes, prog_type: int) -> Any:
        raise AssertionError("the adapter's loader is replaced in these tests")


class Kernel:
    """Records the kernel calls; each hands out a real fd, and remembers which are open."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.open: set[int] = set()
        self.multi_error: Exception | None = None
        self.multi_ret_error: Exception | None = None  # for uretprobe batches only
        self.load_error: Exception | None = None
        self.perf_errors: dict[int, Exception] = {}  # by file offset

    def fd(self) -> int:
        fd = os.open(os.devnull, os.O_RDONLY)
        self.open.add(fd)
        return fd


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kernel]:
    k = Kernel()
    real_close = os.close

    def close(fd: int) -> None:
        k.open.discard(fd)
        real_close(fd)

    def prog_load(prog_type: int, insns: bytes, **kw: Any) -> int:
        k.calls.append(("prog_load", prog_type, kw["expected_attach_type"], kw["name"]))
        if k.load_error is not None:
            raise k.load_error
        return k.fd()

    def uprobe_multi(prog: int, path: str, offsets: list[int], ref_ctr_offsets: Any = None,
                     cookies: list[int] | None = None, *, retprobe: bool = False,
                     pid: int | None = None, what: str | None = None) -> int:
        k.calls.append(("uprobe_multi", path, list(offsets), cookies, retprobe, pid))
        if k.multi_error is not None:
            raise k.multi_error
        if retprobe and k.multi_ret_error is not None:
            raise k.multi_ret_error
        return k.fd()

    def perf_uprobe(prog: int, path: str, offset: int, *, retprobe: bool = False,
                    pid: int | None = None, ref_ctr_offset: int = 0,
                    cookie: int | None = None, what: str | None = None) -> bpfsys.PerfUprobe:
        k.calls.append(("perf_uprobe", path, offset, cookie, retprobe, pid))
        if offset in k.perf_errors:
            raise k.perf_errors[offset]
        return bpfsys.PerfUprobe(k.fd(), k.fd())

    def attach_uprobe(bpf: Any, fn_name: str, path: str, file_offset: int, *, pid: int | None,
                      ret: bool, what: str) -> adapter.Attachment:
        k.calls.append(("bcc_attach_uprobe", path, file_offset, ret, pid))
        if file_offset in k.perf_errors:
            raise k.perf_errors[file_offset]
        fd = k.fd()
        return adapter.Attachment(lambda: close(fd), via="perf_event")

    class Fn:
        fd = 99

    monkeypatch.setattr(adapter.uprobes.os, "close", close)
    monkeypatch.setattr(adapter.uprobes, "compiled_insns",
                        lambda bpf, fn: (b"\x95" + b"\0" * 7, "GPL"))
    monkeypatch.setattr(adapter.uprobes, "_load_func", lambda bpf, fn, prog_type, what: Fn())
    monkeypatch.setattr(adapter.uprobes, "attach_uprobe", attach_uprobe)  # in a batch
    monkeypatch.setattr(adapter, "attach_uprobe", attach_uprobe)  # a single hook
    monkeypatch.setattr(bpfsys, "prog_load", prog_load)
    monkeypatch.setattr(bpfsys, "uprobe_multi", uprobe_multi)
    monkeypatch.setattr(bpfsys, "perf_uprobe", perf_uprobe)
    monkeypatch.setattr(features, "capabilities", lambda: frozenset({"CAP_SYS_ADMIN"}))
    monkeypatch.delenv("EBPFHOOKS_UPROBE_ATTACH", raising=False)
    have(monkeypatch, uprobe_multi=True, perf_link=True)
    yield k
    for fd in list(k.open):
        os.close(fd)


def have(monkeypatch: pytest.MonkeyPatch, **kinds: bool) -> None:
    """Pretend the kernel has (or lacks) these features; uprobes it always has."""
    kinds.setdefault("uprobes", True)
    for name, yes in kinds.items():
        status = FeatureStatus.YES if yes else FeatureStatus.NO
        monkeypatch.setattr(features, name,
                            lambda n=name, s=status: Feature(n, s, "pretend", None))


def hooks_of(binary: Path, kind: str = "uprobe", n: int = FUNCTIONS, pid: int | None = None
             ) -> list[Hook]:
    opt = f"[pid={pid}]" if pid else ""
    return [Hook.from_spec(f"{kind}:{binary}:ehk_b{i}{opt}") for i in range(n)]


def offsets(hooks: list[Hook]) -> list[int]:
    return [h.resolve().file_offset for h in hooks]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- the multi path


def test_a_batch_is_one_uprobe_multi_link_with_each_hooks_index_as_cookie(
        kernel: Kernel, binary: Path) -> None:
    hooks = hooks_of(binary)
    group = LinkGroup.attach_all(hooks, Program(FakeModule(), "on_call"))
    assert kernel.calls == [
        ("prog_load", bpfsys.BPF_PROG_TYPE_KPROBE, bpfsys.BPF_TRACE_UPROBE_MULTI, "on_call"),
        ("uprobe_multi", str(binary), offsets(hooks), list(range(FUNCTIONS)), False, None),
    ]
    assert [link.hook for link in group] == hooks  # the hooks' order
    assert [link.cookie for link in group] == list(range(FUNCTIONS))
    assert {link.via for link in group} == {"uprobe_multi"}
    assert len({link.fd for link in group}) == 1 and group.links[0].fd in kernel.open
    assert len(kernel.open) == 2  # the link and its program: nothing per probe
    group.detach()
    assert kernel.open == set()


def test_detaching_one_link_of_a_batch_detaches_the_batch(kernel: Kernel, binary: Path) -> None:
    group = LinkGroup.attach_all(hooks_of(binary), Program(FakeModule(), "on_call"))
    group.links[2].detach()
    assert kernel.open == set()  # the link and the program closed, once
    assert not group.attached
    assert [link.attached for link in group] == [False] * FUNCTIONS
    assert [link.fd for link in group] == [None] * FUNCTIONS
    assert {link.via for link in group} == {""}
    group.detach()  # every sibling: nothing more to close
    group.links[2].detach()
    assert repr(group.links[0]).endswith("(detached)>")


def test_batches_by_kind_file_pid_and_program(kernel: Kernel, binary: Path,
                                              tmp_path: Path) -> None:
    other = tmp_path / "copy"
    shutil.copy(binary, other)
    pid = os.getpid()
    entry, ret = hooks_of(binary, n=3), hooks_of(binary, "uretprobe", n=2)
    with_pid = hooks_of(binary, n=2, pid=pid)
    alone = [Hook.from_spec(f"uprobe:{other}:ehk_b0")]
    hooks = [entry[0], ret[0], *with_pid, entry[1], alone[0], ret[1], entry[2]]
    group = LinkGroup.attach_all(hooks, Program(FakeModule(), "on_call"))
    multi = [c[1:] for c in kernel.calls if c[0] == "uprobe_multi"]
    assert multi == [  # in the order of each batch's first hook, cookies = hook indices
        (str(binary), offsets([entry[0], entry[1], entry[2]]), [0, 4, 7], False, None),
        (str(binary), offsets([ret[0], ret[1]]), [1, 6], True, None),
        (str(binary), offsets(with_pid), [2, 3], False, pid),
    ]
    # a batch of one keeps the per-probe path, with its cookie through a perf link
    assert [c[1:] for c in kernel.calls if c[0] == "perf_uprobe"] == [
        (str(other), offsets(alone)[0], 5, False, None)]
    assert [link.cookie for link in group] == list(range(8))
    assert [link.via for link in group] == ["uprobe_multi"] * 5 + ["perf_link"] + [
        "uprobe_multi"] * 2
    group.detach()
    assert kernel.open == set()


def test_each_function_of_a_module_without_fn_name_is_its_own_batch(
        kernel: Kernel, binary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A BPF module without fn_name: each hook its function; equal functions batch."""
    from ebpfhooks.hooks import link as link_module

    monkeypatch.setattr(link_module, "choose_function",
                        lambda bpf, hook: "on_a" if str(hook).endswith(("b0", "b2")) else "on_b")
    group = LinkGroup.attach_all(hooks_of(binary, n=4), FakeModule())
    assert [c[3] for c in kernel.calls if c[0] == "prog_load"] == ["on_a", "on_b"]
    assert [c[3] for c in kernel.calls if c[0] == "uprobe_multi"] == [[0, 2], [1, 3]]
    assert [link.program.fn_name for link in group] == ["on_a", "on_b", "on_a", "on_b"]
    group.detach()


def test_a_single_hook_attach_keeps_todays_path_without_cookie(kernel: Kernel,
                                                               binary: Path) -> None:
    with hooks_of(binary, n=1)[0].attach(Program(FakeModule(), "on_call")) as link:
        assert kernel.calls[0][0] == "bcc_attach_uprobe"
        assert link.cookie is None and link.via == "perf_event"
    assert kernel.open == set()


# --------------------------------------------------------------------------- per-probe paths


def test_without_uprobe_multi_each_probe_has_its_cookie_through_a_perf_link(
        kernel: Kernel, binary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    have(monkeypatch, uprobe_multi=False, perf_link=True)
    hooks = hooks_of(binary, "uretprobe")
    group = LinkGroup.attach_all(hooks, Program(FakeModule(), "on_call"))
    assert kernel.calls == [("perf_uprobe", str(binary), off, i, True, None)
                            for i, off in enumerate(offsets(hooks))]
    assert [link.cookie for link in group] == list(range(FUNCTIONS))
    assert {link.via for link in group} == {"perf_link"}
    assert len(kernel.open) == FUNCTIONS  # the perf event's fd is closed: the link holds it
    group.links[1].detach()  # its own probe only
    assert [link.attached for link in group] == [True, False, True, True, True]
    group.detach()
    assert kernel.open == set()


def test_the_mode_variable_forces_the_per_probe_path(kernel: Kernel, binary: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EBPFHOOKS_UPROBE_ATTACH", "perf_event")
    with LinkGroup.attach_all(hooks_of(binary), Program(FakeModule(), "on_call")) as group:
        assert {c[0] for c in kernel.calls} == {"perf_uprobe"}
        assert {link.via for link in group} == {"perf_link"}
    monkeypatch.setenv("EBPFHOOKS_UPROBE_ATTACH", "fast")
    with pytest.raises(AttachError, match="EBPFHOOKS_UPROBE_ATTACH='fast' is not one of "
                                          "auto, perf_event"):
        LinkGroup.attach_all(hooks_of(binary), Program(FakeModule(), "on_call"))
    with pytest.raises(AttachError, match="EBPFHOOKS_UPROBE_ATTACH='fast'"):  # a batch of one
        LinkGroup.attach_all(hooks_of(binary, n=1), Program(FakeModule(), "on_call"))
    assert kernel.open == set()


def test_without_perf_links_probes_attach_without_cookies(
        kernel: Kernel, binary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    have(monkeypatch, uprobe_multi=False, perf_link=False)
    with LinkGroup.attach_all(hooks_of(binary), Program(FakeModule(), "on_call")) as group:
        assert {c[0] for c in kernel.calls} == {"bcc_attach_uprobe"}
        assert [link.cookie for link in group] == [None] * FUNCTIONS
    assert kernel.open == set()


# --------------------------------------------------------------------------- errors


def test_error_a_refused_batch_is_raised_and_undoes_the_group(kernel: Kernel,
                                                              binary: Path) -> None:
    refused = AttachError("the kernel refused the uprobe_multi link for 2 uretprobes",
                          errno=errno.EINVAL)
    entry, ret = hooks_of(binary, n=3), hooks_of(binary, "uretprobe", n=2)
    kernel.multi_ret_error = refused
    with pytest.raises(AttachError) as err:
        LinkGroup.attach_all([*entry, *ret], Program(FakeModule(), "on_call"))
    assert err.value is refused
    assert kernel.open == set()  # the first batch detached, the second's program closed
    assert not any(c[0] == "perf_uprobe" for c in kernel.calls)  # no per-probe retry


def test_error_optional_retries_a_refused_batch_one_by_one(kernel: Kernel,
                                                           binary: Path) -> None:
    """optional=True: each hook's own error lands in skipped, the others attach."""
    hooks = hooks_of(binary)
    bad = offsets(hooks)[3]
    kernel.multi_error = AttachError("the kernel refused the uprobe_multi link", errno=22)
    kernel.perf_errors[bad] = AttachError(f"the kernel refused attaching {hooks[3]}: EINVAL",
                                          errno=22)
    group = LinkGroup.attach_all(hooks, Program(FakeModule(), "on_call"), optional=True)
    assert [link.hook for link in group] == hooks[:3] + hooks[4:]
    assert [link.cookie for link in group] == [0, 1, 2, 4]
    assert [(h, e) for h, e in group.skipped] == [(hooks[3], kernel.perf_errors[bad])]
    assert [c[0] for c in kernel.calls].count("perf_uprobe") == FUNCTIONS
    group.detach()
    assert kernel.open == set()


def test_error_strict_per_probe_failure_undoes_the_probes_made(
        kernel: Kernel, binary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    have(monkeypatch, uprobe_multi=False, perf_link=True)
    hooks = hooks_of(binary)
    kernel.perf_errors[offsets(hooks)[2]] = AttachError("refused", errno=22)
    with pytest.raises(AttachError, match="refused"):
        LinkGroup.attach_all(hooks, Program(FakeModule(), "on_call"))
    assert kernel.open == set()


def test_error_missing_symbol_is_the_single_attach_error_and_asks_no_kernel(
        kernel: Kernel, binary: Path) -> None:
    hooks = [*hooks_of(binary, n=2), Hook.from_spec(f"uprobe:{binary}:ehk_b9")]
    with pytest.raises(SymbolNotFoundError) as in_group:
        LinkGroup.attach_all(hooks, Program(FakeModule(), "on_call"))
    assert kernel.calls == []
    with pytest.raises(SymbolNotFoundError) as alone:
        hooks[2].attach(Program(FakeModule(), "on_call"))
    assert str(in_group.value) == str(alone.value)
    assert "ehk_b9" in str(alone.value)
    group = LinkGroup.attach_all(hooks, Program(FakeModule(), "on_call"), optional=True)
    assert [h for h, _ in group.skipped] == [hooks[2]]
    assert str(group.skipped[0][1]) == str(alone.value)
    assert [link.cookie for link in group] == [0, 1]
    group.detach()


def test_error_a_program_the_multi_load_refuses_goes_the_per_probe_way(
        kernel: Kernel, binary: Path) -> None:
    """The bcc copy decides: the same ProgramError (and verifier log) as today."""
    kernel.load_error = ProgramError("loading 'on_call': the verifier rejected it")
    with LinkGroup.attach_all(hooks_of(binary), Program(FakeModule(), "on_call")) as group:
        assert [c[0] for c in kernel.calls] == ["prog_load"] + ["perf_uprobe"] * FUNCTIONS
        assert [link.cookie for link in group] == list(range(FUNCTIONS))
    assert kernel.open == set()


def test_error_permission_is_raised_even_when_optional(kernel: Kernel, binary: Path) -> None:
    kernel.load_error = HookPermissionError("loading was refused", capability="CAP_BPF")
    with pytest.raises(HookPermissionError):
        LinkGroup.attach_all(hooks_of(binary), Program(FakeModule(), "on_call"), optional=True)
    assert kernel.open == set()


def test_attachment_detaches_once() -> None:
    calls: list[int] = []
    shared = adapter.Attachment(lambda: calls.append(1), via="uprobe_multi", fd=5)
    shared.detach()
    shared.detach()
    assert calls == [1] and shared.done and shared.fd is None

    def refuse() -> None:
        raise AttachError("busy")

    failing = adapter.Attachment(refuse, via="bcc")
    with pytest.raises(AttachError):
        failing.detach()
    assert not failing.done  # a retry is possible


def test_public_names() -> None:
    assert ebpfhooks.LinkGroup is LinkGroup
    assert adapter.UPROBE_ATTACH_MODES == ("auto", "perf_event")
