"""``latentseg predict`` end to end on tiny saved runs: sizes, palettes, agreement with the network's own forward
pass, the classifier's filter, and a one-line error (exit status 2) for each kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentseg import cli
from latentseg.classifier import ImageClassifier, save_classifier
from latentseg.data.augment import eval_transform, resize_pair
from latentseg.datasets.cityscapes import CITYSCAPES_PALETTE
from latentseg.datasets.voc import VOC_PALETTE
from latentseg.evaluate import filter_by_classifier
from latentseg.models.deeplab import upsample
from latentseg.predict.predictor import Predictor, read_image, upsampled_argmax
from tests.tiny_run import VOC_PAD, cityscapes_config, save_tiny_run, voc_config

# (H, W): larger than the 32x32 training crop and not a multiple of 8; smaller than the crop; the padding itself
SIZES = {"wide": (40, 52), "small": (27, 35), "square": (VOC_PAD, VOC_PAD)}


def write_images(folder: Path, sizes: dict[str, tuple[int, int]], seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (h, w) in sizes.items():
        path = folder / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def voc_run(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    root = tmp_path_factory.mktemp("runs")
    checkpoint = root / "voc-1_8-proposed" / "seed-1" / "checkpoint.pt"
    model = save_tiny_run(checkpoint, voc_config(), 21, identity={"data": "d", "labeled": "l"})
    return checkpoint, model


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    return write_images(tmp_path_factory.mktemp("images"), SIZES)


def reference_maps(model: torch.nn.Module, cfg, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The network's own forward pass on the evaluation input, upsampled and argmaxed as evaluation does."""
    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)
    h, w = pixels.shape[-2:]
    x, _ = eval_transform(cfg.data)(pixels, torch.zeros((h, w), dtype=torch.uint8))
    with torch.no_grad():
        out = model(x[None], with_latent=True)
    size = tuple(x.shape[-2:])
    semantic = upsample(out.semantic, size).softmax(1).argmax(1)[0, :h, :w]
    latent = upsample(out.latent, size).argmax(1)[0, :h, :w]
    return semantic.numpy(), latent.numpy()


def run_cli(*args: object) -> int:
    return cli.main(["predict", *map(str, args)])


def test_voc_run_writes_maps_at_image_size_equal_to_the_forward_pass(voc_run, images, tmp_path, capsys):
    checkpoint, model = voc_run
    assert run_cli("--run", checkpoint.parent.parent, *images, "--out", tmp_path, "--device", "cpu") == 0
    for path in images:
        h, w = SIZES[path.stem]
        semantic = Image.open(tmp_path / f"{path.stem}_semantic.png")
        latent = Image.open(tmp_path / f"{path.stem}_latent.png")
        overlay = Image.open(tmp_path / f"{path.stem}_overlay.png")
        assert semantic.size == latent.size == overlay.size == (w, h)
        assert semantic.mode == latent.mode == "P" and overlay.mode == "RGB"
        assert semantic.getpalette() == VOC_PALETTE
        ref_semantic, ref_latent = reference_maps(model, voc_config(), path)
        np.testing.assert_array_equal(np.asarray(semantic), ref_semantic)
        np.testing.assert_array_equal(np.asarray(latent), ref_latent)
    assert len(np.unique(np.asarray(Image.open(tmp_path / "wide_semantic.png")))) > 1  # not a constant map


def test_cityscapes_run_resizes_and_returns_to_the_image_size(tmp_path):
    checkpoint = tmp_path / "run" / "seed-0" / "checkpoint.pt"
    save_tiny_run(checkpoint, cityscapes_config(), 19)
    paths = write_images(tmp_path / "img", {"street": (30, 70), "large": (100, 130)})  # no padding limits it
    assert run_cli("--checkpoint", checkpoint, *paths, "--out", tmp_path / "out") == 0
    for path, (h, w) in zip(paths, [(30, 70), (100, 130)], strict=True):
        semantic = Image.open(tmp_path / "out" / f"{path.stem}_semantic.png")
        assert semantic.size == (w, h) and semantic.getpalette() == CITYSCAPES_PALETTE
        assert np.asarray(semantic).max() < 19


