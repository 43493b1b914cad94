"""Initial weights: the published checkpoints the paper starts from, or the same rebuilt by pretraining on COCO.

Every run starts from one file of the ``weights/`` folder (stage ``weights``), in the ``latentseg-init`` format
(``{"format", "model": <state dict in our names>, "classes", "backbone", "origin"}``): ``coco.pt``, the
COCO-pretrained DeepLab-v2 (trunk + 21-way VOC head), and ``imagenet.pt``, an ImageNet ResNet-101 trunk.
``manifest.json`` beside them says how each was made, or that a profile has none (the demo's "imagenet").

Two ways to make a file, chosen per initialisation in ``params.yaml`` (``profiles.<profile>.weights.<init>``):

- ``{published: <name>, file: <path or null>}``: ``fetch_published`` downloads the released checkpoint (or takes
  the copy you name: ``file``, else the environment variable of ``PUBLISHED[name].env``), verifies its checksum,
  maps it strictly onto our network (``models/checkpoints.py``) and saves it;
- ``{pretrain_coco: {...}}``: ``pretrain_coco`` prepares MS-COCO's VOC classes (``data/coco.py``; the demo's
  COCO-format stand-in with ``synthetic``) and pretrains on them with cross-entropy (``pretrain.py``).

Run it as the pipeline does: ``python stages/weights.py --out weights --raw data/raw --work runs/weights``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from latentseg.config import RunConfig, from_dict
from latentseg.data.classes import VOC_CLASSES
from latentseg.data.layout import atomic_write_text, read_list
from latentseg.experiments import SECTIONS, deep_merge, run_tree
from latentseg.models.checkpoints import load_initialisation
from latentseg.models.deeplab import DeepLabV2
from latentseg.params import profile_section
from latentseg.prepare.coco import prepare_coco
from latentseg.prepare.download import ChecksumError, DownloadError, OfflineError, Remote, file_digest, verify
from latentseg.prepare.synthetic import SyntheticSpec, generate_coco
from latentseg.pretrain import INIT_FORMAT, pretrain
from latentseg.train import checkpoint as ckpt
from latentseg.train.trainer import TrainData

MANIFEST = "manifest.json"
INITS = ("imagenet", "coco")  # in the order they are made: COCO pretraining may start from ImageNet


@dataclass(frozen=True)
class Published:
    """A released checkpoint: where it is, its checksum, its key layout (``models/checkpoints.SOURCES``)."""

    name: str
    layout: str
    remotes: tuple[Remote, ...]  # tried in order; each file has its own name and checksum
    env: str  # environment variable naming a copy you already have
    where_found: str  # the public record of the URL and checksum
    rebuild: str = ""  # what to do when no copy can be had


PUBLISHED: dict[str, Published] = {
    # Hung et al.'s COCO-pretrained DeepLab-v2 (train.py's RESTORE_FROM in hfslyc/AdvSemiSeg). The hash in the
    # name is the first 8 hex digits of the file's SHA-256 (PyTorch's model_zoo checked it on download then).
    "deeplab_coco": Published(
        "deeplab_coco", "deeplab_coco",
        (Remote(("http://vllab1.ucmerced.edu/~whung/adv-semi-seg/resnet101COCO-41f33a49.pth",),
                "resnet101COCO-41f33a49.pth", sha256="41f33a49"),),
        "LATENTSEG_COCO_WEIGHTS",
        "hfslyc/AdvSemiSeg train.py (RESTORE_FROM)",
        "This link has gone dead before (hfslyc/AdvSemiSeg#67); other projects have shared copies of the same "
        "file name, which are accepted if their SHA-256 starts with 41f33a49. Or rebuild the weights: set "
        "profiles.<profile>.weights.coco to {pretrain_coco: {...}} in params.yaml (see the commented example).",
    ),
    # torchvision's ResNet101_Weights.IMAGENET1K_V1 (what resnet101(pretrained=True) loads, Mittal et al.'s
    # initialisation); the file it was first published as (resnet101-5d3b4d8f.pth, the same weights saved
    # in PyTorch's older format) is still served and is the fallback.
    "torchvision_resnet101": Published(
        "torchvision_resnet101", "torchvision_resnet",
        (Remote(("https://download.pytorch.org/models/resnet101-63fe2227.pth",), "resnet101-63fe2227.pth",
                sha256="63fe2227"),
         Remote(("https://download.pytorch.org/models/resnet101-5d3b4d8f.pth",), "resnet101-5d3b4d8f.pth",
                sha256="5d3b4d8f")),
        "LATENTSEG_IMAGENET_WEIGHTS",
        "torchvision/models/resnet.py (ResNet101_Weights.IMAGENET1K_V1.url)",
    ),
}


def published(name: str) -> Published:
    if name not in PUBLISHED:
        raise ValueError(f"no published weights named {name!r}; choose one of {sorted(PUBLISHED)}")
    return PUBLISHED[name]


def load_checkpoint_file(path: str | Path) -> dict[str, Tensor]:
    """The state dict in a released ``.pth`` (read with ``weights_only``: a downloaded file runs no code)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} cannot be read as a PyTorch checkpoint ({err}); it is damaged or not the "
                         "published file: delete it and fetch it again") from err
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of tensor names to tensors)")
    return dict(state)


