"""Safe, restartable extraction of the release archives (tar, tar.gz, zip).

An archive is extracted into a fresh temporary folder beside its destination, which is renamed into
place only when every wanted member is out; a marker file records what was extracted, so a second call
returns at once and an interrupted one starts again cleanly. Members that would land outside the
destination (absolute paths, ``..``, links pointing out, device files) stop the extraction with an error
naming the member: a release archive never contains them, so their presence means the file is not what
it claims to be.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from latentseg.util.files import temporary_sibling

log = logging.getLogger(__name__)

MARKER = ".extracted.json"


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the destination folder."""


def _check_name(archive: Path, name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} would be written outside the extraction folder; refusing to "
            "extract. The archive is not an official release: delete it and download it again."
        )
    return path


def _wanted(path: PurePosixPath, prefixes: Sequence[str] | None) -> bool:
    text = str(path)
    return prefixes is None or any(
        text == p.rstrip("/") or text.startswith(p.rstrip("/") + "/") for p in prefixes
    )


def _signature(archive: Path, prefixes: Sequence[str] | None) -> dict:
    info = archive.stat()
    return {
        "archive": archive.name,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "prefixes": list(prefixes) if prefixes is not None else None,
    }


def is_extracted(dest: str | Path) -> bool:
    """Whether ``dest`` holds a completed extraction (of whatever archive)."""
    return (Path(dest) / MARKER).is_file()


def is_current(archive: str | Path, dest: str | Path, *, prefixes: Sequence[str] | None = None) -> bool:
    """Whether ``dest`` holds a completed extraction of this very file (same name, size and mtime).

    Callers verify an archive before extracting it, so this also says the archive was verified:
    re-hashing an 11 GB zip on every run is what it spares.
    """
    marker = Path(dest) / MARKER
    try:
        return json.loads(marker.read_text()) == _signature(Path(archive), prefixes)
    except (OSError, json.JSONDecodeError):
        return False


def extract(archive: str | Path, dest: str | Path, *, prefixes: Sequence[str] | None = None) -> Path:
    """Extract the members of ``archive`` under ``prefixes`` (all if None) into ``dest``; return ``dest``.

    ``dest`` is owned by this function: a stale or partial extraction in it is replaced.
    """
    archive, dest = Path(archive), Path(dest)
    signature = _signature(archive, prefixes)
    if is_current(archive, dest, prefixes=prefixes):
        log.debug("%s already extracted into %s", archive.name, dest)
        return dest
    if is_extracted(dest):
        log.info("%s changed since it was extracted into %s; extracting again", archive.name, dest)
    tmp = temporary_sibling(dest, folder=True)  # mkdtemp's would be private (0700) whatever the umask
    try:
        log.info("extracting %s into %s", archive, dest)
        if zipfile.is_zipfile(archive):
            count = _extract_zip(archive, tmp, prefixes)
        elif tarfile.is_tarfile(archive):
            count = _extract_tar(archive, tmp, prefixes)
        else:
            raise ValueError(f"{archive} is neither a tar nor a zip archive (is the download complete?)")
        if count == 0:
            raise ValueError(
                f"{archive} holds no member under {list(prefixes or [])}; "
                "it is not the expected release archive"
            )
        (tmp / MARKER).write_text(json.dumps(signature))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _extract_zip(archive: Path, dest: Path, prefixes: Sequence[str] | None) -> int:
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = _check_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(
                    f"{archive}: member {info.filename!r} is a symbolic link; refusing to extract"
                )
            if not _wanted(path, prefixes):
                continue
            target = dest.joinpath(*path.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)  # a bad CRC raises here (zipfile.BadZipFile)
            count += 1
    return count


def _extract_tar(archive: Path, dest: Path, prefixes: Sequence[str] | None) -> int:
    count = 0
    # "r:*": plain or compressed; iterating streams through the archive once
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            path = _check_name(archive, member.name)
            if not _wanted(path, prefixes):
                continue
            if not (member.isfile() or member.isdir()):
                # Release archives hold plain files and folders only; links and devices are refused
                # rather than judged, which keeps the check simple and tight.
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} is a link or special file; refusing to extract"
                )
            if hasattr(tarfile, "data_filter"):
                tf.extract(member, dest, filter="data")  # second guard (Python >= 3.11.4)
            else:  # pragma: no cover - older 3.11 patch releases
                tf.extract(member, dest)
            count += member.isfile()
    return count
