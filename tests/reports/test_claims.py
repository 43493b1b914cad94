"""Claims and their verdicts, and the check against a recorded reference, on metric files with repeats."""

import math

import pandas as pd
import pytest

from latentseg.reports.check import (
    broken_claims,
    derived_tolerance,
    out_of_tolerance,
    paper_expectations,
    record_reference,
    with_variants,
)
from latentseg.reports.check import recorded_expectations as expectations
from latentseg.reports.claims import evaluate_file, markdown, parse_claims, verdict, write_claims
from latentseg.reports.stats import noise_by_kind
from latentseg.reports.tables import results_reader, table_runs
from tests.reports.fakes import seeds, settings, write_runs

LAYOUT = {
    "title": "Toy",
    "columns": ["mIoU", "effective (t=0.9)"],
    "rows": {
        "Strong": ["strong", "strong:effective_t0.9"],
        "Weak": ["weak", None],
        "Close": ["close", None],
        "Single A": ["single-a", None],
        "Single B": ["single-b", None],
        "Missing": ["missing", None],
    },
}


def _cell(row, column="mIoU"):
    return {"table": "t", "row": row, "column": column}


CLAIMS = {
    "default_noise": {"miou": 5.0, "effective": 1.0},
    "claims": [
        {"id": "strong-above-weak", "says": "Strong beats weak.", "higher": _cell("Strong"), "lower": _cell("Weak")},
        {"id": "weak-above-strong", "says": "Weak beats strong.", "higher": _cell("Weak"), "lower": _cell("Strong")},
        {"id": "close-above-weak", "says": "Close beats weak.", "higher": _cell("Close"), "lower": _cell("Weak")},
        {"id": "strong-uses-fewer", "says": "Strong uses well fewer than 20.", "higher": 20,
         "lower": _cell("Strong", "effective (t=0.9)")},
        {"id": "single-a-above-b", "says": "A beats B.", "higher": _cell("Single A"), "lower": _cell("Single B")},
        {"id": "missing-above-weak", "says": "Missing beats weak.", "higher": _cell("Missing"),
         "lower": _cell("Weak")},
    ],
}
PAPER = {("t", "Strong", "mIoU"): 71.3, ("t", "Weak", "mIoU"): 69.4, ("t", "Strong", "effective (t=0.9)"): 14}


KNOWN = settings({e: "voc" for e in ("strong", "weak", "close", "single-a", "single-b", "missing")})


def _runs(results, strong=(72.0, 72.4, 71.8)):
    write_runs(results, "strong", seeds(list(strong), **{"effective_t0.9": [4, 4, 5]}))
    write_runs(results, "weak", seeds([70.0, 70.3, 69.8]))
    write_runs(results, "close", seeds([70.2, 70.6, 69.5]))
    write_runs(results, "single-a", seeds([75.5]))
    write_runs(results, "single-b", seeds([74.0]))
    return table_runs("t", LAYOUT, results_reader(results, KNOWN))


def test_each_verdict(tmp_path):
    frame, noise = evaluate_file(CLAIMS, _runs(tmp_path), PAPER)
    by_id = frame.set_index("id")
    assert dict(by_id["verdict"]) == {
        "strong-above-weak": "holds", "weak-above-strong": "reversed", "close-above-weak": "within noise",
        "strong-uses-fewer": "holds", "single-a-above-b": "holds", "missing-above-weak": "not run"}
    holds = by_id.loc["strong-above-weak"]
    s_strong, s_weak = math.sqrt(0.18667 / 2), math.sqrt(0.12667 / 2)  # each cell's own sample std
    assert holds["diff"] == pytest.approx(72.0667 - 70.0333, abs=1e-3)
    assert holds["se"] == pytest.approx(math.sqrt(s_strong**2 / 3 + s_weak**2 / 3), abs=1e-3)
    assert (holds["n_higher"], holds["n_lower"], holds["paper_diff"]) == (3, 3, pytest.approx(1.9))
    # a number has no noise: se is the cell's alone
    fewer = by_id.loc["strong-uses-fewer"]
    assert fewer["diff"] == pytest.approx(20 - 13 / 3, abs=1e-3) and fewer["paper_diff"] == 6
    assert fewer["se"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3), abs=1e-3) and pd.isna(fewer["n_higher"])
    # single runs take the pooled within-cell std of the mIoU cells with repeats (strong, weak, close)
    pooled = math.sqrt((0.18667 + 0.12667 + 0.62) / 6)
    assert noise["miou"].sigma == pytest.approx(pooled, abs=1e-4) and noise["miou"].cells == 3
    single = by_id.loc["single-a-above-b"]
    assert single["spread_higher"] == single["spread_lower"] == pytest.approx(pooled, abs=1e-3)
    assert single["se"] == pytest.approx(pooled * math.sqrt(2), abs=1e-3)
    missing = by_id.loc["missing-above-weak"]
    assert missing["verdict"] == "not run" and missing["diff"] != missing["diff"]  # NaN


