"""No import circles: a module a request object needs must not import its app's module.

Every ``import`` counts, including those under ``TYPE_CHECKING``: a circle hidden
from the interpreter still ties the two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bridge

ROOT = Path(bridge.__file__).parent


def _module_name(path: Path) -> str:
    parts = ["bridge", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The bridge modules ``path`` imports (relative or absolute)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("bridge"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("bridge"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in ROOT.rglob("*.py")}
    return {name: _imports(path) & modules.keys() for name, path in modules.items()}


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt == goal:
                return True
            # The package __init__ imports everything: passing through it is no circle.
            if nxt not in seen and nxt != "bridge":
                seen.add(nxt)
                todo.append(nxt)
    return False


def test_the_graph_sees_a_known_import() -> None:
    assert _reaches(_graph(), "bridge._to_wsgi", "bridge._wsgi_call")


@pytest.mark.parametrize(("request_module", "app_module"), [("_wsgi_call", "_to_wsgi")])
def test_a_request_module_does_not_import_its_apps_module(
    request_module: str, app_module: str
) -> None:
    assert not _reaches(_graph(), f"bridge.{request_module}", f"bridge.{app_module}")
