"""The registry in params.yaml: every run resolves, layers apply in order, a change re-runs only the runs that use
it, every table cell names an experiment that exists, and no setting is left that nothing reads."""

import ast
import dataclasses
import typing
from pathlib import Path

import pytest

from latentseg import config as C
from latentseg.config import SettingsError, to_dict
from latentseg.methods import METHODS
from latentseg.registry.experiments import deep_merge, repeats, resolve, resolve_classifier, resolve_weights
from latentseg.registry.params import load_params
from latentseg.reports.tables import CellRef

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


@pytest.mark.parametrize("profile", ["demo", "paper"])
def test_every_experiment_classifier_and_weights_plan_resolves_in_every_profile(params, profile):
    q = {**params, "profile": profile}
    for exp_id in params["experiments"]:
        exp, cfg = resolve(q, exp_id)
        assert cfg.dataset == exp.dataset and cfg.optim.seed == exp.seeds[0]
        if profile == "paper":
            assert cfg.model.backbone == "resnet101" and len(exp.seeds) == 1
    for cls_id in params["classifiers"]:
        resolve_classifier(q, cls_id)
    resolve_weights(q)


def test_the_paper_profile_is_the_recipe_of_the_published_numbers(params):
    """AdvSemiSeg's released command: crops only, batch statistics, two ASPP branches; full = no unlabeled terms."""
    q = {**params, "profile": "paper"}
    _, cfg = resolve(q, "voc-1_8-proposed")
    assert cfg.data.crop_size == (321, 321) and not cfg.data.random_scale and not cfg.data.mirror
    assert cfg.data.scale_range is None  # unused without random scaling
    assert not cfg.model.freeze_bn_stats and cfg.model.aspp_branches == 2
    assert cfg.optim.iterations == 20000 and cfg.optim.batch_size == 10 and cfg.discriminator.real == "separate"
    _, full = resolve(q, "voc-full-hung")
    assert full.objective == "hung" and full.data.full_unlabeled == "none"
    _, s4gan = resolve(q, "voc-1_8-s4gan")
    assert s4gan.init == "imagenet" and s4gan.optim.iterations == 40000 and s4gan.optim.batch_size == 8
    assert s4gan.settings.s4gan.threshold == 0.6 and list(to_dict(s4gan.settings)) == ["s4gan"]
    _, city = resolve(q, "cityscapes-1_8-s4gan")
    assert city.settings.s4gan.threshold == 0.7 and city.discriminator.lr == 1e-5 and city.data.mirror
    _, s4gan_full = resolve(q, "voc-full-s4gan")
    assert s4gan_full.data.full_unlabeled == "labeled"  # Mittal et al. train full s4GAN with both streams


def test_layers_apply_in_order(params):
    _, cfg = resolve(params, "voc-1_8-k10")
    assert cfg.settings.latent.k == 10  # the experiment's own key wins
    _, cfg = resolve({**params, "latent": {**params["latent"], "k": 7}}, "voc-1_8-proposed")
    assert cfg.settings.latent.k == 7  # inherits the default
    _, cfg = resolve(params, "voc-1_8-hung")
    demo_start = params["profiles"]["demo"]["methods"]["hung"]["hung"]["semi_start"]  # the profile's method layer
    assert cfg.objective == "hung" and list(to_dict(cfg.settings)) == ["hung"] and cfg.settings.hung.semi_start == \
        demo_start != params["methods"]["hung"]["hung"]["semi_start"]
    _, cfg = resolve({**params, "profile": "paper"}, "cityscapes-1_8-proposed")
    assert cfg.data.crop_size == (256, 512) and cfg.data.resize == (512, 1024)


def _configs(params):
    return {e: to_dict(resolve(params, e)[1]) for e in params["experiments"]}


def test_changing_latent_k_changes_only_the_runs_that_inherit_it(params):
    before = _configs(params)
    after = _configs(deep_merge(params, {"latent": {"k": 10}}))
    changed = {e for e in before if after[e] != before[e]}
    inherit = {e for e, x in params["experiments"].items()
               if "k" not in x.get("latent", {})
               and x["method"] in ("proposed", "ce-latent", "ce-latent-cons", "unimatch-latent")}
    assert changed == inherit
    assert "voc-1_8-hung" not in changed and "voc-1_8-k2" not in changed and "voc-1_8-proposed" in changed
    assert "voc-1_8-unimatch" not in changed and "voc-1_8-unimatch-latent" in changed  # Table 6's latent branch


def test_a_unimatch_setting_changes_only_the_unimatch_runs_and_its_latent_weights_only_the_variant(params):
    before = _configs(params)
    changed = {e for e, c in _configs(deep_merge(params, {"unimatch": {"threshold": 0.9}})).items() if c != before[e]}
    assert changed == {e for e, x in params["experiments"].items() if x["method"].startswith("unimatch")}
    after = _configs(deep_merge(params, {"unimatch": {"lambda_unlabeled_cons": 0.2}}))
    assert {e for e in before if after[e] != before[e]} == {e for e in changed if e.endswith("-latent")}


