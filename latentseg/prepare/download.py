"""The one downloader of the project (data archives now, model weights later).

``fetch(url, dest, md5=...)`` resumes an interrupted transfer from ``<dest>.part`` with an HTTP Range
request, retries transient failures with exponential back-off, verifies the checksum and only then
renames the ``.part`` file to ``dest``. So a file at ``dest`` is either complete and verified, or it was
put there by someone else (a user who downloaded it by hand): such a file is never deleted.

We use ``requests`` rather than ``urllib``: it is already installed (cityscapesscripts depends on it),
Cityscapes downloads need its cookie ``Session`` (``fetch(..., session=...)`` reuses this code for them),
and it separates "could not connect" from "connection broke mid-transfer" cleanly, which decides
between failing at once (offline) and resuming.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3.exceptions

from latentseg.util.files import file_digest
from latentseg.util.progress import progress as show_progress

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # 1 MiB: large enough to keep the per-chunk Python overhead negligible


class DownloadError(RuntimeError):
    """A download failed; the message says what to do instead."""


class OfflineError(DownloadError):
    """No connection could be made (DNS failure, connection refused, connect timeout)."""


class ChecksumError(DownloadError):
    def __init__(self, message: str, path: Path, algorithm: str, expected: str, actual: str):
        super().__init__(message)
        self.path, self.algorithm, self.expected, self.actual = path, algorithm, expected, actual


@dataclass(frozen=True)
class Remote:
    """A file published at one or more URLs (mirrors, tried in order) with its checksum."""

    urls: tuple[str, ...]
    filename: str
    md5: str | None = None
    sha256: str | None = None

    def fetch(self, folder: str | Path, **kwargs) -> Path:
        return fetch(self.urls, Path(folder) / self.filename, md5=self.md5, sha256=self.sha256, **kwargs)


MIN_PREFIX = 8  # hex digits: the length of the SHA-256 prefix that torch hub puts in a file name


def _expected(md5: str | None, sha256: str | None) -> list[tuple[str, str]]:
    """The checksums to check, sha256 first. A value shorter than its digest is a prefix of it (torch hub
    files such as ``resnet101-63fe2227.pth`` publish only the first 8 hex digits of their SHA-256)."""
    out = [(name, value.lower()) for name, value in (("sha256", sha256), ("md5", md5)) if value]
    for name, value in out:
        if len(value) < MIN_PREFIX:
            raise ValueError(f"{name} checksum {value!r} is too short to identify a file (>= {MIN_PREFIX} hex digits)")
    return out


def _mismatch(path: Path, md5: str | None, sha256: str | None) -> tuple[str, str, str] | None:
    """``(algorithm, expected, actual)`` of the first checksum that does not match, else None."""
    for algorithm, expected in _expected(md5, sha256):
        actual = file_digest(path, algorithm)
        if not actual.startswith(expected):  # equal, or a published prefix of it
            return algorithm, expected, actual
    return None


def verify(path: str | Path, *, md5: str | None = None, sha256: str | None = None) -> Path:
    """Raise unless ``path`` exists and matches every checksum (or checksum prefix) given; return the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    bad = _mismatch(path, md5, sha256)
    if bad:
        algorithm, expected, actual = bad
        raise ChecksumError(
            f"{path}: {algorithm} is {actual}, expected {expected}. The file is incomplete, corrupt or a "
            f"different version. It was left in place: delete or replace it by the right file and re-run.",
            path,
            algorithm,
            expected,
            actual,
        )
    return path


def checksum_text(md5: str | None = None, sha256: str | None = None) -> str:
    """The checksums of a file for a message: ``"md5 <hex>"``, ``"sha256 starting with <hex>"``, ..."""
    full = {"md5": 32, "sha256": 64}
    return ", ".join(f"{a} {v}" if len(v) == full[a] else f"{a} starting with {v}"
                     for a, v in _expected(md5, sha256)) or "no checksum recorded"


def _manual_hint(urls: Sequence[str], dest: Path, md5: str | None, sha256: str | None) -> str:
    sums = checksum_text(md5, sha256)
    return (
        f"To continue without a network, download {urls[0]} on another machine and place it at "
        f"{dest.resolve()} ({sums}); it will be verified and used."
    )


def _is_connect_failure(err: requests.RequestException) -> bool:
    """True when no connection could be opened at all (as opposed to one that broke mid-transfer)."""
    if isinstance(err, requests.ConnectTimeout):
        return True
    reason = getattr(err.args[0], "reason", None) if err.args else None
    return isinstance(err, requests.ConnectionError) and isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


class _Retry(Exception):
    """A transient failure: resume from the .part file after a pause."""


