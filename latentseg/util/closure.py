"""The import closure of a module within this package: which of its files a piece of code runs.

Two uses: a pipeline stage depends on every file its script imports (``tests/pipeline`` checks ``dvc.yaml``
against it), and a training checkpoint records a fingerprint of the code of its computation, so that a finished
run is never reused by newer code that computes something else (``train/identity.py``). Imports are read from the
source (``ast``), lazy ones inside functions included; only this package's modules are followed. A plug-in
package (``PLUGIN_PACKAGES``: its ``__init__`` imports every module beside it, found at run time) brings all its
modules into a closure that reaches it.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = "latentseg"
ROOT = Path(__file__).resolve().parents[1]  # the package folder
# Modules that change no number of any computation (logging, files, devices, parameter files, these
# fingerprints): outside every code fingerprint (a run's, an evaluation's, a classifier's).
HELPERS = ("latentseg.util.progress", "latentseg.util.files", "latentseg.util.devices", "latentseg.util.closure",
           "latentseg.registry.params")
# and, for a run's training (train/identity.py) and a classifier's, reading and writing checkpoints too
NOT_COMPUTATION = (*HELPERS, "latentseg.train.checkpoint", "latentseg.train.identity", "latentseg.train.stopping")
# registries that import their modules by discovery (pkgutil)
PLUGIN_PACKAGES = ("latentseg.methods", "latentseg.datasets", "latentseg.prepare.standins")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of module ``name`` (``latentseg.x.y``), or None if it is not a module of the package."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = ROOT, plugins: bool = True) -> set[str]:
    """Every package module that ``path`` imports anywhere in its source (``from a import b`` counts ``a.b``
    when that is a module, else ``a``); relative imports are resolved. With ``plugins``, a plug-in package's
    ``__init__`` imports every module beside it."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path, root) if root.parent in path.parents else ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if module_file(sub, root) is not None else base)
    if plugins and path.name == "__init__.py" and here in PLUGIN_PACKAGES:
        found.update(f"{here}.{p.stem}" for p in path.parent.glob("*.py") if p.name != "__init__.py")
    return {m for m in found if module_file(m, root) is not None}


def _with_parents(name: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(entry: Path | str, root: Path = ROOT, exclude: Iterable[str] = (), plugins: bool = True) -> set[Path]:
    """The package files that running ``entry`` (a script path, or a module name) imports, transitively; the
    modules named in ``exclude`` are neither included nor followed. ``plugins=False`` leaves out the modules a
    plug-in package finds at run time (the methods a run does not use)."""
    start = module_file(entry, root) if isinstance(entry, str) else Path(entry)
    if start is None:
        raise ValueError(f"{entry} is not a module of {PACKAGE}")
    skipped = {module_file(name, root) for name in exclude}
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path, root, plugins):
            for parent in _with_parents(name):
                file = module_file(parent, root)
                if file is not None and file not in seen and file not in skipped:
                    todo.append(file)
    if isinstance(entry, Path) and root not in start.parents:
        seen.discard(start)  # a script outside the package: only the package files it runs
    return seen


@cache
def fingerprint(module: str, exclude: tuple[str, ...] = (), root: Path = ROOT, plugins: bool = True,
                also: tuple[str, ...] = ()) -> str:
    """A hash of the parsed code of ``module`` and of every package module it imports (less ``exclude``; with
    ``plugins=False`` without the plug-ins found at run time, but with the closures of the modules ``also``
    names): what it computes. Comments, docstrings and layout do not count (``code_digest``)."""
    files = closure(module, root, exclude, plugins)
    for extra in also:
        files |= closure(extra, root, exclude, plugins)
    return files_fingerprint(files, root)


def files_fingerprint(files: Iterable[Path], root: Path = ROOT) -> str:
    """A digest of the modules' contents (``code_digest``), not of their names or places: moving or renaming a
    file changes no fingerprint, and neither does a module with no code (a new package's ``__init__.py``)."""
    digest = hashlib.sha256()
    for code in sorted(d for d in (code_digest(path) for path in files) if d not in _NO_CODE):
        digest.update(code.encode() + b"\0")
    return digest.hexdigest()[:16]


class _PackageImports(ast.NodeTransformer):
    """Takes the package's own imports out of a syntax tree, keeping the names they bind."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.ImportFrom | None:
        if node.level or (node.module or "").split(".")[0] == PACKAGE:
            self.names += [alias.asname or alias.name for alias in node.names]  # "as L": the code uses L
            return None
        return node


def code_digest(path: Path) -> str:
    """A digest of a module's syntax tree without its docstrings and without its imports of package modules, but
    with the names those bind: a comment, a docstring, a line break, the order of the imports or a module moved
    elsewhere in the package changes nothing (the imported module's own code is in the closure); a changed
    expression, name or constant does."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body and \
                isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and \
                isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    imports = _PackageImports()
    tree = imports.visit(tree)
    return _digest(ast.dump(tree, annotate_fields=False), imports.names)


def _digest(dump: str, names: list[str]) -> str:
    return hashlib.sha256(f"{dump}\0{','.join(sorted(set(names)))}".encode()).hexdigest()


_NO_CODE = {_digest(ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False), [])
            for body in ([], [ast.Pass()])}  # an empty module, and one of a docstring alone
