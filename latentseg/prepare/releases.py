"""Finding a published data set release: the copy you have, the archive already here, or a download.

Every data set the paper uses (VOC 2012, SBD, Cityscapes, MS-COCO) is published as one or more archives. A
``Release`` describes one (its archives with their official URLs and checksums, the environment variable naming
a copy you have, the members we need, how its extracted root looks), and ``find_release`` returns that root,
trying in order:

1. the copy you name (argument, else the environment variable): an extracted folder, used where it is; or the
   archive file (a folder holding the archives, for a release of several), verified and extracted;
2. the extraction in ``raw_dir`` of the archive there, verified when it was extracted (an archive deleted after
   its extraction, to save space, still counts);
3. the archive in ``raw_dir``, downloaded earlier or placed by hand: verified, then extracted;
4. a download into ``raw_dir`` (resumed and checksum-verified by ``download.fetch``, or by the release's own
   downloader where the site wants a login), then extraction.

Extractions land in ``raw_dir``, one folder per archive (``archives.extract``: atomic, marker-based). A file
that fails its checksum is reported, naming it, and never deleted. ``verify_checksum=False`` accepts your copy of
an archive whose checksum is not the official one (a re-packed copy, the tests' small archives): a log line says
the check was skipped, and the archive must still hold the release's layout. An extraction is trusted from then
on, whichever way it was checked: delete its folder to have the archive checked again. Downloads are always
verified.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from latentseg.prepare.archives import extract, is_current, is_extracted
from latentseg.prepare.download import Remote, checksum_text, verify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archive:
    """One published file of a release: where it comes from, what we need of it, where it is extracted."""

    remote: Remote  # official URLs (tried in order) and checksum; ``remote.filename`` is its name in raw_dir
    members: tuple[str, ...]  # member prefixes to extract; the rest of the archive is skipped
    folder: str  # extraction folder, relative to raw_dir
    mirror: bool = False  # the remote replaces the official one (``Release.with_remotes``)


@dataclass(frozen=True)
class Release:
    """A data set release as ``find_release`` needs it."""

    name: str  # in messages: "VOC2012 release"
    archives: tuple[Archive, ...]
    env: str  # environment variable naming a copy you have
    is_root: Callable[[Path], bool]  # whether a folder is the extracted release
    layout: str  # what ``is_root`` looks for, in messages
    roots: tuple[str, ...] = ("",)  # where the root may sit in your folder or in an extraction
    # Several archives: the folder (relative to raw_dir) where links to their extractions make one root.
    joined: str | None = None
    # For archives plain HTTP cannot fetch (a login): ``downloader(raw_dir, filenames)`` puts them, verified,
    # into raw_dir. Not used for archives a mirror replaces.
    downloader: Callable[[Path, Sequence[str]], None] | None = None
    page: str | None = None  # where a person downloads the archives by hand (default: each one's first URL)

    def with_remotes(self, remotes: Mapping[str, Remote]) -> Release:
        """This release with some archives fetched from elsewhere (a mirror, the tests): ``remotes`` maps the
        official file name of an archive to the ``Remote`` that replaces it."""
        names = [a.remote.filename for a in self.archives]
        unknown = sorted(set(remotes) - set(names))
        if unknown:
            raise ValueError(f"remotes name {unknown}, no archive of the {self.name}; its archives are {names}")
        archives = tuple(
            replace(a, remote=remotes[a.remote.filename], mirror=True) if a.remote.filename in remotes else a
            for a in self.archives
        )
        return replace(self, archives=archives)


def find_release(
    release: Release,
    raw_dir: str | Path,
    source: str | Path | None = None,
    *,
    download: bool = True,
    verify_checksum: bool = True,
) -> Path:
    """The extracted root of ``release``: from ``source`` (else ``$<release.env>``), else from ``raw_dir``,
    downloading there if ``download`` (the order is in the module docstring)."""
    raw_dir = Path(raw_dir)
    source = source if source is not None else os.environ.get(release.env) or None
    if source is not None:
        return _from_copy(release, Path(source), raw_dir, verify_checksum)
    if not release.archives:
        raise ValueError(f"no archive of the {release.name} is known: set ${release.env} to a copy you have")
    pending = [a for a in release.archives if not _extracted(a, raw_dir)]
    absent = [a for a in pending if not (raw_dir / a.remote.filename).exists()]
    for archive in pending:
        if archive not in absent:
            _check(raw_dir / archive.remote.filename, archive.remote, verify_checksum)
    if absent:
        if not download:
            raise FileNotFoundError(_not_found(release, absent, raw_dir))
        _download(release, absent, raw_dir)  # verified as they arrive
    for archive in pending:
        extract(raw_dir / archive.remote.filename, raw_dir / archive.folder, prefixes=archive.members)
    return _extracted_root(release, raw_dir)


def _extracted(archive: Archive, raw_dir: Path) -> bool:
    """Whether the extraction in raw_dir is of the archive there, or of one deleted since."""
    path, dest = raw_dir / archive.remote.filename, raw_dir / archive.folder
    return is_current(path, dest, prefixes=archive.members) or (not path.exists() and is_extracted(dest))


def _check(path: Path, remote: Remote, verify_checksum: bool) -> None:
    """Verify an archive we did not download; a mismatch raises ``ChecksumError`` naming it (it is kept)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file but should be the archive {remote.filename}: move it away")
    if verify_checksum:
        verify(path, md5=remote.md5, sha256=remote.sha256)
    elif remote.md5 or remote.sha256:
        log.warning("%s: checksum not checked (verify_checksum=False); only its layout will be", path)


