"""Initial weights: fetching the published checkpoints (download, checksum, resume, offline), their strict
conversion, a user's own copy, the weights stage's manifest, and COCO pretraining end to end (tiny)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
import torch

from latentseg.config import SettingsError
from latentseg.models.deeplab import DeepLabV2
from latentseg.models.init import INIT_FORMAT, load_init, resolve_init
from latentseg.prepare.download import ChecksumError, OfflineError, Remote
from latentseg.registry.experiments import resolve_weights
from latentseg.registry.params import load_params
from latentseg.weights import make_weights
from latentseg.weights.published import PUBLISHED, fetch_published
from tests.layouts import hung_coco_state, torchvision_resnet_state

FAST = {"backoff": 0.01, "progress": False}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_weights_env(monkeypatch) -> None:
    for spec in PUBLISHED.values():
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.delenv("LATENTSEG_COCO_ROOT", raising=False)


def _save(state: dict, path: Path, legacy: bool = False) -> Path:
    """Save like the publishers did: Hung et al.'s 2017 file predates PyTorch's zip format."""
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def hung_file(served) -> tuple[dict, Remote]:
    """A tiny checkpoint in Hung et al.'s layout, served over HTTP under a torch-hub style name."""
    state = hung_coco_state(prefixed=False)  # the released file's layout
    path = _save(state, served.state.root / "resnet101COCO-tiny.pth", legacy=True)
    return state, served.remote(path.name, sha256=_sha256(path)[:8])  # verified against the name's prefix


def test_fetch_published_coco_maps_strictly_and_initialises_a_run(hung_file, served, tmp_path):
    state, remote = hung_file
    out = fetch_published("deeplab_coco", tmp_path / "weights" / "coco.pt", remotes=(remote,),
                          cache=tmp_path / "raw", backbone="tiny", **FAST)
    saved = torch.load(out, weights_only=True)
    assert saved["format"] == INIT_FORMAT and saved["backbone"] == "tiny" and len(saved["classes"]) == 21
    assert torch.equal(saved["model"]["backbone.layer3.0.downsample.0.weight"], state["layer3.0.downsample.0.weight"])
    assert torch.equal(saved["model"]["semantic_head.conv2d_list.3.bias"], state["layer5.conv2d_list.3.bias"])
    assert not any(k.startswith("latent_head.") for k in saved["model"])
    # the training code loads it as a "coco" initialisation, for VOC (head kept) and Cityscapes (head dropped)
    for classes in (21, 19):
        model = DeepLabV2(classes, 20, backbone="tiny", aspp_branches=2, freeze_bn_stats=False)
        fresh = load_init(model, out)
        assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])
        assert ("semantic_head.conv2d_list.0.weight" in fresh) == (classes == 19)
    # a second call finds the verified download and does not fetch again
    fetch_published("deeplab_coco", tmp_path / "again.pt", remotes=(remote,), cache=tmp_path / "raw",
                    backbone="tiny", **FAST)
    assert served.count(remote.filename) == 1


def test_download_resumes_after_the_connection_drops(hung_file, served, tmp_path):
    _, remote = hung_file
    served.state.drop_once.add(remote.filename)
    fetch_published("deeplab_coco", tmp_path / "coco.pt", remotes=(remote,), cache=tmp_path, backbone="tiny",
                    **FAST)
    ranges = [r for name, r in served.state.requests if name == remote.filename]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"


def test_a_checksum_prefix_that_does_not_match_is_refused(hung_file, tmp_path):
    _, remote = hung_file
    wrong = Remote(remote.urls, remote.filename, sha256="deadbeef")
    with pytest.raises(ChecksumError) as err:
        fetch_published("deeplab_coco", tmp_path / "coco.pt", remotes=(wrong,), cache=tmp_path, backbone="tiny",
                        **FAST)
    assert "deadbeef" in str(err.value) and remote.urls[0] in str(err.value)
    assert not (tmp_path / remote.filename).exists() and not (tmp_path / "coco.pt").exists()


def test_offline_names_the_url_the_place_the_variable_and_the_rebuild(refused_url, tmp_path):
    remote = Remote((refused_url,), "resnet101COCO-41f33a49.pth", sha256="41f33a49")
    with pytest.raises(OfflineError) as err:
        fetch_published("deeplab_coco", tmp_path / "coco.pt", remotes=(remote,), cache=tmp_path / "raw", **FAST)
    message = str(err.value)
    assert refused_url in message and str((tmp_path / "raw" / remote.filename).resolve()) in message
    assert "41f33a49" in message and "LATENTSEG_COCO_WEIGHTS" in message and "pretrain_coco" in message