def test_library_returns_arrays_and_probabilities(voc_run, images):
    predictor = Predictor.from_checkpoint(voc_run[0], "cpu")
    image = np.asarray(Image.open(images[0]).convert("RGB"))
    pred = predictor.predict(image, probabilities=True)
    assert pred.semantic.shape == pred.latent.shape == image.shape[:2]
    assert pred.probabilities.shape == (21, *image.shape[:2])
    np.testing.assert_array_equal(pred.probabilities.argmax(0), pred.semantic)
    assert predictor.p_latent_given_class.shape == (21, 5)
    assert torch.allclose(predictor.p_latent_given_class.sum(1), torch.ones(21))


def test_run_without_latent_head_writes_no_latent_map_and_says_so(tmp_path, images, capsys):
    checkpoint = tmp_path / "hung" / "seed-3" / "checkpoint.pt"
    save_tiny_run(checkpoint, voc_config(objective="hung"), 21)
    assert run_cli("--run", checkpoint.parent.parent, "--seed", 3, images[0], "--out", tmp_path / "out") == 0
    assert "no latent head" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["wide_overlay.png", "wide_semantic.png"]


def save_rejecting_classifier(path: Path, rejected: int, num_classes: int = 21, labeled: str = "l",
                              mode: str = "remove") -> None:
    """A classifier sure of every class but ``rejected``."""
    model = ImageClassifier(num_classes, "tiny", 48)
    with torch.no_grad():
        model.net.fc.weight.zero_()
        model.net.fc.bias.fill_(10.0)
        model.net.fc.bias[rejected] = -10.0
    save_classifier(model, path, {"config": {"backbone": "tiny", "threshold": 0.2, "filter": mode}, "data": "d",
                                  "labeled": labeled})


def most_frequent_class(checkpoint: Path, image: Path, out: Path) -> tuple[np.ndarray, int]:
    """The unfiltered map of ``image`` and its most frequent class but background."""
    assert run_cli("--checkpoint", checkpoint, image, "--out", out) == 0
    plain = np.asarray(Image.open(out / f"{image.stem}_semantic.png"))
    classes, counts = np.unique(plain[plain != 0], return_counts=True)
    return plain, int(classes[counts.argmax()])


def test_a_class_the_classifier_removes_disappears(voc_run, images, tmp_path, capsys):
    checkpoint, _ = voc_run
    plain, rejected = most_frequent_class(checkpoint, images[0], tmp_path / "plain")
    save_rejecting_classifier(tmp_path / "c.pt", rejected)
    assert run_cli("--checkpoint", checkpoint, images[0], "--out", tmp_path / "kept", "--classifier",
                   tmp_path / "c.pt") == 0
    kept = np.asarray(Image.open(tmp_path / "kept" / "wide_semantic.png"))
    assert rejected not in kept
    np.testing.assert_array_equal(kept[plain != rejected], plain[plain != rejected])  # others keep their argmax
    assert "classifier rejected" in capsys.readouterr().out


def test_zero_logits_filter_zeroes_the_rejected_class_logits(voc_run, images, tmp_path):
    """Mittal et al.'s filter: the rejected class's logits become 0, and the argmax is taken on them."""
    checkpoint, model = voc_run
    _, rejected = most_frequent_class(checkpoint, images[0], tmp_path / "plain")
    save_rejecting_classifier(tmp_path / "c.pt", rejected, mode="zero_logits")
    assert run_cli("--checkpoint", checkpoint, images[0], "--out", tmp_path / "kept", "--classifier",
                   tmp_path / "c.pt") == 0
    kept = np.asarray(Image.open(tmp_path / "kept" / "wide_semantic.png"))
    pixels = torch.from_numpy(np.asarray(Image.open(images[0]).convert("RGB")).copy()).permute(2, 0, 1)
    h, w = pixels.shape[-2:]
    x, _ = eval_transform(voc_config().data)(pixels, torch.zeros((h, w), dtype=torch.uint8))
    with torch.no_grad():
        logits = upsample(model(x[None]).semantic, tuple(x.shape[-2:]))[0, :, :h, :w]
    logits[rejected] = 0.0
    np.testing.assert_array_equal(kept, logits.argmax(0).numpy())


