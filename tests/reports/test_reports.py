"""Tables, figures and the tolerance check built from a handful of metric files, without training."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from latentseg.reports.check import out_of_tolerance, reference_from
from latentseg.reports.figures import heatmap
from latentseg.reports.tables import CellRef, long_table, markdown, metrics_reader

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = {
    "title": "Toy",
    "columns": ["1/8", "full"],
    "rows": {
        "Ours": ["a", "b"],
        "Ours + Classifier": ["classifier:x", None],
        "Effective": ["a:effective_t0.1", "b:effective_t0.1"],
    },
}
PAPER = {"Ours": [70.0, 75.0], "Ours + Classifier": [71.0, None], "Effective": [16, 18]}


def _runs(tmp_path, a=70.4, b=74.0):
    for run, metrics in {"a": {"miou": a, "effective_t0.1": 15}, "b": {"miou": b, "effective_t0.1": 18},
                         "classifier-x": {"miou": 71.2}}.items():
        (tmp_path / run).mkdir(parents=True, exist_ok=True)
        (tmp_path / run / "metrics.json").write_text(json.dumps(metrics))
    return metrics_reader(tmp_path)


def test_cell_references():
    assert CellRef.parse("voc-1_8") == CellRef("run", "voc-1_8", "miou")
    assert CellRef.parse("voc-1_8:effective_t0.9") == CellRef("run", "voc-1_8", "effective_t0.9")
    assert CellRef.parse("classifier:voc-1_8") == CellRef("classifier", "voc-1_8", "miou")
    assert CellRef.parse(None) is None


def test_table_puts_ours_beside_the_paper(tmp_path):
    long = long_table("t", LAYOUT, PAPER, _runs(tmp_path))
    cell = long[(long.row == "Ours") & (long.column == "1/8")].iloc[0]
    assert (cell["ours"], cell["paper"], cell["diff"]) == (70.4, 70.0, 0.4)
    assert long[(long.row == "Ours + Classifier") & (long.column == "1/8")].iloc[0].ours == 71.2
    missing = long[(long.row == "Ours + Classifier") & (long.column == "full")].iloc[0]
    assert pd.isna(missing["ours"]) and pd.isna(missing["source"])
    text = markdown(long, "Toy", "demo")
    assert "| Ours " in text and "70.4 / 70.0 (+0.4)" in text and "| – / –" in text
    counts = long_table("t4", {"title": "", "columns": ["effective (t=0.1)"], "rows": {"20": ["a:effective_t0.1"]}},
                        {"20": [16]}, _runs(tmp_path))
    assert "15 / 16 (-1)" in markdown(counts, "Table 4", "demo")  # latent-class counts as whole numbers


def test_check_passes_within_tolerance_and_names_every_cell_outside(tmp_path):
    good = long_table("t", LAYOUT, PAPER, _runs(tmp_path))
    reference = {"t": reference_from(good)["t"]}
    tol = {"miou": 0.5, "effective": 1}
    assert out_of_tolerance(good, reference, tol) == []
    # a wrong loss weight would move these two results: both cells are named
    bad = long_table("t", LAYOUT, PAPER, _runs(tmp_path / "bad", a=66.0, b=79.9))
    problems = out_of_tolerance(bad, reference, tol)
    assert len(problems) == 2
    assert any(p.startswith("t / Ours / 1/8: 66.00 vs reference 70.4") for p in problems)
    assert any(p.startswith("t / Ours / full: 79.90 vs reference 74.0") for p in problems)


def test_check_reports_a_missing_result():
    long = pd.DataFrame([{"table": "t", "row": "Ours", "column": "1/8", "ours": None, "paper": 1.0, "diff": None,
                          "source": "a"}])
    assert out_of_tolerance(long, {"t": {"Ours": [70.0]}}, {"miou": 1, "effective": 1}) == [
        "t / Ours / 1/8: no result (reference 70.0)"]


def test_heatmap_writes_a_png(tmp_path):
    p = np.eye(4, 3)
    heatmap(p, ["a", "b", "c", "d"], "toy", tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_table_figure_and_check_stages_on_fake_results(tmp_path):
    """The real stages over the real params.yaml, fed with made-up metric files: seconds, no training."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    for run_id, exp in params["experiments"].items():
        (results / run_id).mkdir(parents=True)
        k = exp.get("latent", {}).get("k", params["latent"]["k"])
        (results / run_id / "metrics.json").write_text(json.dumps(
            {"miou": float(rng.uniform(40, 70)), "effective_t0.1": 3, "effective_t0.9": 2}))
        classes = [f"c{i}" for i in range(21 if exp["dataset"] == "voc" else 19)]
        frame = pd.DataFrame(rng.dirichlet(np.ones(k), len(classes)), index=classes)
        (results / run_id / "latent.csv").write_text(frame.to_csv())
    for cls_id in params["classifiers"]:
        (results / f"classifier-{cls_id}").mkdir()
        (results / f"classifier-{cls_id}" / "metrics.json").write_text(json.dumps({"miou": 50.0}))
    run = lambda *args: subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)  # noqa: E731
    out = tmp_path / "reports"
    r = run("stages/tables.py", "--runs", str(results), "--paper", "reference/paper.yaml", "--out", str(out / "t"))
    assert r.returncode == 0, r.stderr
    for n in range(1, 6):
        assert (out / "t" / f"table{n}.md").is_file() and (out / "t" / f"table{n}.csv").is_file()
    r = run("stages/figures.py", "--runs", str(results), "--out", str(out / "f"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "f").iterdir()) == [
        "fig3_cityscapes_k10.png", "fig3_cityscapes_k20.png", "fig3_voc_k10.png", "fig3_voc_k20.png"]
    # against a reference recorded from these very tables the check passes; perturbed by 10 points it fails
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    long = pd.read_csv(out / "t" / "all.csv", dtype={"row": str, "column": str})
    doc = {"tolerance": {"miou": 2.0, "effective": 1}, "tables": reference_from(long)}
    (ref_dir / f"{params['profile']}.yaml").write_text(yaml.safe_dump(doc))
    r = run("stages/check.py", "--tables", str(out / "t" / "all.csv"), "--reference", str(ref_dir))
    assert r.returncode == 0, r.stderr
    doc["tables"]["table3"]["all"] = [doc["tables"]["table3"]["all"][0] + 10]
    (ref_dir / f"{params['profile']}.yaml").write_text(yaml.safe_dump(doc))
    r = run("stages/check.py", "--tables", str(out / "t" / "all.csv"), "--reference", str(ref_dir))
    assert r.returncode == 1
    assert "table3 / all / mIoU" in r.stderr
