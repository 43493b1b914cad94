"""Loading runs no code: every reader of a torch file refuses one that carries a pickled payload, in one line
naming the file, and the payload never runs. A checkpoint written as the trainer writes one still loads."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from latentseg import cli
from latentseg.classifier import imagenet_trunk, load_classifier
from latentseg.models.deeplab import DeepLabV2
from latentseg.models.init import load_init
from latentseg.predict.predictor import RUN_FIX, Predictor, read_checkpoint
from latentseg.registry.experiments import resolve
from latentseg.registry.params import load_params
from latentseg.train import checkpoint as ckpt
from latentseg.train.checkpoint import RUN_FORMAT, load_trained
from latentseg.train.identity import resumable_state
from latentseg.weights.published import load_checkpoint_file
from tests.cluster.layout import make_layout, write_classifier
from tests.tiny_run import save_tiny_run, voc_config
from tests.train.speed_fixtures import make_data

ROOT = Path(__file__).resolve().parents[1]


class Payload:
    """What a hostile ``checkpoint.pt`` carries: unpickling it runs a shell command that leaves ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile(folder: Path, **fields) -> tuple[Path, Path]:
    """A file that looks like a checkpoint of the project but for its payload; and where the payload would mark."""
    marker = folder / "payload-ran"
    path = folder / "checkpoint.pt"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"format": RUN_FORMAT, "step": 6, **fields, "payload": Payload(marker)}, path)
    return path, marker


def tiny_model() -> DeepLabV2:
    return DeepLabV2(21, None, backbone="tiny", aspp_branches=2, freeze_bn_stats=False)


LOADERS: dict[str, Callable[[Path], object]] = {
    "checkpoint.load": ckpt.load,
    "trained.load_trained": load_trained,
    "identity.resumable_state": lambda p: resumable_state(p, None, None, None),
    "models.init.load_init": lambda p: load_init(tiny_model(), p),
    "classifier.load_classifier": load_classifier,
    "classifier.imagenet_trunk": imagenet_trunk,
    "predict.read_checkpoint": lambda p: read_checkpoint(p, RUN_FORMAT, RUN_FIX),
    "predict.Predictor": lambda p: Predictor.from_checkpoint(p, "cpu"),
    "weights.load_checkpoint_file": load_checkpoint_file,
}


@pytest.mark.parametrize("loader", LOADERS, ids=list(LOADERS))
def test_every_loader_refuses_a_pickled_payload_in_one_line_and_never_runs_it(loader, tmp_path):
    path, marker = hostile(tmp_path, format="latentseg-init")
    with pytest.raises(ValueError) as refused:
        LOADERS[loader](path)
    message = str(refused.value)
    assert str(path) in message and "posix.system" in message and "\n" not in message, message
    assert not marker.exists()


def test_every_torch_load_is_the_one_weights_only_reader():
    """A new reader cannot forget ``weights_only``: ``torch.load`` appears in one place of the package."""
    found = {str(p.relative_to(ROOT)): p.read_text().count("torch.load(")
             for folder in ("latentseg", "stages") for p in (ROOT / folder).rglob("*.py")}
    assert {path: n for path, n in found.items() if n} == {"latentseg/util/files.py": 1}
    assert "weights_only=True" in (ROOT / "latentseg" / "util" / "files.py").read_text()


def test_a_checkpoint_as_the_trainer_writes_it_still_loads(tmp_path):
    save_tiny_run(tmp_path / "checkpoint.pt", voc_config(), 21)
    _, cfg, state = load_trained(tmp_path / "checkpoint.pt")
    assert cfg == voc_config() and isinstance(state["rng"], torch.Tensor) and state["sgd"]["param_groups"]


def test_predict_and_submit_refuse_a_hostile_checkpoint_in_one_line(tmp_path, monkeypatch, capsys):
    params = load_params(ROOT / "params.yaml")
    exp, cfg = resolve(params, "voc-1_8-proposed")
    data = make_data(tmp_path / "data" / "voc")
    layout = make_layout(tmp_path, exp.id, cfg, data, exp.fraction, list(exp.seeds))
    write_classifier(layout, params, "voc-1_8")  # submitted with the experiment it filters
    path, marker = hostile(layout.outputs.run_folder(exp.dataset, exp.id, exp.seeds[0]))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    assert cli.main(["predict", "--checkpoint", str(path), str(path), "--out", str(tmp_path / "o")]) == 2
    code = cli.main(["submit", "--dry-run", "--experiments", exp.id, "--configs", str(layout.configs),
                     "--data", str(layout.data), "--splits", str(layout.splits), "--weights", str(layout.weights),
                     "--runs", str(layout.runs)])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(str(path) in line for line in lines), err
    assert all(re.search(r"posix\.system", line) for line in lines) and "Traceback" not in err
