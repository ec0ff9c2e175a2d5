"""The tree is the architecture: no import cycle, light analysis/plots imports, small modules and functions."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "attention_variants")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40


def _modules() -> dict[str, Path]:
    """Return module name -> file for every module of the packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Return the project modules that module `name` imports, at any depth of its code (lazy imports too)."""
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        edges |= {target for target in targets if target in known and target != name}
    return edges


def import_graph() -> dict[str, set[str]]:
    """Return module -> the project modules it imports (a package's __init__ counts as the package)."""
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """Return one import cycle of the graph as a list of modules (first == last), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph = import_graph()
    assert "bench.execution.worker" in graph and graph["bench.execution.worker"], "the graph must see real imports"
    assert find_cycle(graph) == []


def test_variants_never_import_bench():
    offenders = {name: sorted(targets) for name, targets in import_graph().items()
                 if name.startswith("attention_variants") and any(t.startswith("bench") for t in targets)}
    assert offenders == {}


def test_worker_never_imports_the_sweep_side():
    reachable, todo, graph = set(), ["bench.execution.worker"], import_graph()
    while todo:
        for target in graph[todo.pop()] - reachable:
            reachable.add(target)
            todo.append(target)
    assert not reachable & {"bench.execution.sweep", "bench.execution.isolation", "bench.cli"}


@pytest.mark.parametrize("module", ["bench.plots", "bench.analysis", "bench.analysis.report", "bench.analysis.gate",
                                    "bench.results", "bench.cli"])
def test_light_imports(module):
    """Analysis and plots never import torch; matplotlib comes only with the commands that draw."""
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = eval(done.stdout)
    forbidden = ["matplotlib"] if module == "bench.cli" else ["torch", "matplotlib"] if module != "bench.plots" else ["torch"]
    assert not set(loaded) & set(forbidden), f"import {module} loads {loaded}"


@pytest.mark.parametrize("name,path", sorted(_modules().items()))
def test_module_is_small_and_says_its_job(name, path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{name} has {len(source.splitlines())} lines"
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree)
    assert docstring and docstring.splitlines()[0].strip(), f"{name} has no docstring saying its job"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == [], f"{name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_each_axis_is_declared_once_in_the_axes_table():
    from dataclasses import fields

    from attention_variants.case import Case
    from bench.axes import AXES
    from bench.results.schema import columns

    case_fields = [f.name for f in fields(Case) if f.name != "extra"]
    declared = [field for axis in AXES.values() for field in axis.fields]
    # Every field of a case is one axis's, once (an axis declared later reads from Case.extra).
    assert sorted(field for field in declared if field in case_fields) == sorted(case_fields)
    assert {column for axis in AXES.values() for column in axis.columns} <= set(columns())
    spelled = [path for path in (REPO / "bench").rglob("*.py") for line in path.read_text().splitlines()
               if line.startswith(("RUNTIMES =", "PASSES =", "DEVICES =", "CASE_KEY ="))]
    assert [path.name for path in spelled] == ["axes.py"] * 3