def convert_published(state: Mapping[str, Tensor], layout: str, out: str | Path, *, origin: str,
                      backbone: str = "resnet101") -> Path:
    """Map ``state`` (a published ``layout``) strictly onto our network and save it as initial weights.

    Only what the checkpoint holds is saved: the trunk, and the semantic head when it is a 21-way VOC head
    (Hung et al.'s ``layer5``). A missing, misnamed or mis-shaped tensor raises ``KeyError`` naming it.
    """
    model = DeepLabV2(len(VOC_CLASSES), None, backbone=backbone)
    fresh = set(load_initialisation(model, state, layout))
    kept = {k: v for k, v in model.state_dict().items() if k not in fresh}
    has_head = any(k.startswith("semantic_head.") for k in kept)
    ckpt.save_atomic({"format": INIT_FORMAT, "model": kept, "classes": list(VOC_CLASSES) if has_head else [],
                      "backbone": backbone, "origin": origin}, out)
    return Path(out)


def _local_copy(spec: Published, remotes: tuple[Remote, ...], path: Path, verify_checksum: bool) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{spec.name} weights {path} (argument, params file or ${spec.env}) do not exist")
    if not verify_checksum:
        return path
    failures = []
    for remote in remotes:
        try:
            return verify(path, md5=remote.md5, sha256=remote.sha256)
        except ChecksumError as err:
            failures.append(err)
    expected = ", ".join(f"{r.filename}: sha256 {r.sha256}..." for r in remotes)
    err = failures[0]
    raise ChecksumError(f"{path}: sha256 is {err.actual}, which matches no published {spec.name} file "
                        f"({expected}). If it is a re-saved copy of the same weights, set verify_checksum: false "
                        "(the tensor names and shapes are still checked strictly).",
                        path, err.algorithm, err.expected, err.actual)


def fetch_published(name: str, out: str | Path, *, source: str | Path | None = None,
                    cache: str | Path | None = None, remotes: tuple[Remote, ...] | None = None,
                    verify_checksum: bool = True, backbone: str = "resnet101", **fetch_kwargs: Any) -> Path:
    """Fetch the released checkpoint ``name`` (see ``PUBLISHED``) and write it to ``out`` as initial weights.

    The file is ``source`` if given, else ``$<PUBLISHED[name].env>``, else downloaded (resuming, retrying,
    checksum-verified by ``download.fetch``) into ``cache`` (default: a ``downloads`` folder beside ``out``),
    trying ``remotes`` (default: the published URLs) in order. Offline, ``OfflineError`` names the URL and
    where to place the file by hand. ``fetch_kwargs`` go to ``download.fetch`` (retries, backoff, progress).
    """
    spec = published(name)
    remotes = remotes or spec.remotes
    source = source if source is not None else os.environ.get(spec.env) or None
    if source is not None:
        path = _local_copy(spec, remotes, Path(source), verify_checksum)
    else:
        path = _download(spec, Path(cache) if cache is not None else Path(out).parent / "downloads", remotes,
                         fetch_kwargs)
    state = load_checkpoint_file(path)
    origin = f"{name}: {path.name}, sha256 {file_digest(path, 'sha256')}"  # the full digest, for the record
    try:
        return convert_published(state, spec.layout, out, origin=origin, backbone=backbone)
    except KeyError as err:
        raise KeyError(f"{path} is not the {name} checkpoint: {err.args[0]}") from err