def test_published_records_name_their_files_by_sha256_prefix():
    coco = PUBLISHED["deeplab_coco"].remotes[0]
    assert coco.urls[0].endswith("/resnet101COCO-41f33a49.pth") and coco.sha256 == "41f33a49"
    for remote in PUBLISHED["torchvision_resnet101"].remotes:
        assert remote.urls[0].startswith("https://download.pytorch.org/models/resnet101-")
        assert remote.filename == f"resnet101-{remote.sha256}.pth"


def test_a_copy_the_user_has_is_used_without_network(monkeypatch, refused_url, tmp_path):
    model = DeepLabV2(21, None, backbone="tiny", aspp_branches=2, freeze_bn_stats=True)
    path = _save(torchvision_resnet_state(model), tmp_path / "my-resnet101.pth")
    nowhere = Remote((refused_url,), "resnet101-00000000.pth", sha256=_sha256(path)[:8])
    monkeypatch.setenv("LATENTSEG_IMAGENET_WEIGHTS", str(path))
    out = fetch_published("torchvision_resnet101", tmp_path / "imagenet.pt", remotes=(nowhere,), backbone="tiny")
    saved = torch.load(out, weights_only=True)
    assert saved["classes"] == [] and all(k.startswith("backbone.") for k in saved["model"])
    # a copy matching no published checksum is refused, unless the user says it is a re-saved copy
    other = Remote((refused_url,), "resnet101-00000000.pth", sha256="00000000")
    with pytest.raises(ChecksumError, match="verify_checksum"):
        fetch_published("torchvision_resnet101", tmp_path / "x.pt", source=path, remotes=(other,), backbone="tiny")
    fetch_published("torchvision_resnet101", tmp_path / "x.pt", source=path, remotes=(other,), backbone="tiny",
                    verify_checksum=False)


def test_a_missing_or_misnamed_tensor_is_named(tmp_path):
    state = hung_coco_state()
    del state["Scale.layer4.0.bn3.running_mean"]
    state["Scale.layer1.0.conv2.wieght"] = state.pop("Scale.layer1.0.conv2.weight")
    path = _save(state, tmp_path / "broken.pth", legacy=True)
    with pytest.raises(KeyError) as err:
        fetch_published("deeplab_coco", tmp_path / "coco.pt", source=path, verify_checksum=False, backbone="tiny")
    message = str(err.value)
    assert str(path) in message
    assert "missing tensor backbone.layer4.0.bn3.running_mean" in message
    assert "missing tensor backbone.layer1.0.conv2.weight" in message
    assert "unexpected tensor backbone.layer1.0.conv2.wieght" in message
    assert not (tmp_path / "coco.pt").exists()


@pytest.mark.slow
def test_full_size_hung_checkpoint_converts(tmp_path):
    model = DeepLabV2(21, None, backbone="resnet101", aspp_branches=2, freeze_bn_stats=True)
    state = hung_coco_state(full=True, prefixed=False)
    path = _save(state, tmp_path / "resnet101COCO.pth", legacy=True)
    out = fetch_published("deeplab_coco", tmp_path / "coco.pt", source=path, verify_checksum=False)
    saved = torch.load(out, weights_only=True)["model"]
    assert len([k for k in saved if k.startswith("backbone.")]) == len(model.backbone.state_dict())
    assert torch.equal(saved["backbone.layer3.22.conv3.weight"], state["layer3.22.conv3.weight"])


def _demo_params(iterations: int = 3, num_train: int = 24) -> dict:
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["profile"] = "demo"
    spec = params["profiles"]["demo"]["weights"]["coco"]["pretrain_coco"]
    spec["synthetic"] = {**spec["synthetic"], "num_train": num_train, "size": [32, 32]}
    spec["min_area"] = 16
    spec["run"] = {"optim": {"iterations": iterations, "batch_size": 4},
                   "data": {"crop_size": [32, 32], "workers": 0}, "runtime": {"checkpoint_every": 1000}}
    return params


def test_demo_weights_stage_pretrains_on_coco_format_data_and_writes_the_manifest(tmp_path):
    out = tmp_path / "weights"
    manifest = make_weights(resolve_weights(_demo_params()), out, tmp_path / "raw", tmp_path / "work")
    assert manifest["imagenet"] is None and manifest["coco"]["file"] == "coco.pt"
    assert json.loads((out / "manifest.json").read_text())["weights"] == manifest
    saved = torch.load(out / "coco.pt", weights_only=True)
    assert saved["format"] == INIT_FORMAT and saved["classes"][15] == "person"
    # what the training stage does with it
    assert resolve_init(out, "imagenet") is None  # the demo makes none: random by design
    assert resolve_init(out, "none") is None
    init = resolve_init(out, "coco")
    model = DeepLabV2(21, 20, backbone="tiny", aspp_branches=2, freeze_bn_stats=False)
    fresh = load_init(model, init)
    assert all(k.startswith("latent_head.") for k in fresh)
    assert torch.equal(model.backbone.conv1.weight, saved["model"]["backbone.conv1.weight"])
    (out / "coco.pt").unlink()
    with pytest.raises(FileNotFoundError, match="dvc repro weights"):
        resolve_init(out, "coco")


