"""The docs cannot drift: every Python block and every `ebpfhooks ...` command in README.md
and docs/ is run here, and docs/api.md must match the code.

Conventions for writers:
- ```python blocks are complete scripts; they run as root with bcc (live).
- ```pycon blocks are doctests (`>>>` prompts, ELLIPSIS enabled).
- In ```sh/```console blocks, each line starting with `ebpfhooks ` (or `$ ebpfhooks `) is a
  command that must exit 0; other lines are not run.
- Anything else (```text, ```c, ```) is not run.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([A-Za-z0-9_-]*)[^\n]*\n(.*?)^```", re.M | re.S)


def _blocks(lang: set[str]) -> list[tuple[str, int, str]]:
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in FENCE.finditer(text):
            if m.group(1) in lang:
                line = text.count("\n", 0, m.start()) + 1
                out.append((f"{path.relative_to(ROOT)}:{line}", line, m.group(2)))
    return out


PYTHON = _blocks({"python"})
PYCON = _blocks({"pycon"})
SHELL = [
    (f"{where}+{i}", cmd)
    for where, _, body in _blocks({"sh", "console", "shell", "bash"})
    for i, raw in enumerate(body.splitlines())
    if (cmd := raw.strip().removeprefix("$ ").split("  #")[0].strip()).startswith("ebpfhooks ")
]


def test_api_reference_is_current() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts/gen_api_docs.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.live
@pytest.mark.parametrize(("where", "line", "code"), PYTHON, ids=[w for w, _, _ in PYTHON])
def test_python_block_runs(live: None, where: str, line: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text("\n" * (line) + code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, f"{where} failed:\n{out.stdout}\n{out.stderr}"


@pytest.mark.parametrize(("where", "line", "code"), PYCON, ids=[w for w, _, _ in PYCON])
def test_pycon_block_passes(where: str, line: int, code: str) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(code, {}, where, where, line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{where}: {runner.failures} doctest failures (see output)"


@pytest.mark.live
@pytest.mark.parametrize(("where", "cmd"), SHELL, ids=[w for w, _ in SHELL])
def test_cli_command_runs(live: None, where: str, cmd: str) -> None:
    argv = shlex.split(cmd)
    exe = Path(sys.executable).parent / "ebpfhooks"
    argv[0] = str(exe) if exe.exists() else argv[0]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COLUMNS": "100"})
    assert out.returncode == 0, f"{where}: {cmd!r} failed:\n{out.stdout}\n{out.stderr}"


def test_docs_have_runnable_examples() -> None:
    assert PYTHON, "no ```python blocks found"


def test_license_file_is_the_one_pyproject_names() -> None:
    """pyproject.toml says Apache-2.0; the repository and the wheel carry that license."""
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == {"text": "Apache-2.0"}
    assert meta["tool"]["setuptools"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_public_docstring_examples_use_only_public_names() -> None:
    """Every example docs/api.md shows runs with nothing but what ``ebpfhooks`` exports
    (an example calling a private helper such as ``parse(...)`` would fail here)."""
    import doctest
    import inspect

    import ebpfhooks

    public = {name: getattr(ebpfhooks, name) for name in ebpfhooks.__all__}
    public["ebpfhooks"] = ebpfhooks
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failed, ran = [], 0
    for name, obj in sorted(public.items()):
        if name == "ebpfhooks":
            continue
        members = [obj]
        if inspect.isclass(obj):
            members += [v for k, v in vars(obj).items() if not k.startswith("_")]
        for member in members:
            member = (getattr(member, "__func__", None) or getattr(member, "fget", None)
                      or member)
            for test in finder.find(member, name, globs=dict(public)):
                result = runner.run(test, out=lambda _text: None)
                ran += result.attempted
                if result.failed:
                    failed.append(test.name)
    assert ran > 20
    assert failed == []