def _download(spec: Published, cache: Path, remotes: tuple[Remote, ...], fetch_kwargs: dict) -> Path:
    failures: list[DownloadError] = []
    for remote in remotes:
        try:
            return remote.fetch(cache, **fetch_kwargs)
        except ChecksumError as err:
            err.add_note(f"{spec.name}: URL and checksum from {spec.where_found}")
            raise
        except DownloadError as err:  # OfflineError included: the next mirror may be elsewhere
            failures.append(err)
    hint = (f"Or point ${spec.env} (or profiles.<profile>.weights.<init>.file in params.yaml) at a copy you "
            f"have. {spec.rebuild}").rstrip()
    offline = all(isinstance(e, OfflineError) for e in failures)
    raise (OfflineError if offline else DownloadError)("\n".join(str(e) for e in failures) + "\n" + hint)


# --- the weights stage: which file each initialisation gets, as params.yaml says ---------------------------------

@dataclass(frozen=True)
class PublishedSpec:
    published: str  # a key of PUBLISHED
    file: str | None = None  # a copy you have (else the environment variable, else download)
    verify_checksum: bool = True  # False accepts a re-saved copy of the same weights (names are still checked)


@dataclass(frozen=True)
class SyntheticCocoSpec:
    num_train: int
    num_val: int = 0
    size: tuple[int, int] = (64, 64)
    seed: int = 0


@dataclass(frozen=True)
class CocoPretrainSpec:
    year: int = 2017  # which COCO release: 2014 or 2017 (the same images; 2017 has train = 2014 trainval35k)
    source: str | None = None  # a folder holding it (else $LATENTSEG_COCO_ROOT, else download the zips)
    min_area: float = 1000  # keep images with this many pixels of VOC objects (DeepLab-v3's rule)
    synthetic: SyntheticCocoSpec | None = None  # the demo: an embedded COCO-format stand-in instead
    init: Literal["imagenet", "none"] = "imagenet"  # what the pretraining starts from
    run: dict[str, Any] = field(default_factory=dict)  # overrides of the run sections (optim.iterations, ...)


def _voc_tree(params: dict[str, Any]) -> dict[str, Any]:
    """The profile's run sections for VOC (those of its first VOC experiment): backbone, crops, schedule."""
    voc_run = next((i for i, e in params["experiments"].items() if e["dataset"] == "voc"), None)
    if voc_run is None:
        raise ValueError("initial weights take their network settings from a VOC experiment; params.yaml lists none")
    return run_tree(params, voc_run)


def coco_pretrain_config(params: dict[str, Any], spec: CocoPretrainSpec, init_file: Path | None) -> RunConfig:
    """The run configuration of COCO pretraining: the profile's VOC settings, then ``spec.run``."""
    unknown = sorted(set(spec.run) - set(SECTIONS))
    if unknown:
        raise KeyError(f"pretrain_coco.run: unknown section(s) {unknown}; allowed: {list(SECTIONS)}")
    if spec.init == "imagenet" and (init_file is None or not init_file.is_file()):
        raise FileNotFoundError("pretrain_coco.init is 'imagenet' but the profile makes no ImageNet weights "
                                "(profiles.<profile>.weights.imagenet); set one, or init: none")
    tree = deep_merge(_voc_tree(params), spec.run)
    return from_dict(RunConfig, {"dataset": "voc", "init": spec.init,
                                 "init_weights": str(init_file) if spec.init == "imagenet" else "", **tree})