def test_without_repeats_the_default_noise_decides(tmp_path):
    write_runs(tmp_path, "single-a", seeds([75.5]))
    write_runs(tmp_path, "single-b", seeds([74.0]))
    runs = table_runs("t", LAYOUT, results_reader(tmp_path, KNOWN))
    frame, noise = evaluate_file(CLAIMS, runs)
    assert noise["miou"].sigma == 5.0 and noise["miou"].cells == 0
    assert frame.set_index("id").loc["single-a-above-b", "verdict"] == "within noise"  # 1.5 < 2 * 5 * sqrt(2)


def test_verdict_rule_edges():
    assert verdict(1.0, 0.0) == "holds" and verdict(-1.0, 0.0) == "reversed" and verdict(0.0, 0.0) == "within noise"
    assert verdict(2.01, 1.0) == "holds" and verdict(2.0, 1.0) == "within noise" and verdict(-2.01, 1.0) == "reversed"


def test_claims_report(tmp_path):
    frame, noise = evaluate_file(CLAIMS, _runs(tmp_path / "r"), PAPER)
    write_claims(frame, noise, "demo", tmp_path / "claims.md", tmp_path / "claims.csv")
    text = (tmp_path / "claims.md").read_text()
    line = next(li for li in text.splitlines() if li.startswith("| `strong-above-weak`"))
    assert [c.strip() for c in line.split("|")[1:-1]] == [
        "`strong-above-weak`", "Strong beats weak.", "+1.9", "+2.03 ± 0.23 (runs 3 vs 3)", "holds"]
    assert "(runs – vs 3)" in text and "not run" in text and "d > 2·se" in text
    assert "pooled over 3 cell(s)" in text and "3 holds, 1 within noise, 1 reversed, 1 not run" in text
    header = (tmp_path / "claims.csv").read_text().splitlines()[0]
    assert header == ("id,claim,higher,lower,paper_diff,diff,se,n_higher,n_lower,spread_higher,spread_lower,verdict,"
                      "note")
    assert markdown(frame, noise, "paper").count("demo profile") == 0


def test_derived_tolerance_from_the_seed_spread(tmp_path):
    runs = _runs(tmp_path)
    frame, noise = evaluate_file(CLAIMS, runs)
    reference = record_reference(runs, noise, frame)
    sigma = noise["miou"].sigma
    assert derived_tolerance(0.5, 2) == pytest.approx(1.5)  # 3 * 0.5 * sqrt(2 / 2)
    strong = reference["tables"]["t"]["Strong"]["mIoU"]
    assert strong == {"mean": pytest.approx(72.067, abs=1e-3), "n": 3, "values": 3,
                      "tolerance": pytest.approx(3 * sigma * math.sqrt(2 / 3), abs=1e-3)}
    single = reference["tables"]["t"]["Single A"]["mIoU"]
    assert single["tolerance"] == pytest.approx(3 * sigma * math.sqrt(2), abs=1e-3)
    assert reference["noise"]["miou"] == {"sigma": pytest.approx(sigma, abs=1e-4),
                                          "from": "pooled over 3 cell(s) with >= 2 runs"}
    assert reference["claims_must_hold"] == ["strong-above-weak", "strong-uses-fewer", "single-a-above-b"]
    assert "Missing" not in reference["tables"]["t"]  # not built: nothing recorded
    assert out_of_tolerance(runs, expectations(reference), complete=True) == []


def _one_run(cells: dict[str, float], run: str = "seed-1234") -> pd.DataFrame:
    return pd.DataFrame([("t", row, "mIoU", row.lower(), run, v) for row, v in cells.items()],
                        columns=["table", "row", "column", "source", "run", "value"])


