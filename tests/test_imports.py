"""Imports point one way: no cycle among tokclf's modules, counting the imports inside functions (an
import moved into a function still needs its module at run time, it only hides the cycle) and the
package __init__ that importing a submodule runs first."""

import ast
from pathlib import Path

import pytest

# `paths`: run again from a checkout under an awkward path (tests/test_checkout_path.py)
pytestmark = pytest.mark.paths

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tokclf"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def known_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(tree: ast.AST, current: str, is_package: bool, modules) -> set[str]:
    """The tokclf modules a module's code imports anywhere (top level, functions, classes)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the current package upwards
                package = current.split(".") if is_package else current.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            # `from pkg import mod` imports the submodule pkg.mod when there is one
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "tokclf":
                continue
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            # Importing a.b.c runs a/__init__ and a/b/__init__ first.
            parts = name.split(".")
            found.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    found.discard(current)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = known_modules()
    return {name: imported(ast.parse(path.read_text()), name, path.name == "__init__.py", modules)
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]):
    """One import cycle as a list of modules (the first repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_in_tokclf():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_sees_deferred_imports(tmp_path):
    graph = {"tokclf.a": {"tokclf.b"}, "tokclf.b": set()}
    code = "def f():\n    from tokclf.a import x\n"
    graph["tokclf.b"] = imported(ast.parse(code), "tokclf.b", False, {"tokclf.a", "tokclf.b"})
    assert find_cycle(graph) == ["tokclf.a", "tokclf.b", "tokclf.a"]


def test_readers_import_no_torch_and_no_transformers():
    """The formats (and the records, spans and words under them) are pure: tested without a model."""
    graph, modules = import_graph(), known_modules()
    readers = [name for name in modules if name.startswith("tokclf.formats")] + [
        "tokclf.records", "tokclf.formats.spans", "tokclf.formats.words"]
    for name in readers:
        tree = ast.parse(modules[name].read_text())
        heavy = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                 for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        assert not heavy & {"torch", "transformers", "accelerate"}, name
        assert all(t.startswith(("tokclf.formats", "tokclf.records", "tokclf.formats.spans", "tokclf.formats.words", "tokclf.errors"))
                   or t == "tokclf" for t in graph[name]), (name, graph[name])


def test_every_package_folder_has_an_init():
    """setuptools' `packages.find` (pyproject.toml) installs only folders with an __init__.py."""
    folders = {path.parent for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts}
    assert all((folder / "__init__.py").is_file() for folder in folders), sorted(
        str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file())
