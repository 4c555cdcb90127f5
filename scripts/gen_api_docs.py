#!/usr/bin/env python3
"""Write docs/api.md from the code: every public name with its signature and docstring.

    .venv/bin/python scripts/gen_api_docs.py          # rewrite docs/api.md
    .venv/bin/python scripts/gen_api_docs.py --check  # exit 1 if docs/api.md is stale

tests/test_docs.py runs the check, so the API reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "api.md"


def _signature(obj: object) -> str:
    try:
        return str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""


def _section(name: str, obj: object) -> list[str]:
    lines: list[str] = []
    if inspect.isclass(obj):
        bases = [b.__name__ for b in obj.__bases__ if b is not object]
        head = f"class {name}" + (f"({', '.join(bases)})" if bases else "")
        lines.append(f"### `{head}`")
        init_sig = _signature(obj)
        if init_sig and init_sig != "()":
            lines.append("")
            lines.append(f"`{name}{init_sig}`")
    elif callable(obj):
        lines.append(f"### `{name}{_signature(obj)}`")
    else:
        lines.append(f"### `{name}`")
        lines.append("")
        lines.append(f"`{obj!r}`")
    doc = inspect.getdoc(obj)
    if doc and not (inspect.isclass(obj) and doc == inspect.getdoc(obj.__bases__[0])):
        lines.append("")
        lines.append(doc)
    if inspect.isclass(obj):
        for attr, member in sorted(vars(obj).items()):
            if attr.startswith("_") or not (inspect.isfunction(member) or
                                            isinstance(member, (classmethod, property))):
                continue
            target = member.__func__ if isinstance(member, classmethod) else member
            target = target.fget if isinstance(target, property) else target
            mdoc = inspect.getdoc(target)
            if not mdoc:
                continue
            sig = "" if isinstance(member, property) else _signature(target)
            lines.append("")
            lines.append(f"- **`{attr}{sig}`**: " + mdoc.replace("\n", "\n  "))
    lines.append("")
    return lines


def render() -> str:
    sys.path.insert(0, str(ROOT))
    import ebpfhooks

    lines = [
        "# API reference",
        "",
        "Generated from the code by `scripts/gen_api_docs.py` (do not edit by hand);",
        "`tests/test_docs.py` fails when it is out of date. Every name below is importable",
        "from `ebpfhooks`.",
        "",
    ]
    for name in sorted(ebpfhooks.__all__, key=lambda n: (n.startswith("_"), n.lower())):
        if name.startswith("__"):
            continue
        lines.extend(_section(name, getattr(ebpfhooks, name)))
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print("docs/api.md is out of date: run scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
