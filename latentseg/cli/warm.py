"""``latentseg warm``: serve a pre-imported interpreter to the pipeline's stages (latentseg/util/warm.py).

    latentseg warm --socket /tmp/latentseg-warm.sock &
    LATENTSEG_WARM=/tmp/latentseg-warm.sock dvc repro      # or dvc exp run ...

``make demo`` does both. Each stage then starts in well under a second instead of ~7 s (torch and its compiler
front end imported once). Results are the same with or without it; it stops after ``--idle-timeout`` idle seconds.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from latentseg.util.warm import ENV, serve


def default_socket() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp")) / f"latentseg-warm-{os.getuid()}.sock"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", type=Path, default=None,
                        help=f"the Unix socket to serve (default: ${ENV}, else a per-user path in /tmp)")
    parser.add_argument("--idle-timeout", type=float, default=900.0, help="seconds without a stage before it stops")


def run(args: argparse.Namespace) -> int:
    path = args.socket or default_socket()
    print(f"export {ENV}={path}", flush=True)
    serve(path, idle_timeout=args.idle_timeout, log=lambda line: print(line, flush=True))
    return 0
