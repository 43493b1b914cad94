"""Fixtures for the data tests: a local HTTP file server and small official-layout releases."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from latentseg.data.download import Remote, file_digest
from latentseg.data.mock_release import make_cityscapes_zips, make_sbd_tgz, make_voc_tar


@dataclass
class ServerState:
    root: Path
    drop_once: set[str] = field(default_factory=set)  # send half of the body, then close, once
    fail_status: dict[str, list[int]] = field(default_factory=dict)  # statuses to answer first
    ignore_range: set[str] = field(default_factory=set)  # answer 200 + whole file to Range requests
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (name, Range header)


class _Handler(BaseHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold a handler thread for long
    state: ServerState  # set on the subclass made per server

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        state = self.state
        name = self.path.lstrip("/").split("?")[0]
        state.requests.append((name, self.headers.get("Range")))
        statuses = state.fail_status.get(name)
        if statuses:
            self.send_error(statuses.pop(0))
            return
        path = state.root / name
        if "/" in name or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start, status = 0, 200
        header = self.headers.get("Range")
        if header and name not in state.ignore_range:
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if name in state.drop_once and len(body) > 1:
            state.drop_once.discard(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class FileServer:
    """Serves the files of one folder on 127.0.0.1, with Range requests and injectable failures."""

    def __init__(self, root: Path, lifetime: float = 120.0):
        self.state = ServerState(root)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        # bounded: even if a test forgot to stop it, the server shuts itself down
        self.watchdog = threading.Timer(lifetime, self.httpd.shutdown)
        self.watchdog.daemon = True

    def __enter__(self) -> FileServer:
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc) -> None:
        self.watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def remote(self, name: str, **checksums) -> Remote:
        if not checksums:
            checksums = {"md5": file_digest(self.state.root / name, "md5")}
        return Remote((self.url(name),), name, **checksums)

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.state.requests if n == name)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "served"
    root.mkdir()
    with FileServer(root) as server:
        yield server


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


@dataclass(frozen=True)
class VocIds:
    """Scaled-down VOC/SBD id lists with the overlaps of the real ones."""

    voc_train: list[str]
    voc_val: list[str]
    sbd_train: list[str]
    sbd_val: list[str]

    @property
    def aug_train(self) -> list[str]:
        return sorted((set(self.voc_train) | set(self.sbd_train) | set(self.sbd_val)) - set(self.voc_val))


def voc_ids() -> VocIds:
    voc_train = [f"2007_{i:06d}" for i in range(0, 24, 2)]  # 12
    voc_val = [f"2007_{i:06d}" for i in range(1, 16, 2)]  # 8
    sbd_only_train = [f"2008_{i:06d}" for i in range(10)]
    sbd_only_val = [f"2009_{i:06d}" for i in range(5)]
    # as in the real data, SBD's lists overlap both VOC train and VOC val
    sbd_train = sorted(sbd_only_train + voc_train[:6] + voc_val[:2])
    sbd_val = sorted(sbd_only_val + voc_train[6:8] + voc_val[2:4])
    return VocIds(voc_train, voc_val, sbd_train, sbd_val)


@pytest.fixture(scope="session")
def voc_release(tmp_path_factory) -> tuple[Path, Path, VocIds]:
    """(VOC tar, SBD tgz, ids), built once per session."""
    folder = tmp_path_factory.mktemp("voc_release")
    ids = voc_ids()
    tar = make_voc_tar(
        folder / "VOCtrainval_11-May-2012.tar",
        ids.voc_train,
        ids.voc_val,
        extra_image_ids=ids.sbd_train + ids.sbd_val,
    )
    tgz = make_sbd_tgz(folder / "benchmark.tgz", ids.sbd_train, ids.sbd_val)
    return tar, tgz, ids


@pytest.fixture(scope="session")
def cityscapes_release(tmp_path_factory) -> Path:
    """A folder with the two Cityscapes zips (train: 2 cities x 2, val: 1 x 2, test: 1 x 2)."""
    folder = tmp_path_factory.mktemp("cityscapes_release")
    make_cityscapes_zips(folder)
    return folder


@pytest.fixture(autouse=True)
def _no_source_env(monkeypatch) -> None:
    """Sources named by the developer's environment must not leak into tests."""
    for name in (
        "LATENTSEG_VOC_ROOT",
        "LATENTSEG_SBD_ROOT",
        "LATENTSEG_CITYSCAPES_ROOT",
        "CITYSCAPES_USERNAME",
        "CITYSCAPES_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