def _transfer(url: str, part: Path, session: requests.Session, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (one HTTP request). Raises _Retry on transient failures."""
    offset = part.stat().st_size if part.exists() else 0
    # identity: we store the bytes as served, so a server's on-the-fly compression cannot alter them
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = session.get(url, headers=headers, stream=True, timeout=(timeout, timeout))
    except requests.RequestException as err:
        if _is_connect_failure(err):
            raise OfflineError(str(err)) from err
        if isinstance(err, requests.exceptions.SSLError | ValueError):  # bad certificate, malformed URL
            raise DownloadError(f"{url}: {err}") from err  # retrying cannot fix these
        raise _Retry(f"request failed: {err}") from err
    with response:
        status = response.status_code
        if status == 416 and offset:
            # The .part already holds the whole file (or is longer than it): let the checksum decide.
            return
        if status in (408, 429) or status >= 500:
            raise _Retry(f"HTTP {status}")
        if status >= 400:
            raise DownloadError(f"{url}: HTTP {status} {response.reason}")
        if offset and (
            status != 206 or not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        ):
            log.info("%s did not honour the Range request; restarting from byte 0", url)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        mode = "ab" if offset else "wb"
        chunks = response.raw.stream(CHUNK, decode_content=False)  # of 1 MiB: progress counts MiB
        if progress:
            left = -(-(total - offset) // CHUNK) if total is not None else 0
            chunks = show_progress(chunks, left, f"{part.name[: -len('.part')]} (from byte {offset})", unit="MiB")
        try:
            with open(part, mode) as f:
                for chunk in chunks:
                    f.write(chunk)
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
            ConnectionError,
            TimeoutError,
        ) as err:
            # network only: a local OSError (disk full, permissions) propagates, retrying would not help
            raise _Retry(f"connection broke after {part.stat().st_size} bytes: {err}") from err
        if total is not None and part.stat().st_size < total:
            raise _Retry(f"connection closed after {part.stat().st_size} of {total} bytes")


def fetch(
    url: str | Sequence[str],
    dest: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    session: requests.Session | None = None,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` (or the first of several mirrors that works) to ``dest`` and return ``dest``.

    - ``dest`` exists and verifies: nothing is downloaded. Exists and does not verify: ``ChecksumError``
      naming the file and both checksums; the file is kept (we never rename an unverified file to
      ``dest``, so it was placed by hand).
    - An interrupted transfer resumes from ``<dest>.part`` (now, or on a later call).
    - Transient failures (broken connection, HTTP 5xx/408/429) are retried ``retries`` times, waiting
      ``backoff * 2**attempt`` seconds; an unreachable host raises ``OfflineError`` at once.
    - A download that does not match its checksum is deleted (only our ``.part``) and reported.
    """
    urls = [url] if isinstance(url, str) else list(url)
    dest = Path(dest)
    if dest.exists():
        if not dest.is_file():
            raise DownloadError(f"{dest} exists and is not a file; move it away and re-run")
        verify(dest, md5=md5, sha256=sha256)
        log.debug("%s present and verified; not downloading", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own_session = session is None
    session = session or requests.Session()
    failures: list[str] = []
    offline = True
    try:
        for candidate in urls:
            try:
                _fetch_one(candidate, part, session, retries, backoff, timeout, progress, md5, sha256)
            except (OfflineError, DownloadError) as err:
                if isinstance(err, ChecksumError):
                    raise
                failures.append(f"{candidate}: {err}")
                offline = offline and isinstance(err, OfflineError)
                log.warning("download from %s failed: %s", candidate, err)
                continue
            os.replace(part, dest)
            return dest
    finally:
        if own_session:
            session.close()
    raise (OfflineError if offline else DownloadError)(
        f"could not download {dest.name}:\n  "
        + "\n  ".join(failures)
        + "\n"
        + _manual_hint(urls, dest, md5, sha256)
    )


def _fetch_one(url, part, session, retries, backoff, timeout, progress, md5, sha256) -> None:
    restarted = False
    attempt = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        resumed = before > 0
        if resumed:
            log.info("resuming %s from byte %d", url, before)
        try:
            _transfer(url, part, session, timeout, progress)
        except _Retry as err:
            if part.exists() and part.stat().st_size > before:
                attempt = 0  # it made progress: a long download on a flaky line may break many times
            if attempt >= retries:
                raise DownloadError(
                    f"gave up after {retries + 1} attempts ({err}); re-run to resume"
                ) from err
            wait = backoff * 2**attempt
            log.warning("%s: %s; retrying in %.1f s", url, err, wait)
            time.sleep(wait)
            attempt += 1
            continue
        bad = _mismatch(part, md5, sha256)
        if bad is None:
            return
        part.unlink()
        if resumed and not restarted:
            # A stale .part (say, of an older release) poisons a resumed download: start over once.
            log.warning("%s: checksum mismatch after resuming; downloading again from the start", url)
            restarted = True
            continue
        algorithm, expected, actual = bad
        raise ChecksumError(
            f"download of {url} has {algorithm} {actual}, expected {expected}; the partial file was "
            f"removed. The server may serve a different file: check the URL, or place the right file at "
            f"{part.with_name(part.name[: -len('.part')])} by hand.",
            part,
            algorithm,
            expected,
            actual,
        )
