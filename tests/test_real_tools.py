"""The attach points of real, widely used tools: how many the spec parser takes, and why
it refuses the rest.

tests/fixtures/real_tool_attach_points.txt holds every SEC() name of bcc's
libbpf-tools, every probe of bpftrace's tools/ and the KFUNC_PROBE, KRETFUNC_PROBE and
KMOD_RET functions of bcc's Python tools (its header names the commits and the rules).
Each is parsed (``parse``, or ``parse_pattern`` for a wildcard) and nothing more: no
file is opened while parsing, so nothing is resolved against the running system.
A spelling that stops parsing, or a known refusal that starts parsing, fails the test;
the numbers are the ones docs/specs.md gives ("Real tools' attach points").
"""

from __future__ import annotations

import builtins
import difflib  # noqa: F401  (an unknown kind's hint imports it: loaded before open is refused)
import os
import re
from pathlib import Path

import pytest

from ebpfhooks.errors import SpecError
from ebpfhooks.hooks import parse, parse_pattern
from ebpfhooks.spec import has_wildcard

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "real_tool_attach_points.txt"

#: Lines of the fixture (duplicates counted) and how many parse.
TOTAL, PARSED = 577, 542
#: The same without duplicates.
DISTINCT, DISTINCT_PARSED = 460, 454
#: The issue's measurement, before fentry/fexit, tp_btf, lsm, usdt and the perf events.
BEFORE_PARSED, BEFORE_TOTAL = 329, 453

#: Every attach point of the fixture that is refused: the first line of its SpecError,
#: and why refusing it is right (none is a spelling of a kind ebpfhooks has).
KNOWN_REFUSED: dict[str, tuple[str, str]] = {
    "uprobe": (
        "'uprobe' names no user-space function",
        "libbpf's bare SEC(\"uprobe\"): the tool gives binary and offset at load time "
        "(bpf_program__attach_uprobe); a spec names them"),
    "uretprobe": (
        "'uretprobe' names no user-space function",
        "libbpf's bare SEC(\"uretprobe\"), as SEC(\"uprobe\")"),
    "usdt": (
        "'usdt' names no USDT probe",
        "libbpf's bare SEC(\"usdt\"): binary, provider and name come at load time "
        "(bpf_program__attach_usdt)"),
    "uretprobe/readline": (
        "missing ':SYMBOL' after the binary",
        "no binary: libbpf does not auto-attach it either (bashreadline finds the shell or "
        "libreadline itself); uprobe:BINARY:readline is the spec"),
    "perf_event": (
        "ebpfhooks does not attach 'perf_event' hooks",
        "libbpf's SEC(\"perf_event\") names no event (the tool opens it); profile:, "
        "interval:, software:, hardware: are the specs"),
    "fmod_ret/update_socket_protocol": (
        "ebpfhooks does not attach 'fmod_ret' hooks",
        "bcc's KMOD_RET (tools/mptcpify.py): a BPF_MODIFY_RETURN program, a kind "
        "ebpfhooks does not attach"),
}


def _rows() -> list[tuple[str, str]]:
    rows = []
    for line in FIXTURE.read_text().splitlines():
        if line.startswith("#") or not line:
            continue
        spec, _, source = line.partition("\t")
        assert spec and source, f"not SPEC<TAB>SOURCE: {line!r}"
        rows.append((spec, source))
    return rows


def _parse_all(monkeypatch: pytest.MonkeyPatch) -> dict[str, SpecError | None]:
    """Each distinct attach point and its SpecError (``None``: it parses)."""

    def no_file(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"parsing opened a file: {args!r}")

    rows = _rows()
    out: dict[str, SpecError | None] = {}
    with monkeypatch.context() as m:
        m.setattr(builtins, "open", no_file)
        m.setattr(os, "open", no_file)
        for spec, _ in rows:
            if spec in out:
                continue
            try:
                if has_wildcard(spec):
                    assert parse_pattern(spec)
                else:
                    hook = parse(spec)
                    assert parse(str(hook)) == hook, spec
            except SpecError as err:  # any other exception fails the test
                out[spec] = err
            else:
                out[spec] = None
    return out


def test_fixture_names_its_sources() -> None:
    head = FIXTURE.read_text().split("\n# -", 1)[0]
    for repo in ("iovisor/bcc", "bpftrace/bpftrace"):
        assert re.search(rf"github\.com/{repo}\s+commit [0-9a-f]{{40}}\n", head), repo
    sources = {source.partition(":")[0] for _, source in _rows()}
    assert sources == {"bcc", "bpftrace"}


def test_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _rows()
    results = _parse_all(monkeypatch)
    parsed = sum(results[spec] is None for spec, _ in rows)
    assert (len(rows), parsed) == (TOTAL, PARSED)
    assert (len(results), sum(e is None for e in results.values())) == (
        DISTINCT, DISTINCT_PARSED)


def test_every_refusal_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = {spec: str(err).splitlines()[0].removeprefix("invalid hook spec: ")
               for spec, err in _parse_all(monkeypatch).items() if err is not None}
    new = sorted(set(refused) - set(KNOWN_REFUSED))
    assert not new, "no longer parse: " + "; ".join(f"{s} ({refused[s]})" for s in new)
    now_parse = sorted(set(KNOWN_REFUSED) - set(refused))
    assert not now_parse, f"parse now (move them out of KNOWN_REFUSED): {now_parse}"
    for spec, (message, reason) in KNOWN_REFUSED.items():
        assert refused[spec] == message, spec
        assert reason


def test_docs_give_the_numbers() -> None:
    section = (ROOT / "docs" / "specs.md").read_text().split("## Real tools' attach points", 1)
    assert len(section) == 2, "docs/specs.md has no 'Real tools' attach points' section"
    text = section[1].split("\n## ", 1)[0]
    for fact in (f"{PARSED} of {TOTAL}", f"{PARSED / TOTAL:.0%}",
                 f"{DISTINCT_PARSED} of {DISTINCT}",
                 f"{BEFORE_PARSED} of {BEFORE_TOTAL}", f"{BEFORE_PARSED / BEFORE_TOTAL:.0%}",
                 *KNOWN_REFUSED):
        assert fact in text, fact
