"""Writing files so that a killed process never leaves half of one, and reading torch files so that none runs
code: the project's one atomic-write helper and its one reader of torch files.

Every output of the pipeline (prepared images and masks, checkpoints, metrics, tables, figures) is written to a
temporary file in the destination's folder and renamed into place only once it is complete; ``os.replace`` is
atomic on one file system, so a reader sees the old file or the new one, never a truncated one. Files and folders
are created with the modes the umask gives (``mkstemp`` would make them private, 0600, which a group sharing a
cluster's file system cannot read).

Every torch file (run checkpoints, initial weights, classifiers, published weights) is read by ``read_torch``,
with ``weights_only=True``: ``runs/`` is shared between machines and comes back from ``dvc pull``, and a pickled
object in a file would otherwise run as it loads. What the project saves is tensors, numbers, strings and plain
containers, which that loader reads.

This module imports nothing heavy (no torch, no numpy): the report stages use it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentseg.util.progress import UserError


class UnreadableFile(UserError):
    """A torch file that ``read_torch`` refuses: one line naming the file, why, and what to do."""


def temporary_sibling(path: Path, folder: bool = False) -> Path:
    """A new, empty file (or folder) beside ``path``, hidden, with the mode the umask gives (0666 / 0777 less the
    umask, as ``open`` and ``mkdir`` make them); ``os.replace`` later puts it in ``path``'s place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            if folder:
                tmp.mkdir()
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it to ``path``; returns ``path``.

    ``write`` may write the file by name (``Image.save``, ``fig.savefig``, ``shutil.copyfile``); a torch file goes
    through ``atomic_torch_save``.
    On any error, including KeyboardInterrupt, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; the same content gives the same bytes.

    torch.save given a file *name* names the archive inside the file after it, here a random temporary name, so
    saving the same tensors twice would give two different files; given an open file it names it ``archive``.
    The bytes matter: DVC re-runs every stage downstream of an output whose bytes changed, and a run's identity
    holds the digest of its initial weights, so a re-made but identical ``weights/coco.pt`` must not re-train
    every run.
    """
    import torch  # here, not at the top: the report stages import this module and no torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    return atomic_write(path, write)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | Path, doc: Any) -> Path:
    """``doc`` as indented JSON with a final newline (the format of every metrics file)."""
    return atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (read in chunks: weights files run to hundreds of MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def load_failure(err: BaseException) -> str:
    """Why ``torch.load`` with ``weights_only=True`` refused a file, in a few words (torch's runs to lines)."""
    text = str(err)
    if found := re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", text):
        name = found.group(1).rstrip(".,")
        return f"it holds a pickled Python object, {name}, which a loader that runs no code refuses"
    if found := re.search(r"WeightsUnpickler error:\s*(\S.*)", text):
        return found.group(1).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__).split(". ")[0]


def read_torch(path: str | Path, what: str, fix: str) -> Any:
    """The object saved in the torch file at ``path``, read with ``weights_only=True`` (tensors, numbers, strings,
    plain containers; nothing that runs code). ``UnreadableFile``, one line naming ``path``, why, and ``fix``, for
    a file torch cannot read so: truncated, foreign, or holding a pickled object; ``what`` names what it should be
    ("a run checkpoint")."""
    import torch  # here, not at the top: the report stages import this module and no torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UnreadableFile(f"{path}: not {what} this project can read ({load_failure(err)}); {fix}") from err
