"""The package's layout shows its architecture: a few modules at the root, every import pointing down the layers
below (a module never imports one of a layer above it), and no import circle, type-only and lazy imports
included."""

from __future__ import annotations

from pathlib import Path

from latentseg.util.closure import ROOT, imported_modules, module_file

# Lowest first. A module may import its own layer's modules and those of the layers below.
LAYERS = [
    {"util"},  # atomic files, progress lines, devices, import closures, the warm interpreter
    {"config", "datasets", "data", "losses", "models"},  # settings, data sets, reading data, the equations, networks
    {"methods"},  # each method's settings and objective
    {"train", "evaluate", "classifier", "prepare"},  # a run's loop; metrics; Mittal et al.'s classifier; making data
    {"run", "predict", "weights"},  # a data set's runs and their records; a run on any image; initial weights
    {"registry"},  # params.yaml -> resolved runs
    {"reports", "cluster", "bench"},  # tables, claims, figures; Slurm; speed
    {"cli"},  # the latentseg command
]
ROOT_MODULES_AT_MOST = 10


def unit(path: Path) -> str:
    """A module's unit: its package under latentseg/, or the root module's own name."""
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def layer(name: str) -> int:
    found = [i for i, units in enumerate(LAYERS) if name in units]
    assert found, f"latentseg/{name} is in no layer of tests/test_architecture.py: give it one"
    return found[0]


def edges() -> dict[Path, set[Path]]:
    """Every module's explicit imports of package modules (not the packages its imports pass through)."""
    graph = {}
    for path in sorted(ROOT.rglob("*.py")):
        if "__pycache__" in path.parts or path == ROOT / "__init__.py":
            continue
        graph[path] = {f for m in imported_modules(path, ROOT, plugins=False)
                       if (f := module_file(m, ROOT)) is not None and f != path and f != ROOT / "__init__.py"}
    return graph


def test_a_few_modules_at_the_root():
    root = sorted(p.name for p in ROOT.glob("*.py") if p.name != "__init__.py")
    assert len(root) <= ROOT_MODULES_AT_MOST, root


def test_no_module_imports_one_of_a_layer_above_it():
    upward = [f"{path.relative_to(ROOT)} -> {target.relative_to(ROOT)}"
              for path, targets in edges().items() for target in targets
              if layer(unit(target)) > layer(unit(path))]
    assert upward == []


def test_no_import_circle():
    graph, state, circles = edges(), {}, []

    def visit(node: Path, stack: list[Path]) -> None:
        state[node] = "open"
        for target in graph.get(node, ()):
            if state.get(target) == "open":
                circles.append(" -> ".join(str(p.relative_to(ROOT)) for p in [*stack[stack.index(target):], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert circles == []
