"""A warm interpreter for the pipeline's stages: the heavy third-party imports done once, one fork per stage.

A demo training stage trains for about 4 s but takes about 7 s to start on 2 cores: ``import torch`` (~3 s) and
``torch._dynamo``, which the first ``torch.optim`` optimiser imports (~3.5 s). With ``latentseg warm`` running, a
stage script that calls :func:`hand_over` first sends its arguments, working directory, environment and standard
streams over a Unix socket; the server forks, and the child runs the script as ``python script args...`` would,
writing straight to the stage's own stdout and stderr. The stage's process waits and exits with the child's status.

Why results cannot depend on it:

- the server imports only third-party packages (:data:`PRELOAD`), never latentseg beyond this module, and the child
  drops every ``latentseg`` module before running, so a stage always runs the code on disk (the path DVC hashes);
- the server runs no tensor operation, so no thread pool exists before the fork;
- a request is declined, and the stage runs in its own interpreter as usual, when the server runs another Python
  or the stage's environment differs in a variable read at import time (:data:`IMPORT_TIME_ENV`);
- no server (or no ``LATENTSEG_WARM``): :func:`hand_over` returns at once.

A killed stage (DVC interrupted) closes its socket; the server then ends the child's process group.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ENV = "LATENTSEG_WARM"  # the socket's path; set by `make demo`, or by hand after `latentseg warm --socket PATH &`
PRELOAD = ("torch", "torch._dynamo", "torch.optim", "torchvision", "numpy", "PIL.Image", "yaml", "pydantic",
           "dvclive", "pandas", "tabulate", "matplotlib")
# Variables a preloaded package reads when it is imported: a stage whose values differ runs on its own.
IMPORT_TIME_ENV = ("OMP_", "MKL_", "KMP_", "OPENBLAS_", "TORCH", "PYTORCH", "CUDA_", "CUBLAS", "NCCL_",
                   "MPLBACKEND", "PYTHONHASHSEED", "PYTHONWARNINGS", "LD_PRELOAD", "LD_LIBRARY_PATH")
_MAX_HEADER = 1 << 22
_KILL_GRACE_S = 5.0


def import_time_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV)}


# ---------------------------------------------------------------------------------------------------- the client

def hand_over() -> None:
    """Run this stage in the warm interpreter named by ``$LATENTSEG_WARM`` and exit with its status; return at
    once (the stage runs here) when there is none, or when it declines."""
    path = os.environ.get(ENV)
    if not path or os.environ.get("_LATENTSEG_WARM_CHILD"):
        return
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return  # no server: run here
    request = {"python": sys.executable, "environment": _environment(), "argv": sys.argv, "cwd": os.getcwd(),
               "env": dict(os.environ)}
    with conn:
        try:
            _send(conn, request, fds=[0, 1, 2])
            reply = _receive(conn)
            if not reply.get("accepted"):
                print(f"latentseg warm: running without it ({reply.get('why')})", file=sys.stderr)
                return
            status = _receive(conn).get("status", 1)
        except KeyboardInterrupt:
            raise SystemExit(130) from None  # closing the socket ends the child
        except (OSError, ValueError) as error:  # the server went away mid-stage: the stage failed, say so
            print(f"latentseg warm: lost the server ({error}); run the stage again", file=sys.stderr)
            raise SystemExit(1) from None
    sys.stdout.flush()
    raise SystemExit(status)


def _send(conn: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    header = len(data).to_bytes(8, "big")
    if fds:
        socket.send_fds(conn, [header], fds)
        conn.sendall(data)
    else:
        conn.sendall(header + data)


def _receive(conn: socket.socket, fds: int = 0) -> dict | tuple[dict, list[int]]:
    if fds:
        head, got, _, _ = socket.recv_fds(conn, 8, fds)
    else:
        head, got = conn.recv(8, socket.MSG_WAITALL), []
    if len(head) < 8:
        raise ValueError("connection closed")
    size = int.from_bytes(head, "big")
    if size > _MAX_HEADER:
        raise ValueError(f"a message of {size} bytes")
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    message = json.loads(data)
    return (message, list(got)) if fds else message


# ---------------------------------------------------------------------------------------------------- the server

@dataclass
class _Stage:
    conn: socket.socket
    pid: int
    argv: list[str]
    started: float
    closed_at: float | None = None  # when the stage's process went away before its child ended


@contextlib.contextmanager
def started(path: Path, idle_timeout: float = 900.0, env: dict[str, str] | None = None,
            preload: tuple[str, ...] = PRELOAD, timeout: float = 120.0,
            log: Path | None = None) -> Iterator[subprocess.Popen]:
    """A server on ``path`` in a process of its own while the block runs (tests, benchmarks): started, waited for
    until it listens (at most ``timeout`` seconds), then stopped. ``env``: the server's environment; ``log``: a
    file for its lines (each stage it serves, and how long it took)."""
    code = (f"from pathlib import Path; from latentseg.util.warm import serve; "
            f"serve(Path({str(path)!r}), idle_timeout={idle_timeout!r}, preload={preload!r}, "
            f"log=lambda line: print(line, flush=True))")
    out = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115  (closed below)
    server = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out)
    deadline = time.monotonic() + timeout
    try:
        while not path.exists():
            if server.poll() is not None:
                raise RuntimeError(f"the warm server exited at start (status {server.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the warm server did not listen on {path} within {timeout:.0f} s")
            time.sleep(0.05)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)
        if log is not None:
            out.close()


def serve(path: Path, idle_timeout: float = 900.0, log=print, preload: tuple[str, ...] = PRELOAD) -> None:
    """Import ``preload``, listen on ``path`` and fork one child per stage until ``idle_timeout`` seconds pass
    with nothing to do (or SIGTERM). Single-threaded, so that every fork copies a quiet process."""
    t0 = time.perf_counter()
    base_env = import_time_env(dict(os.environ))  # before the imports, some of which set variables of their own
    for name in preload:
        importlib.import_module(name)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    log(f"latentseg warm: {len(preload)} packages imported in {time.perf_counter() - t0:.1f} s; serving {path}")
    stages: dict[int, _Stage] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    idle_since = time.monotonic()
    try:
        while not stop:
            for key, _ in selector.select(timeout=0.2):
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    stage = _start(conn, base_env, [listener, *(s.conn for s in stages.values())], log)
                    if stage is not None:
                        stages[stage.pid] = stage
                        selector.register(conn, selectors.EVENT_READ, stage.pid)
                else:  # readable stage socket: the stage's process went away (it sends nothing more)
                    stage = stages[key.data]
                    selector.unregister(key.fileobj)
                    stage.closed_at = time.monotonic()
                    _signal_group(stage.pid, signal.SIGTERM)
            _reap(stages, selector, log)
            if stages:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > idle_timeout:
                log(f"latentseg warm: idle for {idle_timeout:.0f} s, stopping")
                break
    finally:
        for stage in stages.values():
            _signal_group(stage.pid, signal.SIGKILL)
        listener.close()
        path.unlink(missing_ok=True)


def _start(conn: socket.socket, base_env: dict[str, str], others: list[socket.socket], log) -> _Stage | None:
    try:
        request, fds = _receive(conn, fds=3)
    except (OSError, ValueError):
        conn.close()
        return None
    why = None
    if request.get("environment") != _environment():
        why = f"it serves {sys.executable}, this stage runs {request['python']}"
    elif import_time_env(request["env"]) != base_env:
        differ = sorted({k for k, _ in set(import_time_env(request["env"]).items()) ^ set(base_env.items())})
        why = f"import-time environment variables differ: {', '.join(differ)}"
    elif len(fds) != 3:
        why = "the stage's standard streams did not arrive"
    if why is not None:
        for fd in fds:
            os.close(fd)
        _send(conn, {"accepted": False, "why": why})
        conn.close()
        return None
    _send(conn, {"accepted": True})
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        for sock in (*others, conn):  # the listener and other stages' sockets are not the child's
            sock.close()
        _run_child(request, fds)  # never returns
    for fd in fds:
        os.close(fd)
    log(f"latentseg warm: {' '.join(request['argv'])[:160]} (pid {pid})")
    return _Stage(conn, pid, request["argv"], time.monotonic())


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the stage's process (streams, directory, environment, sys.path, argv), with
    latentseg imported afresh from disk, and run the script as ``__main__``."""
    code = 1
    try:
        os.setsid()  # a process group of its own, so the server can end the stage with everything it started
        for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["_LATENTSEG_WARM_CHILD"] = "1"
        sys.path[:] = _stage_path(request["argv"][0], request["env"])
        for name in [m for m in sys.modules if m == "latentseg" or m.startswith("latentseg.")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        sys.argv = list(request["argv"])
        runpy.run_path(sys.argv[0], run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if exit_.code is not None and not isinstance(exit_.code, int):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # the stage's own error, printed as the stage's hook says (progress.configure_logging)
        sys.excepthook(*sys.exc_info())
        code = 1
    finally:
        try:
            atexit._run_exitfuncs()  # what interpreter exit would run (multiprocessing joins its children)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _stage_path(script: str, env: dict[str, str]) -> list[str]:
    """sys.path as a fresh ``python script`` with ``env`` would have it: the script's folder, then $PYTHONPATH,
    then the interpreter's own entries (the server's, less the server's $PYTHONPATH)."""
    served = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    served_abs = {os.path.abspath(p) for p in served}
    asked = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    base = [p for p in sys.path[1:] if os.path.abspath(p) not in served_abs]
    return [os.path.dirname(os.path.abspath(script)), *asked, *base]


def _reap(stages: dict[int, _Stage], selector: selectors.BaseSelector, log) -> None:
    while stages:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            break
        stage = stages.pop(pid, None)
        if stage is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stage.closed_at is None:
            try:
                selector.unregister(stage.conn)
                _send(stage.conn, {"status": code if code >= 0 else 128 - code})
            except (OSError, KeyError, ValueError):
                pass
        stage.conn.close()
        log(f"latentseg warm: pid {pid} exited {code} after {time.monotonic() - stage.started:.1f} s "
            f"({usage.ru_utime + usage.ru_stime:.1f} s CPU)")
    now = time.monotonic()
    for stage in stages.values():
        if stage.closed_at is not None and now - stage.closed_at > _KILL_GRACE_S:
            _signal_group(stage.pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _environment() -> list[str]:
    """The interpreter and its environment (a venv's prefix), links resolved: ``.venv`` linked to another checkout's
    is the same environment, a venv made apart from the same Python is not."""
    return [os.path.realpath(sys.executable), os.path.realpath(sys.prefix)]  # a list, as JSON brings it back
