"""The house rules of docs/architecture.md, checked on the source: room sizes, who may
import whom at module level, no import cycle, one module imports bcc."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "ebpfhooks"
#: Rooms below the hooks: none of them imports a higher room at module level.
LOW_ROOMS = ("ebpfhooks.errors", "ebpfhooks.names", "ebpfhooks.caps", "ebpfhooks.records",
             "ebpfhooks.spec", "ebpfhooks.kernel", "ebpfhooks.elf", "ebpfhooks.bpfsys",
             "ebpfhooks._util")
HIGH_ROOMS = ("ebpfhooks.hooks", "ebpfhooks.discover", "ebpfhooks.chain", "ebpfhooks.trace",
              "ebpfhooks.cleanup", "ebpfhooks.doctor", "ebpfhooks.bench", "ebpfhooks.cli")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _top_level_imports(path: Path, name: str) -> set[str]:
    """What a module imports when it is imported (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks are not run
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def test_no_module_is_over_600_lines() -> None:
    long = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    assert {n: c for n, c in long.items() if c > 620} == {}


def test_only_the_adapter_imports_bcc() -> None:
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        uses = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for a in node.names} | {node.module or "" for node in ast.walk(tree)
                                        if isinstance(node, ast.ImportFrom)}
        if any(u == "bcc" or u.startswith("bcc.") for u in uses):
            assert name == "ebpfhooks._bcc.core", name


def _all_imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or in a function (not for types only)."""
    found: set[str] = set()

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if (isinstance(child, ast.If) and isinstance(child.test, ast.Name)
                    and child.test.id == "TYPE_CHECKING"):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.add(child.module)
            walk(child)

    walk(ast.parse(path.read_text()))
    return found


def test_low_rooms_never_import_high_rooms() -> None:
    """Nothing below the hooks imports the hooks or the tools, not even inside a function."""
    for name, path in _modules().items():
        if not name.startswith(LOW_ROOMS):
            continue
        bad = {i for i in _all_imports(path) if i.startswith(HIGH_ROOMS)}
        assert bad == set(), (name, bad)


def test_no_import_cycle_between_modules() -> None:
    modules = _modules()
    graph = {name: {i for i in _top_level_imports(path, name) if i in modules and i != name}
             for name, path in modules.items()}
    # a package importing its own submodules (re-exports) is not a cycle
    for name in graph:
        graph[name] = {i for i in graph[name] if not i.startswith(name + ".")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
