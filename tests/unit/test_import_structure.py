"""The package's import graph has no cycles, and every emulated provider has the same layout.

An import cycle (``a`` imports ``b`` imports ``a``, however lazily: inside a function or under
``TYPE_CHECKING``) couples two modules so that neither can be read, tested or moved alone; the
emulator had two. The graph is read from the source with ``ast`` (no imports run): every
``import``/``from ... import`` anywhere in a module is an edge to the module it names (a
submodule when ``from pkg import sub`` names one, else the package).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "llmbatch"
EMULATED = ("anthropic", "gemini", "openai")
# What every emulated provider package has (docs/emulator.md, "Layout").
LAYOUT = {"__init__.py", "errors.py", "routes.py", "service.py", "state.py", "lines.py",
          "results.py"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return module
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join([*base, module] if module else base)


def import_graph() -> dict[str, set[str]]:
    """module -> the llmbatch modules it imports (anywhere in its source)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module or "", node, name, path.name == "__init__.py")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]  # `import a.b.c` imports a.b.c
                if target and target != name and target.startswith("llmbatch"):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_detector_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("provider", EMULATED)
def test_every_emulated_provider_follows_one_layout(provider: str) -> None:
    present = {p.name for p in (PACKAGE / "emulator" / provider).glob("*.py")}
    assert present >= LAYOUT, f"{provider} lacks {sorted(LAYOUT - present)}"


def test_the_core_imports_nothing_from_the_emulator() -> None:
    """The emulator is an extra: only the CLI (lazily, to serve) and the test kit's built-in
    harnesses may import it."""
    allowed = ("llmbatch.emulator", "llmbatch.cli", "llmbatch.testing.contract.builtin")
    graph = import_graph()
    offenders = sorted(name for name, targets in graph.items()
                       if not name.startswith(allowed)
                       and any(t.startswith("llmbatch.emulator") for t in targets))
    assert not offenders