def _download(release: Release, archives: Sequence[Archive], raw_dir: Path) -> None:
    raw_dir.mkdir(parents=True, exist_ok=True)
    own = [a for a in archives if release.downloader is not None and not a.mirror]
    if own:
        release.downloader(raw_dir, [a.remote.filename for a in own])
    for archive in archives:
        if archive not in own:
            archive.remote.fetch(raw_dir)


def _from_copy(release: Release, source: Path, raw_dir: Path, verify_checksum: bool) -> Path:
    """The root of your copy: an extracted folder as it is, or archives extracted into raw_dir."""
    where = f"{release.name} source {source} (argument or ${release.env})"
    names = [a.remote.filename for a in release.archives]
    if source.is_dir():
        root = _find_root(release, source)
        if root is not None:
            return root
        paths = [source / name for name in names]
        if not names or not all(p.is_file() for p in paths):
            candidates = ", ".join(str(source / r) for r in release.roots)
            raise FileNotFoundError(
                f"{where} holds neither {release.layout} (in {candidates}) nor the archive(s) {names}"
            )
    elif source.is_file() and len(names) == 1:
        paths = [source]
    elif source.is_file():
        raise FileNotFoundError(f"{where} is a file: name the folder holding {names}, or the extracted release")
    else:
        raise FileNotFoundError(f"{where} does not exist")
    for archive, path in zip(release.archives, paths, strict=True):
        dest = raw_dir / archive.folder
        if not is_current(path, dest, prefixes=archive.members):  # else checked when it was extracted
            _check(path, archive.remote, verify_checksum)
        extract(path, dest, prefixes=archive.members)
    return _extracted_root(release, raw_dir)


def _find_root(release: Release, folder: Path) -> Path | None:
    return next((folder / sub for sub in release.roots if release.is_root(folder / sub)), None)


def _extracted_root(release: Release, raw_dir: Path) -> Path:
    if release.joined is None:
        top = raw_dir / release.archives[0].folder
    else:  # each extraction owns its folder: link their top-level folders side by side
        top = raw_dir / release.joined
        top.mkdir(parents=True, exist_ok=True)
        for archive in release.archives:
            for name in sorted({PurePosixPath(m).parts[0] for m in archive.members}):
                if not os.path.lexists(top / name):
                    target = os.path.relpath(raw_dir / archive.folder / name, top)
                    (top / name).symlink_to(target, target_is_directory=True)
    root = _find_root(release, top)
    if root is None:
        names = [a.remote.filename for a in release.archives]
        raise FileNotFoundError(
            f"{top} does not hold {release.layout} after extracting {names}: they are not the {release.name}. "
            "Replace them by the official files and re-run"
        )
    return root


def _not_found(release: Release, archives: Sequence[Archive], raw_dir: Path) -> str:
    files = "; ".join(
        f"{raw_dir / a.remote.filename} ({checksum_text(a.remote.md5, a.remote.sha256)}, from "
        f"{release.page or a.remote.urls[0]})"
        for a in archives
    )
    return (
        f"{release.name} not found: place {files}, or set ${release.env} to a copy you have ({release.layout}, "
        "or its archives), or allow downloading"
    )
