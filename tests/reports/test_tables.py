"""Tables with spread over seeds, from metric files with repeats written at test time."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from latentseg.reports.stats import pooled_std, read_runs, summarise
from latentseg.reports.tables import CellRef, cell_text, markdown, results_reader, table_cells, table_runs
from tests.reports.fakes import seeds, settings, write_filtered, write_runs

LAYOUT = {
    "title": "Toy",
    "columns": ["1/8", "full"],
    "rows": {
        "Ours": ["a", "b"],
        "Ours + Classifier": ["a+classifier", None],
        "Effective": ["a:effective_t0.1", "b:effective_t0.1"],
    },
}
PAPER = {"Ours": [70.0, 75.0], "Ours + Classifier": [71.0, None], "Effective": [16, 18]}
SETTINGS = settings({"a": "voc", "b": "cityscapes"}, {"voc-1_8": ["a"]})


@pytest.fixture
def results(tmp_path):
    write_runs(tmp_path, "a", seeds([70.0, 71.0, 72.5], **{"effective_t0.1": [15, 16, 16]}))
    write_filtered(tmp_path, "voc-1_8", {"a": seeds([71.0, 71.5, 72.0], miou_unfiltered=[70.0, 71.0, 72.5])})
    write_runs(tmp_path, "b", seeds([74.0], **{"effective_t0.1": [18]}), dataset="cityscapes")
    return tmp_path


def _cell(cells, row, column):
    return cells[(cells.row == row) & (cells.column == column)].iloc[0]


def test_cell_references():
    assert CellRef.parse("voc-1_8-proposed") == CellRef("voc-1_8-proposed", "miou", False)
    assert CellRef.parse("voc-1_8-proposed:effective_t0.9") == CellRef("voc-1_8-proposed", "effective_t0.9")
    assert CellRef.parse("voc-1_8-s4gan+classifier") == CellRef("voc-1_8-s4gan", "miou", True)
    assert CellRef.parse("x+classifier:miou_unfiltered") == CellRef("x", "miou_unfiltered", True)
    assert CellRef.parse(None) is None


def test_cells_hold_mean_spread_and_count_beside_the_paper(results):
    runs = table_runs("t", LAYOUT, results_reader(results, SETTINGS))
    cells = table_cells("t", LAYOUT, PAPER, runs)
    a = _cell(cells, "Ours", "1/8")
    assert a["mean"] == pytest.approx(71.167, abs=1e-3) and a["std"] == pytest.approx(1.258, abs=1e-3)
    assert (a["n"], a["paper"], a["diff"], a["source"]) == (3, 70.0, pytest.approx(1.167, abs=1e-3), "a")
    b = _cell(cells, "Ours", "full")
    assert (b["mean"], b["n"], b["diff"]) == (74.0, 1, -1.0) and pd.isna(b["std"])  # one run: no spread
    assert _cell(cells, "Ours + Classifier", "1/8")["mean"] == pytest.approx(71.5)
    missing = _cell(cells, "Ours + Classifier", "full")
    assert missing["n"] == 0 and pd.isna(missing["mean"]) and pd.isna(missing["source"])
    text = markdown(cells, "Toy", "demo")
    assert "| 71.2 ± 1.3 (3) / 70.0 (+1.2) " in text  # several runs: mean ± sample std (n) / paper (diff)
    assert "| 74.0 / 75.0 (-1.0) " in text  # one run
    assert "| – / –" in text and "compare its numbers with each other" in text
    assert "15.7 ± 0.6 (3) / 16 (-0.3)" in text  # a mean of counts: one decimal
    assert "| 18 / 18 (+0) " in text  # one count: a whole number


def test_all_csv_keeps_every_run(results, tmp_path):
    runs = table_runs("t", LAYOUT, results_reader(results, SETTINGS))
    assert list(runs.columns) == ["table", "row", "column", "source", "run", "value"]
    assert len(runs) == 3 + 1 + 3 + 3 + 1  # a, b, a+classifier, a's counts, b's count
    ours = runs[(runs.row == "Ours") & (runs.column == "1/8")]
    assert list(ours.run) == ["seed-1", "seed-2", "seed-1234"]  # seed order
    assert list(ours.value) == [71.0, 72.5, 70.0]
    path = tmp_path / "all.csv"
    runs.to_csv(path, index=False)
    again = read_runs(path)
    assert summarise(again).equals(summarise(runs))


def test_cell_text_formats():
    assert cell_text(71.14, 0.42, 3, 71.3, -0.16) == "71.1 ± 0.4 (3) / 71.3 (-0.2)"
    assert cell_text(71.1, None, 1, 71.3, -0.2) == "71.1 / 71.3 (-0.2)"
    assert cell_text(None, None, 0, 71.4, None) == "– / 71.4"
    assert cell_text(14.33, 0.58, 3, 14, 0.33, count=True) == "14.3 ± 0.6 (3) / 14 (+0.3)"


def test_a_metrics_file_without_runs_is_refused(tmp_path):
    (tmp_path / "metrics" / "voc").mkdir(parents=True)
    (tmp_path / "metrics" / "voc" / "a.json").write_text('{"miou": 70.0, "profile": "demo"}')
    with pytest.raises(ValueError, match=r"metrics/voc/a.json: no 'runs'"):
        results_reader(tmp_path, SETTINGS)(CellRef("a"))


def test_a_cell_outside_the_registry_or_unfiltered_is_not_run(results):
    read = results_reader(results, SETTINGS)
    assert read(CellRef("a")) != {}  # in the registry, with results
    assert read(CellRef("x")) == {}  # an experiment a trimmed params.yaml leaves out
    assert read(CellRef("b", classifier=True)) == {}  # no classifier of this registry filters b


def test_pooled_std_counts_a_run_that_fills_several_cells_once():
    rows = [("t1", "r", "c", "x", f"seed-{i}", v) for i, v in enumerate([1.0, 3.0])]
    rows += [("t2", "r", "c", "x", f"seed-{i}", v) for i, v in enumerate([1.0, 3.0])]  # the same runs again
    rows += [("t1", "q", "c", "y", f"seed-{i}", v) for i, v in enumerate([5.0, 5.0, 8.0])]
    rows += [("t1", "e", "c", "y:effective_t0.9", "seed-0", 4.0)]
    runs = pd.DataFrame(rows, columns=["table", "row", "column", "source", "run", "value"])
    sigma, cells = pooled_std(runs, "miou")
    assert cells == 2 and sigma == pytest.approx(((2 + 6) / (1 + 2)) ** 0.5)
    assert pooled_std(runs, "effective") == (None, 0)


def test_reports_import_no_torch():
    code = ("import sys, latentseg.reports.tables, latentseg.reports.claims, latentseg.reports.check, "
            "latentseg.reports.curves, latentseg.reports.figures; assert 'torch' not in sys.modules, 'torch'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_results_of_another_profile_are_not_read(results):
    """A profile switch leaves the other profile's results in the workspace until every stage re-ran: a table
    of the paper profile never shows a demo number."""
    path = results / "metrics" / "voc" / "a.json"
    assert json.loads(path.read_text())["profile"] == "demo"
    assert results_reader(results, SETTINGS)(CellRef.parse("a"))
    assert results_reader(results, {**SETTINGS, "profile": "paper"})(CellRef.parse("a")) == {}