def test_classifier_auto_finds_the_one_trained_on_the_runs_split(voc_run, images, tmp_path, capsys):
    runs = voc_run[0].parents[2]
    save_rejecting_classifier(runs / "classifier-voc-1_8" / "seed-1" / "classifier.pt", 3)
    save_rejecting_classifier(runs / "classifier-voc-1_20" / "seed-1" / "classifier.pt", 3, labeled="other")
    assert run_cli("--run", voc_run[0].parent.parent, images[0], "--out", tmp_path, "--classifier", "auto") == 0
    assert f"classifier {runs / 'classifier-voc-1_8' / 'seed-1' / 'classifier.pt'}" in capsys.readouterr().out
    save_rejecting_classifier(runs / "classifier-voc-copy" / "seed-1" / "classifier.pt", 3)  # now two match
    assert run_cli("--run", voc_run[0].parent.parent, images[0], "--out", tmp_path, "--classifier", "auto") == 2
    assert "exactly one classifier" in capsys.readouterr().err
    for folder in ("classifier-voc-1_8", "classifier-voc-1_20", "classifier-voc-copy"):
        (runs / folder / "seed-1" / "classifier.pt").unlink()


def assert_one_line_error(capsys, rc: int, named: Path | str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 2, captured
    assert len(lines) == 1 and str(named) in lines[0] and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_missing_and_unreadable_images(voc_run, images, tmp_path, capsys):
    missing = tmp_path / "nope.jpg"
    assert_one_line_error(capsys, run_cli("--checkpoint", voc_run[0], images[0], missing, "--out", tmp_path / "o"),
                          missing)
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked
    text = tmp_path / "notes.jpg"
    text.write_text("not an image\n")
    assert_one_line_error(capsys, run_cli("--checkpoint", voc_run[0], text, "--out", tmp_path / "o"), text)


def test_a_photo_larger_than_the_padding_is_scaled_to_fit_it_in_one_bounded_forward(voc_run, tmp_path, capsys):
    """Issue 26: a VOC run refused any image over its 505-pixel padding, and one such image stopped the batch.
    Now the image is scaled down to fit the padding (docs/decisions.md): one forward pass of the padding's size,
    its logits brought back to the image's size."""
    sizes = {"strip": (30, 200), "small": (27, 35), "tall": (150, 90)}  # (H, W); the padding is VOC_PAD = 64
    paths = write_images(tmp_path / "img", sizes)
    assert run_cli("--checkpoint", voc_run[0], *paths[:2], "--out", tmp_path / "o") == 0
    for path in paths[:2]:
        assert Image.open(tmp_path / "o" / f"{path.stem}_semantic.png").size == sizes[path.stem][::-1]
    predictor = Predictor.from_checkpoint(voc_run[0], "cpu")
    assert predictor.input_size(*sizes["strip"]) == (10, VOC_PAD) and predictor.input_size(27, 35) == (27, 35)
    fit, (h, w) = (VOC_PAD, 38), sizes["tall"]
    assert predictor.input_size(h, w) == fit
    seen: list[tuple[torch.Tensor, object]] = []
    predictor.model.register_forward_hook(lambda module, args, out: seen.append((args[0], out)))
    pred = predictor.predict(np.asarray(Image.open(paths[2]).convert("RGB")))
    [(x, out)] = seen  # one forward pass, of the padding's size whatever the image's
    pixels = torch.from_numpy(np.asarray(Image.open(paths[2]).convert("RGB")).copy()).permute(2, 0, 1)
    small, _ = resize_pair(pixels, torch.zeros((h, w), dtype=torch.uint8), fit, antialias=True)
    torch.testing.assert_close(x[0], eval_transform(voc_config().data)(small, torch.zeros(fit, dtype=torch.uint8))[0])
    for found, logits in ((pred.semantic, out.semantic), (pred.latent, out.latent)):
        expected = upsample(upsample(logits, (VOC_PAD, VOC_PAD))[..., : fit[0], : fit[1]], (h, w)).argmax(1)[0]
        np.testing.assert_array_equal(found, expected.numpy())


@pytest.mark.parametrize("mode", [None, "zero_logits", "remove"])
def test_the_argmax_a_class_at_a_time_is_the_argmax_of_the_whole(mode):
    logits = torch.randn(1, 6, 5, 7, generator=torch.Generator().manual_seed(0))
    logits[0, 4] = -3.0  # a class below 0 everywhere: zero_logits makes it win where every other class is < 0
    rejected = (1, 4)
    full = upsample(logits, (40, 56))
    if mode is not None:
        presence = torch.ones(1, 6)
        presence[0, list(rejected)] = 0.0
        full = filter_by_classifier(full, presence, 0.5, mode)
    found = upsampled_argmax(logits, (40, 56), zeroed=rejected if mode == "zero_logits" else (),
                             skipped=rejected if mode == "remove" else ())
    assert torch.equal(found, full.argmax(1)[0])


def test_16_bit_grey_and_palette_pngs_are_converted(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    grey = read_image(tmp_path / "grey16.png")
    assert grey.shape == (64, 64, 3) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[..., 0], np.round(ramp / 257.0).astype(np.uint8))  # scaled, not clipped
    assert (grey == 255).mean() < 0.01  # Pillow's own conversion: 99.6% white
    palette = Image.fromarray((np.arange(64 * 64) % 3).astype(np.uint8).reshape(64, 64), "P")
    palette.putpalette([200, 10, 10, 10, 200, 10, 10, 10, 200])
    palette.save(tmp_path / "palette.png")
    colours = read_image(tmp_path / "palette.png")
    assert colours[0, :3].tolist() == [[200, 10, 10], [10, 200, 10], [10, 10, 200]]


def test_an_out_that_is_a_file_or_below_one_is_one_line(voc_run, images, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a file\n")
    line = assert_one_line_error(capsys, run_cli("--checkpoint", voc_run[0], images[0], "--out", taken), taken)
    assert "not a folder" in line
    below = taken / "predictions"
    assert "cannot create" in assert_one_line_error(
        capsys, run_cli("--checkpoint", voc_run[0], images[0], "--out", below), below)


def test_an_image_that_fails_does_not_stop_the_others(voc_run, images, tmp_path, capsys):
    whole = (tmp_path / "whole.png")
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8) + 90).save(whole)
    broken = tmp_path / "broken.png"
    broken.write_bytes(whole.read_bytes()[:60])  # its header reads, its pixels do not
    code = run_cli("--checkpoint", voc_run[0], broken, images[0], "--out", tmp_path / "o")
    assert code == 2 and (tmp_path / "o" / f"{images[0].stem}_semantic.png").is_file()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(broken) in err and "Traceback" not in err


