"""A stage depends on every file of latentseg/ its script imports: dvc.yaml against the import closure, and
``dvc status`` itself, on a copy of the repository, following a change of code to exactly the stages that run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from latentseg.util.closure import closure
from tests.pipeline.repository import REPO, changed_stages, copy_repository

MAKING_SIDE = ("latentseg/prepare/", "latentseg/weights/", "latentseg/bench/")


def stage_scripts(dvc_yaml: Path) -> dict[str, tuple[Path, list[str]]]:
    """Each stage (foreach templates once): its script and its declared deps."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = next(w for w in body["cmd"].split() if w.startswith("stages/") and w.endswith(".py"))
        out[name] = (dvc_yaml.parent / script, [d if isinstance(d, str) else next(iter(d)) for d in body["deps"]])
    return out


def missing_deps(script: Path, deps: list[str], root: Path = REPO) -> list[str]:
    """The package files ``script`` imports that ``deps`` (files or folders) do not cover."""
    needed = sorted(str(p.relative_to(root)) for p in closure(script, root / "latentseg"))
    covered = [d.rstrip("/") for d in deps]
    return [f for f in needed if not any(f == d or f.startswith(d + "/") for d in covered)]


@pytest.mark.parametrize("stage", sorted(stage_scripts(REPO / "dvc.yaml")))
def test_every_stage_depends_on_the_code_it_runs(stage):
    script, deps = stage_scripts(REPO / "dvc.yaml")[stage]
    assert str(script.relative_to(REPO)) in deps, f"{stage}: its script is not among its deps"
    assert missing_deps(script, deps) == [], f"{stage} imports these files but dvc.yaml does not list them"


def test_the_check_fails_when_an_import_is_added_without_its_dependency(tmp_path):
    script, deps = stage_scripts(REPO / "dvc.yaml")["train"]
    edited = tmp_path / "train.py"
    text = script.read_text()
    assert "import argparse\n" in text
    edited.write_text(text.replace("import argparse\n", "import argparse\n\nimport latentseg.prepare.download\n"))
    missing = missing_deps(edited, deps)
    assert "latentseg/prepare/download.py" in missing and "latentseg/prepare/__init__.py" in missing


def test_training_imports_nothing_of_the_making_side():
    """Every file a training stage imports is a reason to re-train every run: no downloads, archives, data
    conversion, weight fetching or benchmarks among them."""
    for stage in ("train", "figure1"):
        script, _ = stage_scripts(REPO / "dvc.yaml")[stage]
        files = [str(p.relative_to(REPO)) for p in closure(script)]
        assert not [f for f in files if f.startswith(MAKING_SIDE)], stage
    reports = [str(p.relative_to(REPO)) for s in ("tables", "claims", "figures", "check")
               for p in closure(stage_scripts(REPO / "dvc.yaml")[s][0])]
    assert not [f for f in reports if f.startswith(("latentseg/train/", "latentseg/models/"))]


def _placeholders(repo: Path) -> None:
    """Stand-ins for every output of the pipeline (a file, or a folder holding one), so that `dvc commit` can
    record a lock file without running anything."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--all", "--name-only"], cwd=repo,
                          capture_output=True, text=True, check=True)
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        for stage in dvc.index.stages:
            for item in [*stage.outs, *stage.deps]:  # deps inside other stages' output folders (configs/x.yaml)
                path = Path(item.fs_path)
                if path.exists():
                    continue
                if path.suffix:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("{}\n")
                else:
                    path.mkdir(parents=True, exist_ok=True)
                    (path / "placeholder").write_text("x\n")
    assert proc.stdout.strip()


@pytest.mark.slow
def test_dvc_status_follows_the_import_closure(tmp_path):
    """Changing a file of the training code makes `dvc status` report every training stage changed; changing a
    download helper touches no training stage (the paper's runs do not re-train because a downloader changed): only
    the stages that download (prepare, split for published splits, weights)."""
    repo = copy_repository(tmp_path / "repo")
    _placeholders(repo)
    subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", "--quiet"], cwd=repo, check=True,
                   capture_output=True)
    assert changed_stages(repo) == set()
    stages = {s.split("@")[0] for s in _lock_stages(repo)}
    assert {"train", "prepare", "weights", "tables"} <= stages

    losses = repo / "latentseg" / "losses.py"
    original = losses.read_text()
    losses.write_text(original + "\n# an edit of the training code\n")
    changed = changed_stages(repo)
    trains = {s for s in _lock_stages(repo) if s.startswith("train@")}
    assert trains and trains <= changed and "weights" in changed
    assert not {s for s in changed if s.startswith(("prepare@", "split@", "tables", "claims", "check"))}
    losses.write_text(original)
    assert changed_stages(repo) == set()

    download = repo / "latentseg" / "prepare" / "download.py"
    download.write_text(download.read_text() + "\n# an edit of a download helper\n")
    changed = changed_stages(repo)
    assert changed and changed <= {s for s in _lock_stages(repo) if s.startswith(("prepare@", "split@"))} | {"weights"}
    assert not {s for s in changed if s.startswith("train@")}


def _lock_stages(repo: Path) -> list[str]:
    return list(yaml.safe_load((repo / "dvc.lock").read_text())["stages"])
