"""Segment your own images with a trained run: ``latentseg predict``.

    latentseg predict --run runs/voc/voc-1_8-proposed photo.jpg --out predictions
    latentseg predict --run runs/voc/voc-1_8-proposed --seed 2 a.jpg b.png --out predictions --classifier auto
    latentseg predict --checkpoint runs/voc/voc-1_8-proposed/seed-1234/checkpoint.pt photo.jpg --out predictions \\
        --classifier runs/voc/classifier-voc-1_8/seed-1234/classifier.pt

For each image ``<name>.<ext>`` it writes, at the image's size, into ``--out``:

- ``<name>_semantic.png``: the semantic classes, a palette PNG in the data set's colours (pixel value = class);
- ``<name>_latent.png``: the latent classes, a palette PNG (pixel value = latent class; none for a run
  without a latent head);
- ``<name>_overlay.png``: the image blended with the semantic colours.

Images are predicted as the validation set is (``latentseg/predict/predictor.py``): VOC runs pad images to their
evaluation padding (505 pixels a side) and scale a larger photo down to fit it, Cityscapes runs resize to their
evaluation size; the maps come back at the image's own size. ``--classifier``
applies Mittal et al.'s image classifier ("Proposed + Classifier"): ``auto`` finds the classifier trained with the
same seed on the run's own split in ``runs/<dataset>/classifier-*``. Bad input stops with one line naming the file
(exit status 2) before anything is written; an image that fails later is one line, and the others go on (exit
status 2 at the end).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from latentseg.datasets.palettes import latent_palette, overlay
from latentseg.predict.predictor import (
    CLASSIFIER_FORMAT,
    RUN_FIX,
    ImageFilter,
    PredictError,
    Prediction,
    Predictor,
    first_line,
    read_checkpoint,
    read_image,
)
from latentseg.util.files import atomic_write

CLASSIFIER_FIX = "pass --classifier runs/<dataset>/classifier-<id>/seed-<n>/classifier.pt (or auto)"
CHECKPOINT = "checkpoint.pt"
CLASSIFIER_FILE = "classifier.pt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=Path, help="an experiment's run folder, runs/<dataset>/<experiment> (its lowest"
                       " seed; --seed picks another)")
    which.add_argument("--checkpoint", type=Path,
                       help="one run's checkpoint, runs/<dataset>/<experiment>/seed-<n>/checkpoint.pt")
    parser.add_argument("--seed", type=int, default=None, help="with --run: the run of this training seed")
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="JPEG or PNG files")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs (created)")
    parser.add_argument("--classifier", default=None, metavar="PATH|auto",
                        help="filter the classes with Mittal et al.'s image classifier (a classifier.pt, or auto)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="classifier threshold (default: the one the classifier was configured with)")
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:N")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the colours in the overlay")


def run(args: argparse.Namespace) -> int:
    try:
        failed = predict_files(args)
    except PredictError as err:
        print(f"latentseg predict: {err}", file=sys.stderr)
        return 2
    return 2 if failed else 0


def seed_of(folder: Path) -> int | None:
    match = re.fullmatch(r"seed-(-?\d+)", folder.name)
    return int(match.group(1)) if match else None


def find_checkpoint(run: Path, seed: int | None) -> Path:
    """``run/seed-<seed>/checkpoint.pt``; without a seed, that of the lowest seed."""
    if not run.is_dir():
        raise PredictError(f"{run}: no such run folder; {RUN_FIX}")
    seeds = sorted(s for f in run.iterdir() if (s := seed_of(f)) is not None and (f / CHECKPOINT).is_file())
    if not seeds:
        raise PredictError(f"{run}: no seed-<n>/{CHECKPOINT} in it (has its training stage run?); {RUN_FIX}")
    if seed is not None and seed not in seeds:
        raise PredictError(f"{run}: no run of seed {seed}; its seeds: {', '.join(map(str, seeds))}")
    return run / f"seed-{seeds[0] if seed is None else seed}" / CHECKPOINT


def find_classifier(checkpoint: Path, identity: dict) -> Path:
    """The classifier of ``--classifier auto``: the one of the run's seed (``runs/<dataset>/classifier-*/seed-<n>``)
    that was trained on the run's data and labeled split (the two files' ``identity``). Exactly one, or an error."""
    label, runs = checkpoint.parent.name, checkpoint.parent.parent.parent
    candidates = sorted(runs.glob(f"classifier-*/{label}/{CLASSIFIER_FILE}"))
    matches = []
    for path in candidates:
        ident = read_checkpoint(path, CLASSIFIER_FORMAT, CLASSIFIER_FIX).get("identity", {})
        if all(ident.get(key) == identity.get(key) for key in ("data", "labeled")):
            matches.append(path)
    if len(matches) != 1:
        found = "none" if not matches else ", ".join(map(str, matches))
        raise PredictError(f"{checkpoint}: --classifier auto needs exactly one classifier of {label} trained on this "
                           f"run's split under {runs}/classifier-*, found {found}; pass --classifier PATH")
    return matches[0]


def load_image_filter(path: Path, num_classes: int, threshold: float | None) -> ImageFilter:
    from latentseg.classifier import classifier_from_state  # only with --classifier

    state = read_checkpoint(path, CLASSIFIER_FORMAT, CLASSIFIER_FIX)
    classes = state.get("num_classes")
    if classes != num_classes:
        raise PredictError(f"{path}: a classifier of {classes} classes, but the run has {num_classes}; pass the "
                           "classifier of the run's data set")
    config = state.get("identity", {}).get("config", {})
    if threshold is None:
        threshold = config.get("threshold")
        if threshold is None:
            raise PredictError(f"{path}: records no threshold; pass --threshold")
    mode = config.get("filter")
    if mode not in ("zero_logits", "remove"):
        raise PredictError(f"{path}: records no filter (zero_logits or remove); re-run its classifier stage")
    try:
        model = classifier_from_state(state)
    except (KeyError, ValueError, RuntimeError) as err:
        raise PredictError(f"{path}: a classifier this version of latentseg cannot load ({first_line(err)}); "
                           "re-run its classifier stage") from err
    return ImageFilter(model, float(threshold), mode)


def check_images(paths: list[Path]) -> None:
    """Before any work: every image exists, is one, and has an output name of its own (any size will do)."""
    stems: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise PredictError(f"{path}: no such image; pass the path of a JPEG or PNG file")
        try:
            with Image.open(path):  # reads the header only
                pass
        except (OSError, SyntaxError) as err:
            raise PredictError(f"{path}: not an image Pillow can read ({first_line(err)}); pass a JPEG or PNG "
                               "file") from err
        if path.stem in stems:
            raise PredictError(f"{path}: same name as {stems[path.stem]}, so their outputs would collide; "
                               "rename one or predict them into different --out folders")
        stems[path.stem] = path


def make_out(out: Path) -> None:
    """The ``--out`` folder, created; a ``PredictError`` where it cannot be (a file, a place not writable)."""
    if out.exists() and not out.is_dir():
        raise PredictError(f"{out}: --out is a file, not a folder; pass a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PredictError(f"{out}: cannot create the --out folder ({err.strerror}); pass a folder you can "
                           "write to") from err
    if not os.access(out, os.W_OK | os.X_OK):
        raise PredictError(f"{out}: the --out folder is not writable; pass a folder you can write to")


def save_palette_png(path: Path, labels: np.ndarray, palette: list[int]) -> None:
    image = Image.fromarray(labels.astype(np.uint8), "P")
    image.putpalette(palette)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def write_prediction(out: Path, stem: str, image: np.ndarray, pred: Prediction, predictor: Predictor,
                     alpha: float) -> list[Path]:
    written = [out / f"{stem}_semantic.png"]
    save_palette_png(written[0], pred.semantic, predictor.palette)
    if pred.latent is not None:
        assert predictor.num_latent is not None
        written.append(out / f"{stem}_latent.png")
        save_palette_png(written[-1], pred.latent, latent_palette(predictor.num_latent))
    blend = Image.fromarray(overlay(image, pred.semantic, predictor.palette, alpha))
    written.append(out / f"{stem}_overlay.png")
    atomic_write(written[-1], lambda tmp: blend.save(tmp, format="PNG"))
    return written


def predict_files(args: argparse.Namespace) -> int:
    """Predict every image of ``args``; the number of images that failed (each said in one line)."""
    if args.seed is not None and args.run is None:
        raise PredictError("--seed picks a run of --run; with --checkpoint name the seed's file instead")
    checkpoint = args.checkpoint or find_checkpoint(args.run, args.seed)
    predictor = Predictor.from_checkpoint(checkpoint, args.device)
    check_images(args.images)
    make_out(args.out)
    if args.classifier is not None:
        path = Path(args.classifier)
        if args.classifier == "auto":
            path = find_classifier(checkpoint, predictor.identity)
        predictor.use_filter(load_image_filter(path, predictor.num_classes, args.threshold))
        assert predictor.image_filter is not None
        print(f"classifier {path} (threshold {predictor.image_filter.threshold}, {predictor.image_filter.mode})")
    k = "no latent head" if predictor.num_latent is None else f"k = {predictor.num_latent}"
    print(f"run {checkpoint} ({predictor.cfg.dataset}, {predictor.num_classes} classes, {k}) on {predictor.device}")
    if predictor.num_latent is None:
        print(f"{checkpoint}: this run has no latent head (objective {predictor.cfg.objective}): no latent maps")
    failed = 0
    for path in args.images:  # one image that fails (a truncated file, a full disk) does not stop the others
        try:
            image = read_image(path)
            pred = predictor.predict(image, name=str(path))
            written = write_prediction(args.out, path.stem, image, pred, predictor, args.alpha)
        except (PredictError, OSError) as err:
            failed += 1
            print(f"latentseg predict: {err if isinstance(err, PredictError) else f'{path}: {first_line(err)}'}",
                  file=sys.stderr)
            continue
        removed = [predictor.classes[c] for c in pred.removed]
        note = f"; classifier rejected {', '.join(removed)}" if removed else ""
        print(f"{path} ({image.shape[0]}x{image.shape[1]}): {', '.join(str(p) for p in written)}{note}")
    return failed
