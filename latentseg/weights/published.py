"""The published checkpoints the paper and its baselines start from: where they are, how to fetch and verify them,
and their conversion into our initial-weights format (``models/init.py``).

``fetch_published`` downloads a released checkpoint (or takes the copy you name: an argument, else the environment
variable of ``PUBLISHED[name].env``), verifies its checksum, maps it strictly onto our network
(``weights/layouts.py``) and saves it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from latentseg.datasets.voc import VOC_CLASSES
from latentseg.models.deeplab import DeepLabV2
from latentseg.models.init import save_init
from latentseg.prepare.download import ChecksumError, DownloadError, OfflineError, Remote, verify
from latentseg.util.files import file_digest, read_torch
from latentseg.weights.layouts import load_published


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


def published_spec(name: str) -> Published:
    if name not in PUBLISHED:
        raise ValueError(f"no published weights named {name!r}; choose one of {sorted(PUBLISHED)}")
    return PUBLISHED[name]


def load_checkpoint_file(path: str | Path) -> dict[str, Tensor]:
    """The state dict in a released ``.pth`` (read with ``weights_only``: a downloaded file runs no code)."""
    path = Path(path)
    state = read_torch(path, "a PyTorch checkpoint", "it is damaged or not the published file: delete it and "
                       "fetch it again")
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of tensor names to tensors)")
    return dict(state)


BACKBONE = "resnet101"  # the trunk every released file holds (tests convert tiny stand-ins)


def convert_published(state: Mapping[str, Tensor], layout: str, out: str | Path, *, origin: str,
                      backbone: str | None = None) -> Path:
    """Map ``state`` (a published ``layout``) strictly onto our network and save it as initial weights.

    Only what the checkpoint holds is saved: the trunk, and the semantic head when it is a 21-way VOC head
    (Hung et al.'s ``layer5``). A missing, misnamed or mis-shaped tensor raises ``KeyError`` naming it.
    """
    backbone = backbone or BACKBONE
    model = DeepLabV2(len(VOC_CLASSES), None, backbone=backbone, aspp_branches=4, freeze_bn_stats=True)
    fresh = set(load_published(model, state, layout))
    kept = {k: v for k, v in model.state_dict().items() if k not in fresh}
    has_head = any(k.startswith("semantic_head.") for k in kept)
    return save_init(kept, out, list(VOC_CLASSES) if has_head else [], backbone, origin)


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
                    verify_checksum: bool = True, backbone: str | None = None, **fetch_kwargs: Any) -> Path:
    """Fetch the released checkpoint ``name`` (see ``PUBLISHED``) and write it to ``out`` as initial weights.

    The file is ``source`` if given, else ``$<PUBLISHED[name].env>``, else downloaded (resuming, retrying,
    checksum-verified by ``download.fetch``) into ``cache`` (default: a ``downloads`` folder beside ``out``),
    trying ``remotes`` (default: the published URLs) in order. Offline, ``OfflineError`` names the URL and
    where to place the file by hand. ``fetch_kwargs`` go to ``download.fetch`` (retries, backoff, progress).
    """
    spec = published_spec(name)
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