def pretrain_coco(params: dict[str, Any], spec: CocoPretrainSpec, out: str | Path, raw_dir: str | Path,
                  work_dir: str | Path, init_file: Path | None = None,
                  log: Callable[[dict[str, float], int], None] | None = None) -> Path:
    """Prepare COCO's VOC classes and pretrain on them (resumable in ``work_dir``); save to ``out``."""
    cfg = coco_pretrain_config(params, spec, init_file)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if spec.synthetic is not None else Path(work_dir)  # the stand-in is rebuilt each time
        source = spec.source
        if spec.synthetic is not None:
            syn = spec.synthetic
            source = generate_coco(SyntheticSpec("voc", syn.num_train, syn.num_val, syn.size, syn.seed),
                                   work / "coco-raw", spec.year)
        prepared = work / f"coco{spec.year}-voc"
        meta = prepare_coco(prepared, Path(raw_dir) / "coco", year=spec.year, source=source,
                            min_area=spec.min_area)
        data = TrainData(prepared, meta, read_list(prepared / "train.txt"), [])
        return pretrain(cfg, data, work / "coco-pretrain.pt", out, log)


def make_weights(params: dict[str, Any], out: str | Path, raw_dir: str | Path, work_dir: str | Path,
                 log: Callable[[dict[str, float], int], None] | None = None) -> dict[str, dict | None]:
    """Make every initialisation of the current profile in ``out`` and write ``out/manifest.json``."""
    profile, section = profile_section(params)
    wanted = section.get("weights") or {}
    unknown = sorted(set(wanted) - set(INITS))
    if unknown:
        raise KeyError(f"profiles.{profile}.weights: unknown initialisation(s) {unknown}; allowed: {list(INITS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict | None] = {}
    for init in INITS:
        how = wanted.get(init)
        where = f"profiles.{profile}.weights.{init}"
        target = out / f"{init}.pt"
        if how is None:
            manifest[init] = None
            continue
        if isinstance(how, dict) and "published" in how:
            spec = from_dict(PublishedSpec, how, where + ".")
            fetch_published(spec.published, target, source=spec.file, cache=Path(raw_dir) / "weights",
                            verify_checksum=spec.verify_checksum, backbone=_voc_tree(params)["model"]["backbone"])
            record = published(spec.published)
            manifest[init] = {"file": target.name, "made_by": f"published {spec.published}",
                              "url": record.remotes[0].urls[0], "env": record.env}
        elif isinstance(how, dict) and set(how) == {"pretrain_coco"}:
            spec = from_dict(CocoPretrainSpec, how["pretrain_coco"] or {}, where + ".pretrain_coco.")
            pretrain_coco(params, spec, target, raw_dir, work_dir, out / "imagenet.pt", log)
            kind = "an embedded COCO-format stand-in" if spec.synthetic else f"MS-COCO {spec.year}"
            manifest[init] = {"file": target.name, "made_by": f"pretrain_coco on {kind}"}
        else:
            raise ValueError(f"{where} must be null, {{published: <name>, ...}} or {{pretrain_coco: {{...}}}}, "
                             f"got {how!r}")
    atomic_write_text(out / MANIFEST, json.dumps({"profile": profile, "weights": manifest}, indent=2) + "\n")
    return manifest


def resolve_init(weights_dir: str | Path, init: str) -> Path | None:
    """The initial-weights file of ``init`` in the weights stage's folder; None when the profile makes none
    (its runs start from random weights, by design). A file that should be there and is not raises."""
    if init == "none":
        return None
    weights_dir = Path(weights_dir)
    path = weights_dir / f"{init}.pt"
    manifest = weights_dir / MANIFEST
    if not manifest.is_file():
        if path.is_file():
            return path
        raise FileNotFoundError(f"{path} not found and {weights_dir} holds no {MANIFEST}: the weights stage has "
                                "not run; run `dvc repro weights` (python stages/weights.py --out weights ...)")
    entry = json.loads(manifest.read_text())["weights"].get(init)
    if entry is None:
        return None
    if not path.is_file():
        origin = f" from {entry['url']} (or ${entry['env']})" if "url" in entry else ""
        raise FileNotFoundError(f"{path} is missing, though the weights stage made it ({entry['made_by']}"
                                f"{origin}); run `dvc repro weights` (or `dvc checkout weights`) again")
    return path
