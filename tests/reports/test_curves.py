"""Training-curve figures from dvclive histories written at test time; missing runs and experiments are skipped."""

from pathlib import Path

from latentseg.reports.curves import VAL_PANEL, experiment_curves, experiments_of, read_tsv
from latentseg.reports.drawing import curves as draw_curves
from latentseg.run.outputs import Outputs
from tests.reports.fakes import settings

PNG = b"\x89PNG\r\n\x1a\n"
LAYOUTS = {
    "table3": {"title": "Ablation", "columns": ["mIoU"], "rows": {"L_ce": ["a"], "all": ["b"], "gone": ["c"]}},
    "table9": {"title": "Nothing run", "columns": ["x", "y"], "rows": {"r": ["c+classifier", None]}},
}


def _history(path: Path, name: str, values: list[float], timestamp: bool = False) -> None:
    """A dvclive metric history: a header `step<TAB><name>` (after `timestamp` when logged with one), then rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = ["timestamp"] if timestamp else []
    rows = ["\t".join([*head, "step", name])]
    rows += ["\t".join([*(["1700000000000"] if timestamp else []), str(10 * (i + 1)), str(v)])
             for i, v in enumerate(values)]
    path.write_text("\n".join(rows) + "\n")


def _live(results: Path, exp: str, seed: int) -> Path:
    return Outputs(results=results).curves_folder("voc", exp) / f"seed-{seed}" / "plots" / "metrics"


def test_curves_per_table_survive_missing_runs(tmp_path):
    results = tmp_path / "results"
    for seed, shift in ((1234, 0.0), (1, 0.1)):
        live = _live(results, "a", seed)
        for term in ("total", "ce", "latent", "lr"):
            _history(live / "train" / f"{term}.tsv", term, [1.0 + shift, 0.8, 0.5])
        _history(live / "val" / "miou.tsv", "miou", [20.0, 28.0 + shift], timestamp=True)
    _history(_live(results, "b", 1234) / "train" / "total.tsv", "total", [2.0, 1.0])  # no validation history
    _live(results, "b", 7).mkdir(parents=True)  # a run that logged nothing yet
    (_live(results, "b", 1234) / "train" / "adv.tsv").write_text("")  # an empty file
    # c: no results at all

    out = Outputs(results=results)
    curves = experiment_curves(out.curves_folder("voc", "a"))
    assert list(curves) == ["seed-1", "seed-1234"]
    assert sorted(curves["seed-1"]) == ["ce", "latent", "total", VAL_PANEL]  # lr is not a loss
    assert list(curves["seed-1234"][VAL_PANEL].index) == [10, 20]
    assert list(experiment_curves(out.curves_folder("voc", "b"))) == ["seed-1234"]
    assert experiment_curves(out.curves_folder("voc", "c")) == {}
    assert experiments_of(LAYOUTS["table9"]) == ["c"]

    known = settings({"a": "voc", "b": "voc", "c": "voc"}, tables=LAYOUTS)
    written = [draw_curves(known, out, name, tmp_path / "figures") for name in LAYOUTS]
    assert [p.name for p in written] == ["curves_table3.png", "curves_table9.png"]
    for path in written:  # a table with no curves at all still gets its (empty) figure
        assert path.read_bytes()[:8] == PNG
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["curves_table3.png", "curves_table9.png"]


def test_read_tsv_takes_the_metric_column(tmp_path):
    _history(tmp_path / "miou.tsv", "miou", [1.0, float("nan")], timestamp=True)
    series = read_tsv(tmp_path / "miou.tsv")
    assert list(series.index) == [10, 20] and series.iloc[0] == 1.0
    assert read_tsv(tmp_path / "absent.tsv") is None
