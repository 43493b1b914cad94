"""The import closure of a module within this package: which of its files a piece of code runs.

Two uses: a pipeline stage depends on every file its script imports (``tests/pipeline`` checks ``dvc.yaml``
against it), and a training checkpoint records a fingerprint of the training code it was made with, so that a
finished run is never reused by newer training code (``train/trainer.py``). Imports are read from the source
(``ast``), lazy ones inside functions included; only this package's modules are followed.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGE = "latentseg"
ROOT = Path(__file__).resolve().parent  # the package folder


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


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every package module that ``path`` imports anywhere in its source (``from a import b`` counts ``a.b``
    when that is a module, else ``a``); relative imports are resolved."""
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
    return {m for m in found if module_file(m, root) is not None}


def _with_parents(name: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(entry: Path | str, root: Path = ROOT) -> set[Path]:
    """The package files that running ``entry`` (a script path, or a module name) imports, transitively."""
    start = module_file(entry, root) if isinstance(entry, str) else Path(entry)
    if start is None:
        raise ValueError(f"{entry} is not a module of {PACKAGE}")
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path, root):
            for parent in _with_parents(name):
                file = module_file(parent, root)
                if file is not None and file not in seen:
                    todo.append(file)
    if isinstance(entry, Path) and root not in start.parents:
        seen.discard(start)  # a script outside the package: only the package files it runs
    return seen


@cache
def fingerprint(module: str) -> str:
    """A hash of the source of ``module`` and of every package file it imports: the code it runs."""
    return files_fingerprint(closure(module))


def files_fingerprint(files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(ROOT.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
