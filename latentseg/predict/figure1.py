"""Figure 1's arrays: a run's semantic and latent-class maps on the first validation images, saved for drawing.

The paper's Figure 1 shows images beside their ground truth, the semantic prediction and the latent classes. The
predictions need torch; drawing them must not (the report stages import no torch), so stage ``figure1`` writes
the arrays to ``results/figure1/<dataset>.npz`` and stage ``figures`` draws them (``reports/figure1.py``).

The npz holds no pickled objects (strings are numpy unicode arrays); ``i`` runs over ``range(N)``:

    dataset, experiment, run, checkpoint   0-d strings: voc | cityscapes, the experiment id, seed-<n>, the file
    classes                                (C,) class names
    p_latent_given_class                   (C, k) float32: eq. (8), training's M normalised by rows
    ids                                    (N,) image ids: the file stems of val.txt (Cityscapes: without _leftImg8bit)
    image_<i>                              (H, W, 3) uint8 RGB
    ground_truth_<i>, semantic_<i>         (H, W) uint8 class indices (ground truth: 255 = ignore)
    latent_<i>                             (H, W) uint8 latent class indices
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latentseg.data.dataset import load_image, load_mask
from latentseg.data.layout import read_list, read_meta
from latentseg.predict.predictor import Predictor
from latentseg.util.files import atomic_write


def figure1_arrays(checkpoint: str | Path, data_root: str | Path, num_images: int,
                   device: str | torch.device = "auto") -> dict[str, np.ndarray]:
    """The run of ``checkpoint`` on the first ``num_images`` images of ``data_root``'s ``val.txt``."""
    predictor = Predictor.from_checkpoint(checkpoint, device)
    if predictor.num_latent is None or predictor.p_latent_given_class is None:
        raise ValueError(f"{checkpoint}: the run has no latent head or no co-occurrence matrix; Figure 1 needs a "
                         "run of the latent objective (params.yaml: figure1.runs)")
    if predictor.num_latent > 256:
        raise ValueError(f"{checkpoint}: k = {predictor.num_latent} latent classes do not fit the uint8 maps")
    root = Path(data_root)
    meta = read_meta(root)
    if meta.num_classes != predictor.num_classes:
        raise ValueError(f"{root} has {meta.num_classes} classes but the run {checkpoint} {predictor.num_classes}; "
                         "pass the data set the run was trained on")
    samples = read_list(root / "val.txt")[:num_images]
    if len(samples) < num_images:
        raise ValueError(f"{root / 'val.txt'} lists {len(samples)} images, fewer than figure1.images = {num_images}")
    arrays: dict[str, np.ndarray] = {
        "dataset": np.array(predictor.cfg.dataset), "run": np.array(Path(checkpoint).parent.name),
        "experiment": np.array(Path(checkpoint).parent.parent.name), "checkpoint": np.array(str(checkpoint)),
        "classes": np.array(meta.classes), "ids": np.array([s.id.removesuffix("_leftImg8bit") for s in samples]),
        "p_latent_given_class": predictor.p_latent_given_class.numpy().astype(np.float32),
    }
    for i, sample in enumerate(samples):
        image = load_image(root / sample.image).permute(1, 2, 0).numpy()  # as evaluation reads it
        pred = predictor.predict(image, name=str(root / sample.image))
        assert pred.latent is not None
        arrays[f"image_{i}"] = image
        arrays[f"ground_truth_{i}"] = load_mask(root / sample.mask).numpy().astype(np.uint8)
        arrays[f"semantic_{i}"] = pred.semantic.astype(np.uint8)
        arrays[f"latent_{i}"] = pred.latent.astype(np.uint8)
    return arrays


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Compressed, atomically (``np.savez`` is given the open file: it would add ``.npz`` to a temporary name)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    return atomic_write(path, write)
