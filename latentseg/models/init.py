"""Initial weights as training reads them: the files of stage ``weights`` and their strict loading.

Every run starts from one file of the ``weights/`` folder, in our ``latentseg-init`` format (``{"format",
"model": <state dict in our names>, "classes", "backbone", "origin"}``): ``coco.pt``, the COCO-pretrained
DeepLab-v2 (trunk + 21-way VOC head), and ``imagenet.pt``, an ImageNet ResNet-101 trunk. ``manifest.json`` beside
them says how each was made, or that a profile makes none (the demo's "imagenet": random weights, by design).
How those files are made (published checkpoints, COCO pretraining) is ``latentseg.weights``, which training
never imports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from latentseg.util.files import atomic_torch_save, read_torch

INIT_FORMAT = "latentseg-init"
MANIFEST = "manifest.json"


def resolve_init(weights_dir: str | Path, init: str) -> Path | None:
    """The initial-weights file of ``init`` in the weights stage's folder; None when the profile makes none
    (its runs start from random weights, by design). A file that should be there and is not raises."""
    if init == "none":
        return None
    weights_dir = Path(weights_dir)
    path = weights_dir / f"{init}.pt"
    manifest = weights_dir / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: the weights stage has not run; run `dvc repro weights`")
    entry = json.loads(manifest.read_text())["weights"].get(init)
    if entry is None:
        return None
    if not path.is_file():
        origin = f" from {entry['url']} (or ${entry['env']})" if "url" in entry else ""
        raise FileNotFoundError(f"{path} is missing, though the weights stage made it ({entry['made_by']}"
                                f"{origin}); run `dvc repro weights` (or `dvc checkout weights`) again")
    return path


def load_strict(model: nn.Module, mapped: Mapping[str, Tensor], what: str) -> list[str]:
    """Copy ``mapped`` (our names) into ``model``: every trunk tensor must be there, with its shape.

    The error names each missing, unexpected or mis-shaped tensor. Batch-norm ``num_batches_tracked`` counters
    (absent from 2017-era files) are not required. Returns the model's tensors left as initialised (the heads
    the file does not carry), so callers can log them.
    """
    own = model.state_dict()
    unexpected = sorted(k for k in mapped if k not in own)
    mismatched = sorted(f"{k}: file {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
                        for k in mapped if k in own and mapped[k].shape != own[k].shape)
    required = [k for k in own if k.startswith("backbone.") and not k.endswith("num_batches_tracked")]
    missing = sorted(k for k in required if k not in mapped)
    problems = [f"missing tensor {k}" for k in missing] + [f"unexpected tensor {k}" for k in unexpected]
    problems += [f"wrong shape {m}" for m in mismatched]
    if problems:
        shown = "\n  ".join(problems[:20]) + ("\n  ..." if len(problems) > 20 else "")
        raise KeyError(f"{what} does not match the model:\n  {shown}")
    with torch.no_grad():
        for key, value in mapped.items():
            own[key].copy_(value)
    return sorted(k for k in own if k not in mapped and not k.endswith("num_batches_tracked"))


def load_init(model: nn.Module, path: str | Path, latent_from_semantic: bool = False) -> list[str]:
    """Load an initial-weights file into ``model``; returns the tensors left as initialised.

    The trunk always loads; the semantic head when the file's head has the model's class count (Hung et al.'s
    code likewise skips a head of another size: Cityscapes trains a fresh 19-way head); the latent head never,
    except that ``latent_from_semantic`` starts it as a copy of the semantic head (Table 5's symmetric-KL
    variant, whose two semantic branches are trained alike).
    """
    state = read_torch(path, "an initial-weights file", "run `dvc repro weights`")
    if not isinstance(state, dict) or state.get("format") != INIT_FORMAT:
        raise ValueError(f"{path} is not an initial-weights file of the weights stage; run `dvc repro weights`")
    num_classes = model.semantic_head.conv2d_list[0].out_channels
    mapped = {k: v for k, v in state["model"].items() if not k.startswith("latent_head.")
              and not (k.startswith("semantic_head.") and v.shape[0] != num_classes)}
    if latent_from_semantic and model.latent_head is not None:
        mapped.update({"latent_head." + k.removeprefix("semantic_head."): v
                       for k, v in list(mapped.items()) if k.startswith("semantic_head.")})
    return load_strict(model, mapped, str(path))


def save_init(model_state: Mapping[str, Tensor], path: str | Path, classes: list[str], backbone: str,
              origin: str) -> Path:
    """Write initial weights (the trunk, and a semantic head for ``classes`` if the state has one)."""
    doc = {"format": INIT_FORMAT, "model": dict(model_state), "classes": classes, "backbone": backbone,
           "origin": origin}
    return atomic_torch_save(path, doc)
