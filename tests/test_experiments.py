"""The registry in params.yaml: every run resolves, every table cell names a run that exists."""

from pathlib import Path

import pytest

from latentseg.config import to_dict
from latentseg.experiments import deep_merge, resolve
from latentseg.params import load_params
from latentseg.reports.tables import CellRef

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


@pytest.mark.parametrize("profile", ["demo", "paper"])
def test_every_experiment_resolves_in_every_profile(params, profile):
    for exp_id in params["experiments"]:
        exp, cfg = resolve({**params, "profile": profile}, exp_id)
        assert cfg.dataset == exp.dataset
        if profile == "paper":
            assert cfg.model.backbone == "resnet101" and cfg.optim.iterations == 20000


def test_layers_apply_in_order(params):
    _, cfg = resolve(params, "voc-1_8-k10")
    assert cfg.latent.k == 10  # the experiment's own key wins
    _, cfg = resolve({**params, "latent": {**params["latent"], "k": 7}}, "voc-1_8-proposed")
    assert cfg.latent.k == 7  # inherits the default
    _, cfg = resolve(params, "voc-1_8-hung")
    assert cfg.self_training.enabled and not cfg.loss.latent
    _, cfg = resolve({**params, "profile": "paper"}, "cityscapes-1_8-proposed")
    assert cfg.data.crop_size == (256, 512) and cfg.data.resize == (512, 1024)


def test_changing_latent_k_changes_only_the_runs_that_inherit_it(params):
    before = {e: to_dict(resolve(params, e)[1]) for e in params["experiments"]}
    changed_params = deep_merge(params, {"latent": {"k": 10}})
    changed = {e for e in params["experiments"] if to_dict(resolve(changed_params, e)[1]) != before[e]}
    # the runs that learn latent classes and do not set k themselves
    inherit = {e for e, x in params["experiments"].items()
               if "k" not in x.get("latent", {}) and x["method"] in ("proposed", "ce-latent", "ce-latent-cons")}
    assert changed == inherit
    assert "voc-1_8-hung" not in changed and "voc-1_8-k2" not in changed and "voc-1_8-proposed" in changed


def test_every_table_cell_and_figure_names_a_known_run(params):
    runs = set(params["experiments"])
    for name, layout in params["tables"].items():
        for row, cells in layout["rows"].items():
            assert len(cells) == len(layout["columns"]), (name, row)
            for cell in cells:
                ref = CellRef.parse(cell)  # "<exp>", "<exp>:<metric>" and "<exp>+classifier" all name an experiment
                if ref is not None:
                    assert ref.experiment in runs, (name, row, cell)
    assert set(params["figures"].values()) <= runs
    for entry in params["classifiers"].values():
        assert params["experiments"][entry["run"]]["dataset"] == entry["dataset"]


def test_classifier_settings_do_not_touch_training_runs(params):
    before = {e: to_dict(resolve(params, e)[1]) for e in params["experiments"]}
    changed = deep_merge(params, {"classifier": {"threshold": 0.5}})
    assert all(to_dict(resolve(changed, e)[1]) == before[e] for e in params["experiments"])


def test_unknown_keys_are_rejected(params):
    bad = deep_merge(params, {"experiments": {"voc-1_8-k10": {"latent": {"kk": 3}}}})
    with pytest.raises(KeyError, match=r"latent\.kk"):
        resolve(bad, "voc-1_8-k10")
