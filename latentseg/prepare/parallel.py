"""What every converter runs per file, and the process pool that runs it: ``parallel_map`` over the jobs, each
of which links or copies a raw file (``link_or_copy``) and writes a mask (``save_png``). Both write atomically
(``latentseg.util.files``), so a killed run leaves whole files only and a re-run skips them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

from PIL import Image

from latentseg.util.files import atomic_write
from latentseg.util.progress import progress as show_progress

T = TypeVar("T")
R = TypeVar("R")

_MIN_PARALLEL = 64  # below this, starting worker processes costs more than it saves


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` to ``dst`` (a copy across file systems); an existing ``dst`` is kept.

    Hard links cost no space and no time; the prepared tree then shares the raw files' bytes,
    so edit neither in place.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        return
    try:
        os.link(src, dst)
        return
    except FileExistsError:
        return
    except OSError:
        pass  # another file system, or links not allowed: copy
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def save_png(image: Image.Image, dst: str | Path) -> None:
    """Save ``image`` as PNG through a temporary file, so a killed run leaves no truncated mask."""
    # compress_level 1: masks are tiny either way, and level 6 triples the encoding time
    atomic_write(dst, lambda tmp: image.save(tmp, format="PNG", compress_level=1))


def resolve_workers(workers: int | None) -> int:
    return max(1, workers if workers is not None else (os.cpu_count() or 1))


def parallel_map(
    fn: Callable[[T], R],
    jobs: Sequence[T],
    *,
    workers: int | None = None,
    desc: str = "",
    progress: bool = True,
) -> list[R]:
    """``[fn(j) for j in jobs]`` over ``workers`` processes (all cores by default), with a progress bar.

    ``fn`` must be a module-level function (it is pickled). The first exception is re-raised.
    """
    workers = resolve_workers(workers)

    def shown(results: Iterable[R]) -> Iterable[R]:
        return show_progress(results, len(jobs), desc or "files", unit="files") if progress else results

    if workers == 1 or len(jobs) < _MIN_PARALLEL:
        return list(shown(fn(job) for job in jobs))
    chunksize = max(1, len(jobs) // (workers * 16))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(shown(pool.map(fn, jobs, chunksize=chunksize)))