def other_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"init": folder / "coco.pt", "classifier": folder / "classifier.pt", "random": folder / "random.pt",
             "dict": folder / "plain.pt"}
    torch.save({"format": "latentseg-init", "model": {}, "classes": [], "backbone": "tiny", "origin": "test"},
               files["init"])
    save_rejecting_classifier(files["classifier"], 1)
    files["random"].write_bytes(np.random.default_rng(0).bytes(300))
    torch.save({"weights": torch.zeros(2)}, files["dict"])
    return files


@pytest.mark.parametrize("kind", ["init", "classifier", "random", "dict"])
def test_checkpoint_of_another_format(kind, images, tmp_path, capsys):
    path = other_files(tmp_path)[kind]
    line = assert_one_line_error(capsys, run_cli("--checkpoint", path, images[0], "--out", tmp_path / "o"), path)
    assert "checkpoint.pt" in line  # says what to pass instead


def test_classifier_of_another_class_count(voc_run, images, tmp_path, capsys):
    save_rejecting_classifier(tmp_path / "city.pt", 1, num_classes=19)
    rc = run_cli("--checkpoint", voc_run[0], images[0], "--out", tmp_path / "o", "--classifier", tmp_path / "city.pt")
    assert "19 classes" in assert_one_line_error(capsys, rc, tmp_path / "city.pt")


def test_run_folder_without_the_seed_or_any_checkpoint(voc_run, images, tmp_path, capsys):
    run = voc_run[0].parent.parent
    assert_one_line_error(capsys, run_cli("--run", run, "--seed", 7, images[0], "--out", tmp_path), run)
    assert_one_line_error(capsys, run_cli("--run", tmp_path, images[0], "--out", tmp_path), tmp_path)