def test_unimatch_mines_hard_pixels_on_cityscapes_only(params):
    """Their configs/cityscapes.yaml's OHEM labeled loss; VOC's plain cross-entropy, its OHEM keys pruned, so an
    OHEM setting re-runs the Cityscapes UniMatch runs only."""
    demo_kept = params["profiles"]["demo"]["datasets"]["cityscapes"]["run"]["unimatch"]["ohem_min_kept"]
    for profile, min_kept in (("demo", demo_kept), ("paper", 200000)):
        for method in ("unimatch", "unimatch-latent"):
            city = resolve({**params, "profile": profile}, f"cityscapes-1_8-{method}")[1].settings.unimatch
            assert city.ohem and city.ohem_threshold == 0.7 and city.ohem_min_kept == min_kept
            voc = resolve({**params, "profile": profile}, f"voc-1_8-{method}")[1].settings.unimatch
            assert not voc.ohem and voc.ohem_threshold is None and voc.ohem_min_kept is None
    before = _configs(params)
    after = _configs(deep_merge(params, {"unimatch": {"ohem_threshold": 0.6}}))
    assert {e for e in before if after[e] != before[e]} == {"cityscapes-1_8-unimatch", "cityscapes-1_8-unimatch-latent"}
    unset = deep_merge(params, {"unimatch": {"ohem_threshold": None}})
    resolve(unset, "voc-1_8-unimatch")  # unused there
    with pytest.raises(SettingsError, match=r"unimatch\.ohem_threshold = None: must be set: unimatch\.ohem uses it"):
        resolve(unset, "cityscapes-1_8-unimatch")


def test_an_s4gan_setting_changes_only_the_s4gan_runs(params):
    before = _configs(params)
    after = _configs(deep_merge(params, {"methods": {"s4gan": {"s4gan": {"lambda_fm": 0.2}}}}))
    changed = {e for e in before if after[e] != before[e]}
    assert changed == {e for e, x in params["experiments"].items() if x["method"] == "s4gan"}


def test_classifier_settings_do_not_touch_training_runs(params):
    before = _configs(params)
    assert _configs(deep_merge(params, {"classifier": {"threshold": 0.5}})) == before


def test_repeats_give_the_chosen_experiments_their_seeds(params):
    paper = {**params, "profile": "paper"}
    assert repeats(paper)["seeds"] == [1234]
    three = deep_merge(paper, {"repeats": {"seeds": [1234, 1, 2]}})
    exp, cfg = resolve(three, "voc-1_8-hung")
    assert exp.seeds == (1234, 1, 2) and cfg.optim.seed == 1234
    chosen = deep_merge(paper, {"repeats": {"seeds": [1234, 1, 2], "experiments": ["voc-1_8-proposed"]}})
    assert resolve(chosen, "voc-1_8-proposed")[0].seeds == (1234, 1, 2)
    assert resolve(chosen, "voc-1_4-proposed")[0].seeds == (1234,)  # not chosen: the first seed only
    demo = deep_merge(params, {"profiles": {"demo": {"repeats": {"seeds": [1234, 1, 2]}}}})  # the README's -S
    assert all(resolve(demo, e)[0].seeds == (1234, 1, 2) for e in ("voc-1_8-proposed", "iit-1_8-hung"))
    with pytest.raises(KeyError, match="unknown experiment"):
        repeats(deep_merge(paper, {"repeats": {"experiments": ["voc-1_8-nope"]}}))


def test_every_table_cell_and_figure_names_a_known_run(params):
    runs = set(params["experiments"])
    for name, layout in params["tables"].items():
        for row, cells in layout["rows"].items():
            assert len(cells) == len(layout["columns"]), (name, row)
            for cell in cells:
                ref = CellRef.parse(cell)
                if ref is not None:
                    assert ref.experiment in runs, (name, row, cell)
                    if ref.classifier:
                        assert any(ref.experiment in c["filters"] for c in params["classifiers"].values()), cell
    assert set(params["figures"].values()) <= runs
    for entry in params["classifiers"].values():
        assert len(entry["filters"]) == 2  # dvc.yaml names filters[0] and filters[1] as its dependencies


def test_unknown_and_missing_keys_are_rejected(params):
    bad = deep_merge(params, {"experiments": {"voc-1_8-k10": {"latent": {"kk": 3}}}})
    with pytest.raises(SettingsError, match=r"latent\.kk = 3: unknown key"):
        resolve(bad, "voc-1_8-k10")
    missing = deep_merge(params, {})
    del missing["optim"]["momentum"]
    with pytest.raises(SettingsError, match=r"optim\.momentum = \(not set\): missing"):
        resolve(missing, "voc-1_8-proposed")


def _attribute_names(root: Path) -> set[str]:
    names = set()
    for path in root.rglob("*.py"):
        if path.name == "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # read by name: a dict key of a resolved file, or getattr
    return names


def test_every_configuration_key_is_read_somewhere():
    """A setting nothing reads is a lie in params.yaml: every field of every section is read by the code."""
    read = _attribute_names(ROOT / "latentseg") | _attribute_names(ROOT / "stages")
    unread = []
    settings = [t for m in METHODS.values() for t in typing.get_type_hints(m.settings).values()]
    classes = [C.ModelConfig, C.DataConfig, C.OptimConfig, C.DiscriminatorConfig, C.ClassifierConfig,
               C.RuntimeConfig, *(typing.get_args(t)[0] if typing.get_args(t) else t for t in settings)]
    for cls in classes:
        unread += [f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls) if f.name not in read]
    assert unread == []
    # and every key of the top-level sections of params.yaml is a field
    params = load_params(ROOT / "params.yaml")
    hints = {**typing.get_type_hints(C.RunConfig), **{k: v for m in METHODS.values()
                                                      for k, v in typing.get_type_hints(m.settings).items()}}
    sections = [(s, params[s]) for s in ("model", "data", "optim", "loss", "latent", "discriminator", "runtime",
                                         "s4gan", "unimatch")]
    sections += [("hung", params["methods"]["hung"]["hung"])]  # Hung et al.'s settings live with the method
    for section, values in sections:
        fields = {f.name for f in dataclasses.fields(typing.get_args(hints[section])[0]
                                                     if typing.get_args(hints[section]) else hints[section])}
        assert set(values) == fields - ({"seed"} if section == "optim" else set()), section  # seeds: repeats