def test_a_reference_recorded_with_variants_covers_their_spread_cell_by_cell():
    """One seed per cell: the spread comes from variants of the demo run (other COCO-pretraining and training
    seeds, as another machine's rounding moves them). A cell that moves more than the rest gets its own wider
    tolerance, and the recorded run and every variant pass the reference."""
    recorded = _one_run({"Steady": 50.0, "Wild": 20.0})
    variants = [_one_run({"Steady": 50.5, "Wild": 26.0}), _one_run({"Steady": 49.6, "Wild": 15.0}),
                _one_run({"Steady": 50.2, "Wild": 23.0})]
    spread = with_variants(recorded, variants)
    assert sorted(spread["run"].unique()) == ["seed-1234", *(f"seed-1234@variant{i}" for i in (1, 2, 3))]
    noise = noise_by_kind(spread, {"miou": 1.0})
    reference = record_reference(recorded, noise, pd.DataFrame({"id": [], "verdict": []}), spread)
    steady, wild = (reference["tables"]["t"][row]["mIoU"] for row in ("Steady", "Wild"))
    # centred on all four values: the recorded run is one draw, and may lie at an edge of the spread
    assert steady["mean"] == pytest.approx(50.075) and wild["mean"] == pytest.approx(21.0)
    assert (steady["n"], steady["values"]) == (1, 4)
    assert wild["tolerance"] > steady["tolerance"] == pytest.approx(derived_tolerance(noise["miou"].sigma, 1),
                                                                    abs=1e-3)
    assert wild["tolerance"] == pytest.approx(derived_tolerance(float(spread[spread.row == "Wild"].value.std()), 1),
                                              abs=1e-3)
    for run in [recorded, *variants]:
        assert out_of_tolerance(run, expectations(reference), complete=True) == []
    nothing = pd.DataFrame({"id": [], "verdict": []})
    without = record_reference(recorded, noise_by_kind(recorded, {"miou": 1.0}), nothing)
    assert out_of_tolerance(variants[1], expectations(without), complete=True)  # one run's default: too narrow


def test_check_names_cells_out_of_tolerance_and_claims_that_no_longer_hold(tmp_path):
    good = _runs(tmp_path / "good")
    frame, noise = evaluate_file(CLAIMS, good)
    reference = record_reference(good, noise, frame)
    # Strong falls below Weak: its cell leaves its tolerance and two claims stop holding
    bad = _runs(tmp_path / "bad", strong=(69.0, 69.4, 68.8))
    problems = out_of_tolerance(bad, expectations(reference), complete=True)
    assert len(problems) == 1 and problems[0].startswith("t / Strong / mIoU: 69.07 (mean of 3) vs reference 72.067")
    broken = broken_claims(evaluate_file(CLAIMS, bad)[0], reference["claims_must_hold"])
    assert len(broken) == 1 and broken[0].startswith("claim strong-above-weak: must hold, now reversed")
    # a cell not built any more, and one built but not recorded, are both named
    del reference["tables"]["t"]["Weak"]
    problems = out_of_tolerance(good[good.row != "Close"], expectations(reference), complete=True)
    assert problems == ["t / Close / mIoU: no result (reference 70.1)",
                        "t / Weak / mIoU: built but not in the reference (re-record it with --write)"]


def test_noise_needs_a_default_when_nothing_repeats(tmp_path):
    write_runs(tmp_path, "single-a", seeds([75.5]))
    runs = table_runs("t", LAYOUT, results_reader(tmp_path, KNOWN))
    with pytest.raises(KeyError, match=r"default_noise\.miou"):
        noise_by_kind(runs, {"effective": 1.0})


def test_paper_profile_checks_means_against_the_papers_numbers(tmp_path):
    paper = {"tolerance": {"miou": 1.5, "effective": 2},
             "tables": {"t": {"Strong": [72.5, 14], "Weak": [75.0, 3], "Missing": [70.0, None]}}}
    expected = paper_expectations({"t": LAYOUT}, paper)
    assert ("t", "Weak", "effective (t=0.9)") not in expected  # the layout does not reproduce it
    assert expected[("t", "Strong", "effective (t=0.9)")] == (14.0, 2.0)  # counts have their own tolerance
    problems = out_of_tolerance(_runs(tmp_path), expected)
    assert problems == [
        "t / Strong / effective (t=0.9): 4.33 (mean of 3) vs reference 14 (|diff| 9.67 > tolerance 2.00)",
        "t / Weak / mIoU: 70.03 (mean of 3) vs reference 75 (|diff| 4.97 > tolerance 1.50)",
        "t / Missing / mIoU: no result (reference 70)"]


