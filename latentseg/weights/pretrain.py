"""COCO pretraining: how the paper's initialisation is rebuilt when the released file cannot be had.

DeepLab-v2 trained on MS-COCO's 20 VOC categories + background (``prepare/coco.py`` turns COCO's instances into
VOC-class masks) from ImageNet weights: a cross-entropy-only run of the same trainer, whose trunk and semantic
head are then saved as initial weights (``models/init.py``). The demo takes the same path on an embedded
COCO-format stand-in.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from latentseg.config import STRICT, RunConfig
from latentseg.data.layout import TrainData, read_list
from latentseg.datasets.voc import DATASET as VOC
from latentseg.models.init import save_init
from latentseg.prepare.coco import prepare_coco
from latentseg.prepare.synthetic import SyntheticSpec, generate_coco
from latentseg.train.checkpoint import load_trained
from latentseg.train.trainer import train


@dataclass(frozen=True)
class SyntheticCocoSpec:
    __pydantic_config__ = STRICT
    num_train: int
    num_val: int
    size: tuple[int, int]
    seed: int


@dataclass(frozen=True)
class CocoPretrainSpec:
    __pydantic_config__ = STRICT
    year: int  # which COCO release: 2014 or 2017 (the same images; 2017 has train = 2014 trainval35k)
    source: str | None  # a folder holding it (else $LATENTSEG_COCO_ROOT, else download the zips)
    min_area: float  # keep images with this many pixels of VOC objects (DeepLab-v3's rule: 1000)
    synthetic: SyntheticCocoSpec | None  # the demo: an embedded COCO-format stand-in instead
    init: Literal["imagenet", "none"]  # what the pretraining starts from


def pretrain_coco(spec: CocoPretrainSpec, cfg: RunConfig, out: str | Path, raw_dir: str | Path,
                  work_dir: str | Path, init_file: Path | None,
                  log: Callable[[dict[str, float], int], None] | None = None) -> Path:
    """Prepare COCO's VOC classes, pretrain ``cfg`` on them (resumable in ``work_dir``), save to ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if spec.synthetic is not None else Path(work_dir)  # the stand-in is rebuilt each time
        source = spec.source
        if spec.synthetic is not None:
            syn = spec.synthetic
            source = generate_coco(SyntheticSpec(VOC.name, syn.num_train, syn.num_val, syn.size, syn.seed),
                                   work / "coco-raw", spec.year)
        prepared = work / f"coco{spec.year}-voc"
        meta = prepare_coco(prepared, Path(raw_dir) / "coco", year=spec.year, source=source, min_area=spec.min_area)
        data = TrainData(prepared, meta, read_list(prepared / "train.txt"), [])
        checkpoint = work / "coco-pretrain.pt"
        train(cfg, checkpoint, data, init_file, log, name="coco-pretrain")
        model, cfg, _ = load_trained(checkpoint)
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("latent_head.")}
        origin = f"pretrain_coco: {cfg.optim.iterations} iterations on {'a stand-in' if spec.synthetic else 'COCO'}"
        return save_init(state, out, meta.classes, cfg.model.backbone, origin)
