"""A copy of this repository for `dvc` to run in: its tracked files in a folder of their own, a git repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from latentseg.util.closure import ROOT as PACKAGE

REPO = PACKAGE.parent


def copy_repository(dest: Path) -> Path:
    """The tracked files of the repository under ``dest`` (the workspace's outputs stay behind), committed to a
    git repository of their own, as a clone has them (dvclive's `Live` fails in a repository without commits)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    git = ["git", "-c", "user.name=latentseg tests", "-c", "user.email=tests@latentseg.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "copy"], cwd=dest, check=True)
    return dest


def stage_env(repo: Path) -> dict[str, str]:
    """The environment of the copy's stages: `python` (dvc.yaml's commands) is this interpreter, and it imports
    the copy's `latentseg`, the code dvc.yaml's deps name, not an installed one."""
    env = dict(os.environ, PYTHONPATH=str(repo), DVC_NO_ANALYTICS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=stage_env(repo), capture_output=True,
                          text=True, check=check)


def changed_stages(repo: Path) -> set[str]:
    """The stages `dvc status` reports changed."""
    return set(json.loads(dvc(repo, "status", "--json").stdout or "{}"))
