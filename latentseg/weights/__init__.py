"""Making the initial weights every run starts from (stage ``weights``): published checkpoints or COCO pretraining.

Training reads the result through ``latentseg.models.init`` and never imports this package (its downloads and
COCO conversion are no reason to re-train). ``make_weights`` carries out the plan the ``resolve`` stage wrote
(``experiments.resolve_weights``): for each initialisation, none, a published file, or COCO pretraining.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentseg.config import STRICT, from_dict
from latentseg.methods import run_config
from latentseg.models.init import MANIFEST
from latentseg.util.devices import check_device
from latentseg.util.files import atomic_write_json
from latentseg.weights.pretrain import CocoPretrainSpec, pretrain_coco
from latentseg.weights.published import fetch_published, published_spec

Logger = Callable[[dict[str, float], int], None]


@dataclass(frozen=True)
class PublishedSpec:
    __pydantic_config__ = STRICT
    published: str  # a key of published.PUBLISHED
    file: str | None  # a copy you have (else the environment variable, else download)
    verify_checksum: bool  # False accepts a re-saved copy of the same weights (names are still checked)


def make_weights(plan: dict[str, Any], out: str | Path, raw_dir: str | Path, work_dir: str | Path,
                 log: Logger | None = None) -> dict[str, dict | None]:
    """Make every initialisation of ``plan`` in ``out`` and write ``out/manifest.json``; returns the manifest."""
    for init in ("imagenet", "coco"):  # a device this machine lacks: one line now, not after the downloads
        if isinstance(plan.get(init), dict) and "pretrain_coco" in plan[init]:
            check_device(plan[init]["config"]["runtime"]["device"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict | None] = {}
    for init in ("imagenet", "coco"):  # COCO pretraining may start from the ImageNet weights
        how = plan.get(init)
        where = f"profiles.{plan['profile']}.weights.{init}"
        target = out / f"{init}.pt"
        if how is None:
            manifest[init] = None
        elif "published" in how:
            spec = from_dict(PublishedSpec, how, where + ".")
            fetch_published(spec.published, target, source=spec.file, cache=Path(raw_dir) / "weights",
                            verify_checksum=spec.verify_checksum)
            record = published_spec(spec.published)
            manifest[init] = {"file": target.name, "made_by": f"published {spec.published}",
                              "url": record.remotes[0].urls[0], "env": record.env}
        else:
            spec = from_dict(CocoPretrainSpec, how["pretrain_coco"], where + ".pretrain_coco.")
            cfg = run_config(how["config"])
            init_file = None
            if cfg.init == "imagenet":
                if manifest.get("imagenet") is None:
                    raise FileNotFoundError(f"{where}.pretrain_coco.init is 'imagenet' but the profile makes no "
                                            "ImageNet weights (profiles.<profile>.weights.imagenet); set one, or "
                                            "init: none")
                init_file = out / "imagenet.pt"
            pretrain_coco(spec, cfg, target, raw_dir, work_dir, init_file, log)
            kind = "an embedded COCO-format stand-in" if spec.synthetic else f"MS-COCO {spec.year}"
            manifest[init] = {"file": target.name, "made_by": f"pretrain_coco on {kind}"}
    atomic_write_json(out / MANIFEST, {"profile": plan["profile"], "weights": manifest})
    return manifest
