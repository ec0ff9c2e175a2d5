"""Which variants a change of files touches: the A/B gate times and counts only those when asked.

Both sides of an A/B comparison run under the same harness, interpreter and torch; only
attention_variants/ differs. So a variant can differ between the sides only when its defining
module, or a module of the package that it imports (directly or through another), or a C
source next to one of those, changed. The imports are read from the sources with `ast`
(this tree's), not by importing them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "attention_variants"


@dataclass(frozen=True)
class Touched:
    """The variants a change reaches: `own` ones had their defining module changed, `affected` ones any code they run."""

    own: frozenset[str]
    affected: frozenset[str]


def package_imports(package_dir: Path) -> dict[str, set[str]]:
    """Return, per module stem of the package, the stems of the package's modules it imports directly."""
    graph: dict[str, set[str]] = {}
    for path in package_dir.glob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if (node.level == 1 and not module) or module == PACKAGE:  # `from . import x` / `from attention_variants import x`
                    imported.update(alias.name for alias in node.names)
                if node.level == 1 and module:
                    imported.add(module.split(".")[0])
                elif module.startswith(PACKAGE + "."):
                    imported.add(module.split(".")[1])
            elif isinstance(node, ast.Import):
                imported.update(a.name.split(".")[1] for a in node.names if a.name.startswith(PACKAGE + "."))
        graph[path.stem] = imported
    return graph


def closure(stem: str, graph: dict[str, set[str]]) -> set[str]:
    """Return stem and every module of the package it imports, transitively."""
    seen, todo = set(), [stem]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph.get(current, ()))
    return seen


def variants_touched(changed_files: list[str], package_dir: Path | None = None) -> Touched:
    """Return the variants that changed_files (paths relative to the repository) can make behave differently.

    A changed module that the package never imports (reference.py, the oracles) reaches none;
    one it imports that no variant's code reaches (its __init__) counts as reaching every variant.
    """
    import attention_variants as av  # this side's registry says which module builds each variant

    package_dir = package_dir or Path(av.__file__).parent
    graph = package_imports(package_dir)
    loaded = closure("__init__", graph)  # a module the package does not import (the oracles) runs in no variant's call
    stems = {Path(f).stem for f in changed_files
             if f.startswith(PACKAGE + "/") and Path(f).suffix in (".py", ".c", ".h") and Path(f).stem in loaded}
    modules = {name: getattr(av.get(name).build, "__module__", "").rsplit(".", 1)[-1] for name in av.names()}
    reach = {name: closure(module, graph) for name, module in modules.items()}
    own = {name for name, module in modules.items() if module in stems}
    reached = set().union(*reach.values()) if reach else set()
    if stems - reached:
        return Touched(frozenset(own), frozenset(modules))
    return Touched(frozenset(own), frozenset(name for name, modules_run in reach.items() if modules_run & stems))