def _claim(**fields):
    return {"id": "c", "says": "A claim.", "higher": _cell("Strong", "effective (t=0.9)"), "lower": 4, **fields}


def _one(runs, planted=None, **fields):
    frame, _ = evaluate_file({"default_noise": CLAIMS["default_noise"], "claims": [_claim(**fields)]}, runs,
                             planted=planted)
    return frame.iloc[0]


def test_at_least_and_scaled_sides(tmp_path):
    write_runs(tmp_path, "strong", seeds([72.0, 72.0, 72.0], **{"effective_t0.9": [4, 4, 4]}))
    runs = table_runs("t", LAYOUT, results_reader(tmp_path, KNOWN))
    assert _one(runs)["verdict"] == "within noise"  # 4 above 4: no
    assert _one(runs, compare="at least")["verdict"] == "holds"  # 4 at least 4, no spread
    assert _one(runs, compare="at least", lower=5)["verdict"] == "reversed"
    scaled = _one(runs, compare="at least", lower=5, higher={**_cell("Strong", "effective (t=0.9)"), "times": 1.3})
    assert scaled["verdict"] == "holds" and scaled["diff"] == pytest.approx(0.2) and "1.3 ×" in scaled["higher"]
    assert verdict(0.0, 0.0, "at least") == "holds" and verdict(2.0, 1.0, "at least") == "holds"
    assert verdict(1.99, 1.0, "at least") == "within noise" and verdict(-2.01, 1.0, "at least") == "reversed"


def test_planted_groups_side_and_its_absence(tmp_path):
    write_runs(tmp_path, "strong", seeds([72.0, 72.0, 72.0], **{"effective_t0.9": [5, 5, 5]}))
    runs = table_runs("t", LAYOUT, results_reader(tmp_path, KNOWN))
    groups = {"planted_groups": "voc"}
    demo = _one(runs, {"voc": 5}, lower=groups, compare="at least")
    assert demo["verdict"] == "holds" and demo["lower"] == "planted groups of voc" and pd.isna(demo["paper_diff"])
    real = _one(runs, {"voc": None}, lower=groups, compare="at least")
    assert real["verdict"] == "not applicable" and "no planted groups" in real["note"]
    marked = _one(runs, {"voc": None}, needs_planted_groups="voc")  # a cell claim about the planted groups
    assert marked["verdict"] == "not applicable"
    with pytest.raises(ValueError, match="claim c is about the planted groups of 'coco'"):
        _one(runs, {"voc": 5}, lower={"planted_groups": "coco"})


def test_a_claim_whose_premise_fails_is_not_applicable(tmp_path):
    write_runs(tmp_path, "strong", seeds([72.0, 72.0, 72.0], **{"effective_t0.9": [1, 1, 1]}))
    runs = table_runs("t", LAYOUT, results_reader(tmp_path, KNOWN))
    effective = _cell("Strong", "effective (t=0.9)")
    doc = {"default_noise": CLAIMS["default_noise"], "claims": [
        {"id": "separates", "says": "At least the groups.", "higher": effective, "lower": {"planted_groups": "voc"},
         "compare": "at least"},
        {"id": "fewer", "says": "Fewer than 20.", "higher": 20, "lower": effective, "given": ["separates"]}]}
    frame, _ = evaluate_file(doc, runs, planted={"voc": 5})
    fewer = frame.set_index("id").loc["fewer"]
    assert fewer["verdict"] == "not applicable" and fewer["note"] == "premise not met: separates reversed"
    assert fewer["diff"] == 19  # still reported
    frame, _ = evaluate_file(doc, runs, planted={"voc": None})  # no planted groups: judged on its own
    assert list(frame["verdict"]) == ["not applicable", "holds"]
    text = markdown(frame, noise_by_kind(runs, CLAIMS["default_noise"]), "paper")
    assert "not applicable (voc has no planted groups in this profile's data)" in text


@pytest.mark.parametrize(("fields", "message"), [
    ({"compare": "more"}, "claim c, field compare: 'more' is not one of above, at least"),
    ({"given": ["later"]}, "claim c, field given"),
    ({"lower": {"planted_groups": "voc", "times": "x"}}, "claim c, field lower.times"),
    ({"lower": {"table": "t"}}, "claim c, field lower: a side is"),
    ({"margin": 2}, "claim c, field margin: unknown field"),
])
def test_parse_errors_name_the_claim_and_the_field(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_claims({"claims": [_claim(**fields)]})
