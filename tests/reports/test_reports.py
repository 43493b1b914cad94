"""The report stages over the real params.yaml, fed with made-up metric files: seconds, no training."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from latentseg.datasets import get
from latentseg.registry.experiments import report_settings
from latentseg.reports.claims import parse_claims
from latentseg.reports.curves import experiments_of
from latentseg.reports.figures import grouped_order, heatmap
from latentseg.reports.tables import CellRef
from latentseg.run.outputs import Outputs
from tests.reports.fakes import seeds, write_filtered, write_runs

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def test_heatmap_writes_a_png(tmp_path):
    heatmap(np.eye(4, 3), ["a", "b", "c", "d"], "toy", tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # no temporary file left behind
    heatmap(np.eye(4, 3), ["a", "b", "c", "d"], "toy", tmp_path / "grouped.png", {"x": ["a", "c"], "y": ["b", "d"]})
    assert (tmp_path / "grouped.png").read_bytes()[:8] == PNG


def test_heatmap_orders_rows_by_planted_group_and_columns_by_the_group_that_prefers_them():
    # classes a, b, c, d; a and c prefer latent 2, b latent 0, d latent 1 (and latent 3 nobody)
    p = np.array([[0.1, 0.0, 0.9, 0.0], [0.8, 0.2, 0.0, 0.0], [0.0, 0.3, 0.7, 0.0], [0.0, 0.9, 0.1, 0.0]])
    rows, columns = grouped_order(p, ["a", "b", "c", "d"], {"x": ["a", "c"], "y": ["b", "d"]})
    assert rows == [0, 2, 1, 3] and columns == [2, 1, 0, 3]  # in y, latent 1 (mass 1.1) before latent 0 (0.8)


def _fake_results(params, results: Path) -> None:
    rng = np.random.default_rng(0)
    named = [CellRef.parse(c) for layout in params["tables"].values() for cells in layout["rows"].values()
             for c in cells if c is not None]
    filtered: dict[str, dict] = {}
    for exp in dict.fromkeys(ref.experiment for ref in named):
        n = int(rng.integers(1, 4))  # one to three seeds
        base = float(rng.uniform(40, 70))
        dataset = params["experiments"][exp]["dataset"]
        write_runs(results, exp, seeds(list(base + rng.normal(0, 1, n)), **{
            "effective_t0.1": [int(v) for v in rng.integers(5, 9, n)],
            "effective_t0.9": [int(v) for v in rng.integers(2, 5, n)],
            "recovery_ari": [round(float(v), 4) for v in rng.uniform(0, 1, n)]}), dataset)
        for cls_id, entry in params["classifiers"].items():
            if exp in entry["filters"]:
                filtered.setdefault(cls_id, {})[exp] = seeds(list(base + 1 + rng.normal(0, 1, n)))
    for cls_id, per_exp in filtered.items():
        write_filtered(results, cls_id, per_exp)
    out = Outputs(results=results)
    for run_id in params["figures"].values():
        exp = params["experiments"][run_id]
        k = exp.get("latent", {}).get("k", params["latent"]["k"])
        classes = list(get(exp["dataset"]).classes)
        frame = pd.DataFrame(rng.dirichlet(np.ones(k), len(classes)), index=classes)
        latent = out.latent_folder(exp["dataset"], run_id)
        latent.mkdir(parents=True, exist_ok=True)
        (latent / "seed-1234.csv").write_text(frame.to_csv())  # the first seed's
        if not out.metrics_file(exp["dataset"], run_id).is_file():
            write_runs(results, run_id, seeds([50.0]), exp["dataset"])


@pytest.mark.slow
def test_table_claims_figure_curves_and_check_stages_on_fake_results(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if params["profile"] == "paper":
        pytest.skip("records a reference of the profile's own results, which the paper profile does not have")
    results, out = tmp_path / "results", tmp_path / "reports"
    _fake_results(params, results)
    settings = tmp_path / "reports.yaml"
    settings.write_text(yaml.safe_dump(report_settings(params)))

    def run(*args):
        return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)

    r = run("stages/tables.py", "--settings", str(settings), "--results", str(results), "--paper",
            "reference/paper.yaml", "--out", str(out / "t"))
    assert r.returncode == 0, r.stderr
    for name in params["tables"]:
        assert (out / "t" / f"{name}.md").is_file() and (out / "t" / f"{name}.csv").is_file()
    every = pd.read_csv(out / "t" / "all.csv")
    assert list(every.columns) == ["table", "row", "column", "source", "run", "value"]
    assert every.groupby(["table", "row", "column"]).size().max() > 1  # each run kept

    r = run("stages/claims.py", "--settings", str(settings), "--tables", str(out / "t" / "all.csv"),
            "--claims", "reference/claims.yaml",
            "--paper", "reference/paper.yaml", "--md", str(out / "claims.md"), "--csv", str(out / "claims.csv"))
    assert r.returncode == 0, r.stderr
    claims = pd.read_csv(out / "claims.csv")
    stated = yaml.safe_load((ROOT / "reference" / "claims.yaml").read_text())["claims"]
    assert list(claims["id"]) == [c["id"] for c in stated]
    assert set(claims["verdict"]) <= {"holds", "within noise", "reversed", "not run", "not applicable"}
    # the demo's VOC has planted groups: claims about them are judged, none set aside for want of groups
    about_groups = claims[claims["id"].str.contains("separates-groups|recovers-groups")]
    assert len(about_groups) == 6 and not about_groups["note"].fillna("").str.contains("no planted groups").any()

    r = run("stages/figures.py", "--settings", str(settings), "--results", str(results), "--out", str(out / "f"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "f").iterdir()) == sorted(
        [f"{n}.png" for n in params["figures"]] + [f"curves_{n}.png" for n in params["tables"]])
    assert all(experiments_of(layout) for layout in params["tables"].values())

    # a reference recorded from these very tables passes; a cell moved by 10 points and a claim that no longer
    # holds are both named
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    (ref_dir / "claims.yaml").write_text((ROOT / "reference" / "claims.yaml").read_text())
    check = ("stages/check.py", "--settings", str(settings), "--tables", str(out / "t" / "all.csv"), "--reference",
             str(ref_dir))
    r = run(*check, "--write")
    assert r.returncode == 0, r.stderr
    path = ref_dir / f"{params['profile']}.yaml"
    doc = yaml.safe_load(path.read_text())
    assert set(doc) == {"noise", "tables", "claims_must_hold"}
    r = run(*check)
    assert r.returncode == 0, r.stderr
    doc["tables"]["table3"]["all"]["mIoU"]["mean"] += 10
    not_holding = claims.loc[claims["verdict"] != "holds", "id"].iloc[0]
    doc["claims_must_hold"].append(str(not_holding))
    path.write_text(yaml.safe_dump(doc))
    r = run(*check)
    assert r.returncode == 1
    assert "table3 / all / mIoU" in r.stderr and f"claim {not_holding}: must hold" in r.stderr
    r = run(*check, "--report", str(out / "tolerance.md"))
    assert r.returncode == 0 and "table3 / all / mIoU" in (out / "tolerance.md").read_text()


def test_every_claim_names_cells_of_the_layouts():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cells = {(name, str(row), str(col)): source for name, layout in params["tables"].items()
             for row, sources in layout["rows"].items() for col, source in zip(layout["columns"], sources, strict=True)}
    claims = parse_claims(yaml.safe_load((ROOT / "reference" / "claims.yaml").read_text()))
    # 20 of the paper, 2 of Table 6 (beyond the paper), 6 of Table 4 against the planted groups (3 effective
    # counts at least the groups, 3 recovery indices), 3 of Table 4's t = 0.1 close to t = 0.9
    assert len(claims) == 31
    for claim in claims:
        for side in (claim.higher, claim.lower):
            if side.cell is not None:
                assert cells.get(side.cell) is not None, (claim.id, side)  # a cell the layouts reproduce
            if side.planted is not None:
                assert side.planted in params["datasets"], (claim.id, side)
