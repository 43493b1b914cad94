"""A trained run on images of any size: its semantic and latent-class maps, as evaluation computes them.

    predictor = Predictor.from_checkpoint("runs/voc/voc-1_8-proposed/seed-1234/checkpoint.pt")
    out = predictor.predict(read_image("photo.jpg"))  # out.semantic (H, W), out.latent (H, W) or None

An image goes through the run's evaluation transform (``data.augment.eval_transform``: resized where the data set
is evaluated resized, as Cityscapes is; the Caffe mean subtracted; padded to ``data.eval_pad``, VOC's 505x505),
then one forward pass on the whole of it; the logits are upsampled to the padded size as ``evaluate.evaluate``
does, cropped to the image, and, for a resized image, upsampled to the image's own size. An image larger than
the padding is first scaled down to fit it (docs/decisions.md), so any photo takes one forward pass of at most
the padding's size. The semantic map is
the argmax of the softmax, or, with Mittal et al.'s image classifier, of the logits it filters (``evaluate.
filter_by_classifier``; the classifier reads the image its own way, ``ImageClassifier.preprocess``).
Checkpoints are read with ``weights_only=True``: a file from elsewhere runs no code.

Errors about inputs are ``PredictError``: one line that names the file and what to pass instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor, nn

from latentseg.config import FilterMode, RunConfig
from latentseg.data.augment import eval_transform, resize_pair
from latentseg.datasets import classes_and_palette
from latentseg.evaluate import filter_by_classifier, never_rejected, normalise_rows
from latentseg.models.deeplab import DeepLabV2, upsample
from latentseg.train.checkpoint import RUN_FORMAT, cooccurrence
from latentseg.train.checkpoint import model_from_state as build_trained
from latentseg.util.devices import resolve_device
from latentseg.util.files import UnreadableFile, read_torch

CLASSIFIER_FORMAT = "latentseg-classifier"
# What each of the package's file formats is, for the error that meets one where another is expected.
FORMATS = {RUN_FORMAT: "a trained run's checkpoint", "latentseg-init": "an initial-weights file (stage weights)",
           CLASSIFIER_FORMAT: "an image classifier (stage classifier)"}
RUN_FIX = "pass --run runs/<dataset>/<experiment> or --checkpoint runs/<dataset>/<experiment>/seed-<n>/checkpoint.pt"


class PredictError(ValueError):
    """Bad input to a prediction: a one-line message naming the file and the fix."""


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_checkpoint(path: str | Path, expected: str, fix: str) -> dict[str, Any]:
    """The dictionary saved at ``path`` if its ``format`` is ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: no such file; {fix}")
    try:
        state = read_torch(path, "a checkpoint", fix)
    except UnreadableFile as err:  # not a torch file, truncated, or holding objects other than tensors and plain data
        raise PredictError(str(err)) from err
    found = state.get("format") if isinstance(state, dict) else None
    if found != expected:
        known = FORMATS.get(found) if isinstance(found, str) else None
        wanted = FORMATS[expected]
        what = f"is {known}, not {wanted}" if known else f"is not {wanted} (no format {expected!r} in it)"
        raise PredictError(f"{path} {what}; {fix}")
    return state


GREY_16 = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's modes of a 16-bit grey PNG ("I": older Pillows)