def test_missing_weights_of_a_profile_that_makes_them_is_an_error(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"profile": "paper", "weights": {
        "coco": {"file": "coco.pt", "made_by": "published deeplab_coco", "url": "http://x/resnet101COCO.pth",
                 "env": "LATENTSEG_COCO_WEIGHTS"}, "imagenet": None}}))
    with pytest.raises(FileNotFoundError) as err:
        resolve_init(tmp_path, "coco")
    assert all(s in str(err.value) for s in ("coco.pt", "http://x/resnet101COCO.pth", "dvc repro weights"))
    with pytest.raises(FileNotFoundError, match="weights stage has not run"):
        resolve_init(tmp_path / "nothing", "imagenet")


@pytest.mark.parametrize("prefixed", [False, True], ids=["hung-released", "scale-prefixed"])
def test_paper_profile_converts_both_published_files(monkeypatch, tmp_path, prefixed):
    """The paper profile's weights plan, run against local copies of the two published layouts (tiny trunks,
    random values, ``verify_checksum: false``): both of Hung et al.'s key layouts are accepted."""
    coco = _save(hung_coco_state(prefixed=prefixed), tmp_path / "coco.pth", legacy=True)
    imagenet = _save(torchvision_resnet_state(DeepLabV2(21, None, "tiny", 2, True)), tmp_path / "resnet.pth")
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["profile"] = "paper"
    weights = params["profiles"]["paper"]["weights"]
    assert weights["coco"]["published"] == "deeplab_coco"
    assert weights["imagenet"]["published"] == "torchvision_resnet101"
    weights["coco"] = {**weights["coco"], "file": str(coco), "verify_checksum": False}
    monkeypatch.setenv("LATENTSEG_IMAGENET_WEIGHTS", str(imagenet))
    weights["imagenet"] = {**weights["imagenet"], "verify_checksum": False}
    monkeypatch.setattr("latentseg.weights.published.BACKBONE", "tiny")  # the files above are tiny trunks
    manifest = make_weights(resolve_weights(params), tmp_path / "weights", tmp_path / "raw", tmp_path / "work")
    assert manifest["coco"]["url"].endswith("resnet101COCO-41f33a49.pth")
    assert resolve_init(tmp_path / "weights", "imagenet").is_file()
    # made again (the stage re-runs when a download helper changes): the same bytes, so no run re-trains
    made = {name: _sha256(tmp_path / "weights" / name) for name in ("coco.pt", "imagenet.pt")}
    make_weights(resolve_weights(params), tmp_path / "weights", tmp_path / "raw", tmp_path / "work")
    assert {name: _sha256(tmp_path / "weights" / name) for name in made} == made
    with pytest.raises(SettingsError, match=r"weights\.coco\.fle = 'typo': unknown key"):
        weights["coco"]["fle"] = "typo"
        make_weights(resolve_weights(params), tmp_path / "weights", tmp_path / "raw", tmp_path / "work")


def test_paper_coco_pretraining_plan_starts_from_imagenet(tmp_path):
    """The rebuild the paper profile offers (commented in params.yaml): the profile's settings, CE only."""
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    params["profile"] = "paper"
    params["profiles"]["paper"]["weights"]["coco"] = {"pretrain_coco": {
        "year": 2017, "source": None, "synthetic": None, "min_area": 1000, "init": "imagenet", "seed": 1234,
        "run": {"optim": {"iterations": 60000}}}}
    plan = resolve_weights(params)
    cfg = plan["coco"]["config"]
    assert cfg["init"] == "imagenet" and cfg["model"]["backbone"] == "resnet101"
    assert cfg["optim"]["iterations"] == 60000 and cfg["data"]["crop_size"] == [321, 321]
    assert cfg["settings"]["latent"] is None and cfg["discriminator"] is None  # the cross-entropy alone
    params["profiles"]["paper"]["weights"]["imagenet"] = None
    with pytest.raises(FileNotFoundError, match="makes no ImageNet weights"):
        make_weights(resolve_weights(params), tmp_path / "weights", tmp_path / "raw", tmp_path / "work")
    params["profiles"]["paper"]["weights"]["coco"]["pretrain_coco"]["run"] = {"optimizer": {}}
    with pytest.raises(SettingsError, match=r"pretrain_coco.run.optimizer = \{\}: unknown section"):
        resolve_weights(params)
