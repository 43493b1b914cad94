"""Shared fixtures: torch on 2 threads (1 in each of `make test`'s pytest-xdist workers), the `gpu` marker, the
longest tests first, a local HTTP file server for download tests, a warm interpreter for tests that run pipeline
stages."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from latentseg.prepare.download import Remote, file_digest
from latentseg.util.warm import ENV as WARM_ENV
from latentseg.util.warm import started

# Under pytest-xdist (make test: a worker per core) each worker takes one core's share, as the runs of a stage do.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // WORKERS))


def pytest_collection_modifyitems(config, items):
    # The longest first (the Slurm group, then the other slow tests): with a worker per core, the short ones fill
    # the gaps at the end instead of one long test running alone after them.
    items.sort(key=lambda item: ("slurm" not in item.keywords, "slow" not in item.keywords))
    for item in items:
        if "slurm" in item.keywords:  # one worker starts the one-machine cluster, and runs every job on it
            item.add_marker(pytest.mark.xdist_group("slurm"))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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


@pytest.fixture(scope="session")
def warm_server() -> Iterator[Path]:
    """A `latentseg warm` server for the session (its socket), started by the first test that asks for it."""
    with tempfile.TemporaryDirectory() as tmp, started(Path(tmp) / "warm.sock", idle_timeout=900) as server:
        yield Path(tmp) / "warm.sock"
        assert server.poll() is None, "the session's warm server died"


@pytest.fixture
def warm_stages(warm_server: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The warm server named in this test's environment only, so that the stages it runs in subprocesses (dvc
    repro in a repository copy) start in a fraction of a second (tests/test_warm.py: the results are the same).
    Only for tests whose stages run in processes of their own: in-process stage calls would hand over."""
    monkeypatch.setenv(WARM_ENV, str(warm_server))
    return warm_server