def rgb(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 of any Pillow image: 16-bit grey scaled to 8 bits (Pillow's ``convert`` clips it at 255,
    which turns almost every pixel white), a palette through its colours, the rest as Pillow converts them."""
    if image.mode in GREY_16:
        grey = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        grey = ((grey * 255 + 32767) // 65535).astype(np.uint8)  # 65535 -> 255, rounded
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB")).copy()


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB (``rgb``), turned upright as its EXIF orientation says (as image viewers show a
    photo)."""
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: no such image; pass the path of a JPEG or PNG file")
    try:
        with Image.open(path) as im:
            return rgb(ImageOps.exif_transpose(im))
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise PredictError(f"{path}: not an image Pillow can read ({first_line(err)}); pass a JPEG or PNG "
                           "file") from err


@dataclass(frozen=True)
class ImageFilter:
    """Mittal et al.'s image classifier, its threshold and how a class it rejects is filtered (``mode``)."""

    model: nn.Module  # an ImageClassifier: ``preprocess`` (3, H, W) uint8 -> its input; (N, 3, s, s) -> (N, C) logits
    threshold: float
    mode: FilterMode


@dataclass(frozen=True)
class Prediction:
    semantic: np.ndarray  # (H, W) int64 class index
    latent: np.ndarray | None  # (H, W) int64 latent class index; None for a run without a latent head
    probabilities: np.ndarray | None  # (C, H, W) float32 softmax before the filter, when asked for
    class_presence: np.ndarray | None  # (C,) the classifier's probability of each class, with a filter
    removed: tuple[int, ...]  # classes the filter rejected (zero_logits: logits set to 0; remove: out of the argmax)


def model_from_state(state: dict[str, Any], path: Path) -> tuple[DeepLabV2, RunConfig]:
    """The segmentation network and configuration of a run checkpoint (``train/trainer.py: _save``)."""
    try:
        model, cfg = build_trained(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise PredictError(f"{path}: a run checkpoint this version of latentseg cannot load ({first_line(err)}); "
                           "re-run its training stage") from err
    return model, cfg


class Predictor:
    """One trained run, loaded once, predicting any number of images."""

    def __init__(self, model: DeepLabV2, cfg: RunConfig, p_latent_given_class: Tensor | None,
                 device: torch.device, identity: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.identity = identity or {}  # what the run was trained from: its classifier is found by it
        self.device = device
        self.model = model.to(device).eval()
        self.num_classes = model.semantic_head.conv2d_list[0].out_channels
        self.num_latent = None if model.latent_head is None else model.latent_head.conv2d_list[0].out_channels
        self.classes, self.palette = classes_and_palette(cfg.dataset, self.num_classes)
        self.p_latent_given_class = p_latent_given_class  # (C, k) eq. 8 from training's M, or None
        self.transform = eval_transform(cfg.data)
        self.autocast = device.type == "cuda"  # bf16, as the training stage evaluates on a GPU
        self.image_filter: ImageFilter | None = None
        self.keep: tuple[int, ...] = ()  # classes the filter never rejects (background, in "remove" mode)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "auto") -> Predictor:
        path = Path(path)
        state = read_checkpoint(path, RUN_FORMAT, RUN_FIX)
        model, cfg = model_from_state(state, path)
        matrix = cooccurrence(state)  # eq. (7)'s M, (C, k)
        p = None if matrix is None else normalise_rows(matrix.float())
        if not isinstance(device, torch.device):
            try:
                device = resolve_device(device, "--device")
            except ValueError as err:
                raise PredictError(str(err)) from err
        return cls(model, cfg, p, device, state.get("identity"))

    def use_filter(self, image_filter: ImageFilter | None) -> None:
        """Filter the semantic maps with an image classifier of the run's classes from now on (None: stop)."""
        if image_filter is not None:
            image_filter.model.to(self.device).eval()
            self.keep = never_rejected(self.classes, image_filter.mode)
        self.image_filter = image_filter

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Where the image lies in the network's input: the data set's evaluation size where it is evaluated
        resized (Cityscapes), else the image's own, scaled down to fit the evaluation padding when it is larger
        (docs/decisions.md: a photo larger than VOC's 505 pixels is resized, not cut into windows)."""
        if self.cfg.data.resize:
            return self.cfg.data.resize
        pad = self.cfg.data.eval_pad
        if pad and max(height, width) > pad:
            scale = pad / max(height, width)
            return max(1, min(pad, round(height * scale))), max(1, min(pad, round(width * scale)))
        return height, width

    @torch.inference_mode()
    def predict(self, image: np.ndarray, probabilities: bool = False, name: str = "image") -> Prediction:
        """``image`` (H, W, 3) uint8 RGB -> the maps at (H, W), from one forward pass of at most the padding's
        size: the network's memory is bounded whatever the image's size."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PredictError(f"{name}: expected an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        pixels = torch.tensor(image).permute(2, 0, 1)  # a copy: the array may be read-only
        content = self.input_size(h, w)
        seen = pixels
        if not self.cfg.data.resize and content != (h, w):  # the evaluation transform pads, it does not resize
            seen, _ = resize_pair(pixels, torch.zeros((h, w), dtype=torch.uint8), content, antialias=True)
        x, _ = self.transform(seen, torch.zeros(seen.shape[-2:], dtype=torch.uint8))
        x = x[None].to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.model(x, with_latent=self.model.latent_head is not None)
        logits = self._restore(out.semantic, tuple(x.shape[-2:]), content)  # (1, C, h, w) as evaluation has them
        presence, removed = None, ()
        if self.image_filter is not None:
            presence = torch.sigmoid(self.image_filter.model(
                self.image_filter.model.preprocess(pixels)[None].to(self.device)).float())  # (1, C)
            below = (presence[0] < self.image_filter.threshold).cpu().tolist()
            removed = tuple(c for c, out_of_it in enumerate(below) if out_of_it and c not in self.keep)
        prob = None
        if content == (h, w) or probabilities:  # the maps evaluation computes, at the image's size
            full = upsample(logits, (h, w))
            prob = full.softmax(1)
            scores = prob if presence is None else filter_by_classifier(
                full, presence, self.image_filter.threshold, self.image_filter.mode, self.keep)
            semantic = scores.argmax(1)[0]
        else:  # upsampled to a large image a class at a time: (H, W) maps in memory, not (C, H, W)
            zero_logits = self.image_filter is not None and self.image_filter.mode == "zero_logits"
            semantic = upsampled_argmax(logits, (h, w), zeroed=removed if zero_logits else (),
                                        skipped=() if zero_logits else removed)
        latent = None
        if out.latent is not None:
            latent = upsampled_argmax(self._restore(out.latent, tuple(x.shape[-2:]), content), (h, w)).cpu().numpy()
        return Prediction(semantic.cpu().numpy(), latent, prob[0].cpu().numpy() if probabilities else None,
                          None if presence is None else presence[0].cpu().numpy(), removed)

    @staticmethod
    def _restore(logits: Tensor, padded: tuple[int, int], content: tuple[int, int]) -> Tensor:
        """(1, n, h/8, w/8) logits -> (1, n, h, w) float: to the padded input as evaluation does, cropped to where
        the image lies in it."""
        return upsample(logits, padded).float()[..., : content[0], : content[1]]


def upsampled_argmax(logits: Tensor, size: tuple[int, int], zeroed: tuple[int, ...] = (),
                     skipped: tuple[int, ...] = ()) -> Tensor:
    """``upsample(logits, size).argmax(1)[0]`` of (1, n, h, w) ``logits`` (the first class on a tie), one channel
    at a time: a few (H, W) maps in memory instead of n of them (a 12-megapixel photo's 21 VOC classes would
    take 1 GB). The classifier's filter: ``zeroed`` channels count as 0 (``zero_logits``), ``skipped`` ones not
    at all (``remove``)."""
    best = torch.full(size, float("-inf"), device=logits.device)
    index = torch.zeros(size, dtype=torch.int64, device=logits.device)
    for c in range(logits.shape[1]):
        if c in skipped:
            continue
        up = upsample(logits[:, c : c + 1], size)[0, 0]
        if c in zeroed:
            up = up * 0.0  # not in place: at the logits' own size, upsample returns them
        better = up > best
        index.masked_fill_(better, c)
        torch.maximum(best, up, out=best)
    return index
