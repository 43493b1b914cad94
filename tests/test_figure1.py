"""Figure 1: the legend read from P(l|c), the drawing from a small npz, and the arrays of a tiny saved run on a
tiny generated data set (the library function of stage ``figure1``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latentseg.data.dataset import load_mask
from latentseg.data.layout import read_list
from latentseg.predict.figure1 import figure1_arrays, write_npz
from latentseg.prepare.synthetic import SyntheticSpec, generate
from latentseg.reports.figure1 import MAX_NAMES, draw_figure1, latent_legend, read_arrays
from tests.tiny_run import save_tiny_run, voc_config

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"

# rows: classes a, b, c, d (d never seen in training); columns: latent classes 0, 1, 2
P = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.6, 0.1, 0.3], [0.0, 0.0, 0.0]])


def test_legend_lists_each_class_under_its_most_probable_latent_class():
    assert latent_legend(P, ["a", "b", "c", "d"]) == [(0, "l0: a, c"), (1, "l1: b")]  # by P(l|c); l2 omitted


def test_legend_keeps_a_latent_class_the_maps_show_though_no_class_prefers_it():
    assert latent_legend(P, ["a", "b", "c", "d"], shown=[0, 2])[-1] == (2, "l2: (no class's most probable)")


def test_legend_counts_the_classes_past_the_first_few():
    p = np.tile([[1.0, 0.0]], (MAX_NAMES + 2, 1))
    [(l, label)] = latent_legend(p, [f"c{i}" for i in range(MAX_NAMES + 2)])
    assert l == 0 and label.endswith(", +2 more") and label.count(",") == MAX_NAMES


def test_legend_lists_classes_under_their_planted_groups():
    groups = {"pets": ["a", "c"], "other": ["b"], "unseen": ["d"]}
    p = P.copy()
    p[1] = [0.8, 0.2, 0.0]  # b joins a and c
    assert latent_legend(p, ["a", "b", "c", "d"], groups=groups) == [(0, "l0: pets (all 2); other")]
    assert latent_legend(P, ["a", "b", "c", "d"], groups={"ab": ["a", "b"], "cd": ["c", "d"]}) == [
        (0, "l0: ab (1 of 2): a; cd"), (1, "l1: ab (1 of 2): b")]  # d, never seen, does not count in cd


def small_arrays(dataset: str = "voc", classes: int = 21, k: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {"dataset": np.array(dataset), "experiment": np.array("voc-1_8-proposed"), "run": np.array("seed-1"),
              "checkpoint": np.array("runs/x/seed-1/checkpoint.pt"), "ids": np.array(["a", "b"]),
              "classes": np.array([f"c{i}" for i in range(classes)]),
              "p_latent_given_class": rng.dirichlet(np.ones(k), classes).astype(np.float32)}
    for i, (h, w) in enumerate([(20, 30), (24, 18)]):
        arrays[f"image_{i}"] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        gt = rng.integers(0, classes, (h, w)).astype(np.uint8)
        gt[0] = 255
        arrays[f"ground_truth_{i}"] = gt
        arrays[f"semantic_{i}"] = rng.integers(0, classes, (h, w)).astype(np.uint8)
        arrays[f"latent_{i}"] = rng.integers(0, k, (h, w)).astype(np.uint8)
    return arrays


@pytest.mark.parametrize(("dataset", "classes"), [("voc", 21), ("cityscapes", 19)])
def test_draw_figure1_from_a_small_npz(tmp_path, dataset, classes):
    np.savez(tmp_path / "figure1.npz", **small_arrays(dataset, classes))
    out = tmp_path / "fig" / f"fig1_{dataset}.png"
    assert draw_figure1(read_arrays(tmp_path / "figure1.npz"), out, "toy") == out
    assert out.read_bytes()[:8] == PNG
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left behind
    grouped = tmp_path / "fig" / "grouped.png"
    groups = {"first": [f"c{i}" for i in range(5)], "rest": [f"c{i}" for i in range(5, classes)]}
    assert draw_figure1(read_arrays(tmp_path / "figure1.npz"), grouped, "toy", groups).read_bytes()[:8] == PNG


def test_the_drawing_imports_no_torch():
    code = "import sys, latentseg.reports.figure1; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_figure1_arrays_of_a_tiny_run_on_generated_data(tmp_path):
    data = tmp_path / "voc"
    generate(SyntheticSpec("voc", num_train=2, num_val=3, size=(40, 48), seed=3), data)
    checkpoint = tmp_path / "runs" / "voc-1_8-proposed" / "seed-1" / "checkpoint.pt"
    save_tiny_run(checkpoint, voc_config(), 21)
    arrays = figure1_arrays(checkpoint, data, 2, "cpu")
    val = read_list(data / "val.txt")[:2]
    assert list(arrays["ids"]) == [s.id for s in val]
    assert str(arrays["dataset"]) == "voc" and str(arrays["run"]) == "seed-1"
    assert str(arrays["experiment"]) == "voc-1_8-proposed" and len(arrays["classes"]) == 21
    p = arrays["p_latent_given_class"]
    assert p.shape == (21, 5) and np.allclose(p.sum(1), 1.0)
    for i, sample in enumerate(val):
        assert arrays[f"image_{i}"].shape == (40, 48, 3) and arrays[f"image_{i}"].dtype == np.uint8
        np.testing.assert_array_equal(arrays[f"ground_truth_{i}"], load_mask(data / sample.mask).numpy())
        for key in ("semantic", "latent"):
            assert arrays[f"{key}_{i}"].shape == (40, 48) and arrays[f"{key}_{i}"].dtype == np.uint8
        assert arrays[f"latent_{i}"].max() < 5
    path = write_npz(tmp_path / "results" / "figure1.npz", arrays)
    back = read_arrays(path)
    assert set(back) == set(arrays) and all(np.array_equal(back[k], arrays[k]) for k in arrays)
    assert draw_figure1(back, tmp_path / "fig1_voc.png", "tiny").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match=r"fewer than figure1\.images"):
        figure1_arrays(checkpoint, data, 4, "cpu")
