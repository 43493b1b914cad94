"""The paper profile end to end: `dvc repro` of the real dvc.yaml, on a copy of the repository, from release
archives in the official VOC 2012 / SBD / Cityscapes / IIT Affordances layouts and weight files in both published
key layouts.

What is shrunk, only through the profile's patch of params.yaml (``profiles.paper.optim``, ``.methods``,
``.datasets.*.run``):
the schedules (2 iterations of 2 images), the crops (33x33, the smallest the trunk and discriminators take;
Cityscapes 32x64 of its 64x128 images), the evaluation padding, the device (CPU) and the registry (one run of each
kind the stages need, and one IIT Affordances run). Everything else is the paper profile as it stands: the real
ResNet-101 trunk, its recipe (2 ASPP branches, batch statistics, no random scale or mirror, the discriminator's
separate draw), the published-weights conversion, every stage. In make test it takes 102-115 s on a 2-core AMD EPYC
VM and 188 s on a 2-core Intel Xeon VM (docs/measured.md); the files are large (each ResNet-101 file ~170 MB, each
run checkpoint ~350 MB), and a passing run removes them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from latentseg.models.deeplab import DeepLabV2
from latentseg.prepare.mock_release import make_cityscapes_zips, make_sbd_tgz, make_voc_tar
from latentseg.run.outputs import Outputs
from tests.layouts import hung_coco_state, torchvision_resnet_state
from tests.pipeline.repository import changed_stages, copy_repository, dvc
from tests.prepare.iit_release import make_iit_folder, zip_folder

# One run of each kind the stages need: Hung et al., Proposed, s4GAN (Proposed + Classifier's classifier filters
# voc-1_8-proposed and voc-1_8-s4gan: dvc.yaml depends on both), Cityscapes from the ImageNet weights.
RUNS = ["voc-1_8-hung", "voc-1_8-proposed", "voc-1_8-s4gan", "cityscapes-1_8-proposed-imagenet", "iit-1_8-proposed"]
TABLE1_ROWS = ["Hung et al.", "Mittal et al.", "Proposed", "Proposed + Classifier"]  # each one's 1/8 cell ran

THREADS = torch.get_num_threads()  # tests/conftest.py: 2, or 1 per pytest-xdist worker
VOC_SIZE = (50, 40)  # (W, H) of every VOC / SBD image
VOC_TRAIN = [f"2007_{i:06d}" for i in range(0, 24, 2)]  # 12
VOC_VAL = [f"2007_{i:06d}" for i in range(1, 9, 2)]  # 4
SBD_TRAIN = [f"2008_{i:06d}" for i in range(36)] + VOC_TRAIN[:6] + VOC_VAL[:1]  # overlaps as the real lists do
SBD_VAL = [f"2009_{i:06d}" for i in range(8)] + VOC_TRAIN[6:8] + VOC_VAL[1:2]
AUG_TRAIN = sorted((set(VOC_TRAIN) | set(SBD_TRAIN) | set(SBD_VAL)) - set(VOC_VAL))  # 56: 1/50 leaves one labeled
CITYSCAPES_SIZE = (128, 64)
CITYSCAPES = {"train": ["aachen", "bochum"], "val": ["frankfurt"], "test": ["berlin"]}
PER_CITY = 4  # 8 train (1/8 leaves one labeled), 4 val
# IIT Affordances: 8 train_and_val images (1/8 leaves one labeled), 3 test, landscape, portrait and square
IIT_TRAIN = [(f"0{i % 3}_{i:08d}", (32 + 4 * (i % 3), 48 - 8 * (i % 2))) for i in range(1, 9)]
IIT_TEST = [(f"03_{i:08d}", (24 + 8 * (i % 2), 40)) for i in range(9, 12)]


def make_releases(folder: Path) -> dict[str, Path]:
    """The three releases, as a user downloads them."""
    folder.mkdir()
    voc = make_voc_tar(folder / "VOCtrainval_11-May-2012.tar", VOC_TRAIN, VOC_VAL,
                       extra_image_ids=SBD_TRAIN + SBD_VAL, size=VOC_SIZE)
    sbd = make_sbd_tgz(folder / "benchmark.tgz", SBD_TRAIN, SBD_VAL, size=VOC_SIZE)
    make_cityscapes_zips(folder / "cityscapes", CITYSCAPES, per_city=PER_CITY, size=CITYSCAPES_SIZE)
    iit = zip_folder(make_iit_folder(folder / "iit", IIT_TRAIN, IIT_TEST), folder / "IIT_Affordances_2017.zip")
    return {"voc": voc, "sbd": sbd, "cityscapes": folder / "cityscapes", "iit": iit}


def make_weight_files(folder: Path) -> dict[str, Path]:
    """Full-size ResNet-101 files with random values in the two published key layouts: Hung et al.'s COCO
    DeepLab-v2 (saved in torch's legacy format, as that 2017 file was) and torchvision's ImageNet ResNet-101."""
    folder.mkdir()
    coco = folder / "resnet101COCO-random.pth"
    torch.save(hung_coco_state(full=True, prefixed=False), coco, _use_new_zipfile_serialization=False)
    model = DeepLabV2(21, None, backbone="resnet101", aspp_branches=4, freeze_bn_stats=True)
    imagenet = folder / "resnet101-random.pth"
    torch.save(torchvision_resnet_state(model), imagenet)
    return {"coco": coco, "imagenet": imagenet}


def shrink_paper_profile(params: dict, releases: dict[str, Path], weights: dict[str, Path]) -> dict:
    """``params`` running the paper profile on the given files, at CPU size, with a registry of ``RUNS``."""
    params["profile"] = "paper"
    paper = params["profiles"]["paper"]
    assert not set(paper) - {"datasets", "methods", "weights"}, "the paper profile patches more: revisit this test"
    # The generated archives and weight files cannot carry the official checksums: verify_checksum: false, as for
    # a re-packed copy (the layouts, tensor names and shapes are still checked).
    paper["datasets"] = {
        "voc": {"source": str(releases["voc"]), "sbd_source": str(releases["sbd"]), "verify_checksum": False,
                "run": {"data": {"eval_pad": 56}}},  # 505 for VOC's images of up to 500x500; these are 50x40
        "cityscapes": {"source": str(releases["cityscapes"]), "verify_checksum": False,  # the folder of its 2 zips
                       "run": {"data": {"resize": [64, 128], "crop_size": [32, 64]}}},  # 1/8 of 512x1024, 256x512
        # the zip; no checksum is published, so the first preparation records it (verify_checksum stays true)
        "iit": {"source": str(releases["iit"]), "verify_checksum": True, "run": {"data": {"eval_pad": 64}}},
    }
    paper["weights"] = {
        "coco": {"published": "deeplab_coco", "file": str(weights["coco"]), "verify_checksum": False},
        "imagenet": {"published": "torchvision_resnet101", "file": str(weights["imagenet"]), "verify_checksum": False},
    }
    paper.update({
        "optim": {"iterations": 2, "batch_size": 2},
        "data": {"crop_size": [33, 33], "workers": 0},  # the smallest the trunk and discriminators take
        # a core's share: one under make test's worker per core
        "runtime": {"device": "cpu", "log_every": 1, "checkpoint_every": 1000, "eval_every": 0, "threads": THREADS},
        "classifier": {"epochs": 1, "steps_per_epoch": 2, "batch_size_labeled": 2, "batch_size_unlabeled": 2,
                       "input_size": 33},
    })
    for s4gan in ("s4gan", "s4gan-cityscapes"):
        paper["methods"][s4gan]["optim"] = {"iterations": 2, "batch_size": 2}  # its own 40,000 of 8
    params["experiments"] = {exp: params["experiments"][exp] for exp in RUNS}
    params["classifiers"] = {"voc-1_8": params["classifiers"]["voc-1_8"]}
    params["figures"] = {"fig3_voc_k20": "voc-1_8-proposed", "fig3_cityscapes_k20": "cityscapes-1_8-proposed-imagenet"}
    params["figure1"]["runs"] = {"voc": "voc-1_8-proposed", "cityscapes": "cityscapes-1_8-proposed-imagenet"}
    return params


def table_row(markdown: str, row: str) -> list[str]:
    """The cells of one row of a table's Markdown (``| Proposed | 1.2 / 59.6 (-58.4) | ... |``)."""
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {row} "))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


@pytest.mark.slow
def test_the_paper_profile_runs_end_to_end(tmp_path, warm_stages):
    repo = copy_repository(tmp_path / "repo")
    releases = make_releases(tmp_path / "releases")
    weights = make_weight_files(tmp_path / "published")
    params = shrink_paper_profile(yaml.safe_load((repo / "params.yaml").read_text()), releases, weights)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The cache links the large files rather than copying them. Not "reflink,hardlink,copy": where reflinks fail
    # (ext4), dvc 3.67 then copies the files of directory outputs (runs/<exp>, weights) instead of linking them.
    dvc(repo, "config", "cache.type", "hardlink,copy")

    proc = dvc(repo, "repro", check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]

    voc = json.loads((repo / "data/prepared/voc/dataset.json").read_text())
    assert (voc["num_train"], voc["num_val"]) == (len(AUG_TRAIN), len(VOC_VAL))
    city = json.loads((repo / "data/prepared/cityscapes/dataset.json").read_text())
    assert (city["num_train"], city["num_val"]) == (2 * PER_CITY, PER_CITY)
    iit = json.loads((repo / "data/prepared/iit/dataset.json").read_text())
    assert (iit["num_train"], iit["num_val"], len(iit["classes"])) == (len(IIT_TRAIN), len(IIT_TEST), 10)
    recorded = json.loads((repo / "data/raw/iit/release.json").read_text())
    assert recorded == json.loads((repo / "data/prepared/iit/release.json").read_text())
    assert len(recorded["sha256"]) == 64

    manifest = json.loads((repo / "weights/manifest.json").read_text())
    assert manifest["profile"] == "paper"
    assert manifest["weights"]["coco"]["made_by"] == "published deeplab_coco"
    assert manifest["weights"]["imagenet"]["made_by"] == "published torchvision_resnet101"

    out = Outputs(configs=repo / "configs", runs=repo / "runs", results=repo / "results")
    for exp in RUNS:
        runs = json.loads(out.metrics_file(exp.split("-")[0], exp).read_text())["runs"]
        assert list(runs) == ["seed-1234"] and runs["seed-1234"]["steps"] == 2, exp
    filtered = json.loads(out.classifier_file("voc", "voc-1_8").read_text())["filtered"]
    assert {exp: list(f["runs"]) for exp, f in filtered.items()} == {
        "voc-1_8-proposed": ["seed-1234"], "voc-1_8-s4gan": ["seed-1234"]}

    saved = torch.load(out.run_folder("voc", "voc-1_8-hung", 1234) / "checkpoint.pt", map_location="cpu",
                       weights_only=True)
    config = saved["config"]  # the paper's recipe, not the demo's
    assert config["model"] == {"backbone": "resnet101", "aspp_branches": 2, "freeze_bn_stats": False}
    assert (config["data"]["random_scale"], config["data"]["mirror"]) == (False, False)
    assert config["discriminator"]["real"] == "separate" and config["objective"] == "hung"
    assert config["settings"]["hung"]["semi_start"] == 5000 and config["optim"]["lr"] == 2.5e-4  # not shrunk
    assert saved["step"] == 2

    table1 = (repo / "reports/tables/table1.md").read_text()
    columns = ["1/50", "1/20", "1/8", "1/4", "1/2", "full"]
    for row in TABLE1_ROWS:
        cells = dict(zip(columns, table_row(table1, row), strict=True))
        ours = {column: text.split(" / ")[0] for column, text in cells.items()}
        assert 0 <= float(ours.pop("1/8")) <= 100, (row, cells)
        assert set(ours.values()) == {"–"}, (row, cells)  # the runs not in this registry: not run
    assert "Profile `paper`" in table1
    tolerance = (repo / "reports/tolerance.md").read_text()
    assert "Tolerance check (paper profile)" in tolerance and "problem(s) against reference/paper.yaml" in tolerance
    assert "table1 / Proposed / 1/8: " in tolerance  # 2 steps are not 20,000: far out of tolerance, and it says so
    figures = repo / "reports/figures"
    assert {"fig1_voc.png", "fig1_cityscapes.png", "fig3_voc_k20.png", "fig3_cityscapes_k20.png"} <= {
        p.name for p in figures.iterdir()}

    again = dvc(repo, "repro")
    assert "Running stage" not in again.stdout, again.stdout
    assert changed_stages(repo) == set()
    # The weights stage made again (as when a download helper changes) writes the same bytes: nothing re-trains.
    dvc(repo, "repro", "--force", "--single-item", "weights")
    assert changed_stages(repo) == set()
    shutil.rmtree(tmp_path)  # ~2 GB; pytest would keep the folders of the last three sessions
