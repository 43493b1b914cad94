"""Parameters are checked before anything runs: `resolve` prints one line per problem (key, value, experiment,
what is wrong), exits non-zero without a traceback and writes no configuration; `latentseg config` shows each
setting's origin. And no method or data set is named outside its own modules."""

from __future__ import annotations

import copy
import re
import runpy
import sys
from pathlib import Path

import pytest
import yaml

from latentseg.cli import main as cli
from latentseg.registry.params import load_params
from latentseg.util.progress import UserError, report_user_errors
from tests.helpers import tiny_data

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")
EXP = "voc-1_8-proposed"


def run_resolve(params: dict, tmp_path: Path, monkeypatch, capsys) -> tuple[int, str]:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["resolve.py", "--out", str(tmp_path / "configs")])
    try:
        runpy.run_path(str(ROOT / "stages" / "resolve.py"), run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def with_value(path: str, value) -> dict:
    params = copy.deepcopy(PARAMS)
    *parents, last = path.split(".")
    node = params
    for key in parents:
        node = node[key]
    node[last] = value
    return params


BAD = [  # (where in params.yaml, value, the key and message resolve prints)
    ("latent.k", 0, r"latent\.k = 0 \(experiment voc-1_50-proposed and \d+ more\): must be an integer >= 1"),
    ("latent.k", -3, r"latent\.k = -3 \(.*\): must be an integer >= 1"),
    ("latent.k", 2.5, r"latent\.k = 2\.5 \(.*\): must be an integer"),
    ("optim.lr", "abc", r"optim\.lr = 'abc' \(profile paper, experiment .*\): must be a number"),
    ("profiles.demo.optim.lr", 0, r"profiles\.demo\.optim\.lr = 0 \(experiment .*\): must be a number > 0"),
    ("loss.lambda_cons", -1, r"loss\.lambda_cons = -1 \(experiment .*\): must be a number >= 0"),
    ("profiles.demo.optim.iterations", 0,
     r": profiles\.demo\.optim\.iterations = 0 \(experiment .*\): must be an integer >= 1"),
    ("experiments.voc-1_8-k2.fraction", "1/0", r"experiments\.voc-1_8-k2\.fraction = '1/0' \(experiment voc-1_8-k2"
                                               r".*\): must be 'full' or a fraction in \(0, 1\]"),
    ("experiments.voc-1_8-k2.fraction", "3/2", r"fraction = '3/2' .*must be 'full' or a fraction in \(0, 1\]"),
    ("profiles.demo.data.crop_size", [48, 0],
     r": profiles\.demo\.data\.crop_size\.1 = 0 \(experiment .*\): must be an integer >= 1"),
    ("objective", "latnet", r"objective = 'latnet' \(.*\): must be one of hung, latent, s4gan"),
    ("experiments.voc-1_8-k2.dataset", "vco", r"experiments\.voc-1_8-k2\.dataset = 'vco' .*must be one of"),
    ("experiments.voc-1_8-k2.init", "cocoa", r"experiments\.voc-1_8-k2\.init = 'cocoa' .*must be one of"),
    ("model.backbone", "resnet50", r"model\.backbone = 'resnet50' .*must be one of 'resnet101' or 'tiny'"),
    ("optim.momentum", 1.5, r"optim\.momentum = 1\.5 .*must be a number <= 1"),
    ("latent.target", "learnt", r"latent\.target = 'learnt' .*must be one of 'learned', 'manual'"),
    ("methods.ce.loss.lambda_typo", 1,
     r": methods\.ce\.loss\.lambda_typo = 1 \(experiment voc-1_8-ce.*\): unknown key"),
    # issue 26: each problem names where in params.yaml the value was set, the layer of a profile or an experiment
    ("profiles.demo.optim.batch_size", 0, r"^params\.yaml: profiles\.demo\.optim\.batch_size = 0 "
                                              r"\(experiment .*\): must be an integer >= 1"),
    ("experiments.voc-1_8-k2.latent.k", 0,
     r": experiments\.voc-1_8-k2\.latent\.k = 0 \(experiment voc-1_8-k2 and 1 more\)"),
    ("profiles.demo.classifier.epochs", 0, r": profiles\.demo\.classifier\.epochs = 0 \(classifier "),
    ("profiles.demo.weights.coco.pretrain_coco.run.optim.lr", -1,
     r": profiles\.demo\.weights\.coco\.pretrain_coco\.run\.optim\.lr = -1 \(weights\): must be a number > 0"),
    # issue 26: fractions, devices, the profile and an experiment's fraction missing from its data set's splits
    ("datasets.voc.fractions", ["1/50", "1/20", "1/8", "1/4", "1/2", "full", "2/1"],
     r": datasets\.voc\.fractions\.6 = '2/1' \(data set voc\): must be 'full' or a fraction in \(0, 1\]"),
    ("datasets.iit.fractions", ["1/8", "1/4", "1/2", "full", "abc"],
     r": datasets\.iit\.fractions\.4 = 'abc' \(data set iit\): must be 'full' or a fraction"),
    ("datasets.cityscapes.fractions", "1/8", r": datasets\.cityscapes\.fractions = '1/8' .*must be a list"),
    ("experiments.voc-1_8-k2.fraction", "1/3", r": datasets\.voc\.fractions = \['1/50', .*'full'\] \(experiment "
                                               r"voc-1_8-k2 and 1 more\): has no 1/3, the fraction of the experiment"),
    ("runtime.device", "banana", r": runtime\.device = 'banana' \(profile paper, .*\): must be auto, cpu, cuda or "
                                 r"cuda:<n>"),
    ("profiles.demo.runtime.device", "gpu", r": profiles\.demo\.runtime\.device = 'gpu' \(experiment "),
    ("profile", "nonexistent", r"^params\.yaml: profile = 'nonexistent': must be one of demo, paper"),
]


@pytest.mark.parametrize("path, value, expected", BAD, ids=[f"{p}={v}" for p, v, _ in BAD])
def test_a_bad_value_gets_one_line_and_no_configuration(path, value, expected, tmp_path, monkeypatch, capsys):
    code, err = run_resolve(with_value(path, value), tmp_path, monkeypatch, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("resolve: 1 problem(s)")
    assert len(lines) == 2 and re.search(expected, lines[0]), lines
    assert lines[0].startswith("params.yaml: ")
    assert not (tmp_path / "configs").exists()


def test_the_committed_parameters_check_and_are_written(tmp_path, monkeypatch, capsys):
    code, err = run_resolve(copy.deepcopy(PARAMS), tmp_path, monkeypatch, capsys)
    assert code == 0 and err == ""
    assert len(list((tmp_path / "configs").glob("*/*.yaml"))) == len(PARAMS["experiments"])
    assert len(list((tmp_path / "configs").glob("*/classifiers/*.yaml"))) == len(PARAMS["classifiers"])
    assert sorted(p.name for p in (tmp_path / "configs").glob("*.yaml")) == ["reports.yaml", "weights.yaml"]


def test_config_shows_each_setting_and_its_layer(capsys):
    assert cli(["config", "voc-1_8-k10", "--params", str(ROOT / "params.yaml")]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert rows["latent.k"].split()[1:] == ["10", "experiments.voc-1_8-k10"]
    demo = PARAMS["profiles"]["demo"]
    assert rows["optim.iterations"].split()[1:] == [str(demo["optim"]["iterations"]), "profiles.demo"]
    assert rows["optim.head_lr_mult"].split()[1:] == ["10.0", "top", "level"]
    assert "(unused by this run" in rows["latent.alpha"] or rows["latent.alpha"].split()[1] == "null"
    assert cli(["config", "voc-1_8-hung", "--params", str(ROOT / "params.yaml")]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["hung.semi_start"].split()[1:] == [str(demo["methods"]["hung"]["hung"]["semi_start"]),
                                                   "profiles.demo.methods.hung"]
    assert "latent.k" not in rows  # Hung et al.'s runs have no latent settings at all
    assert cli(["config", "no-such-experiment", "--params", str(ROOT / "params.yaml")]) == 2


def literal_files(word: str) -> list[str]:
    pattern = re.compile(rf"[\"']{re.escape(word)}[\"']")
    return sorted(str(p.relative_to(ROOT)) for folder in ("latentseg", "stages") for p in (ROOT / folder).rglob("*.py")
                  if pattern.search(p.read_text()))


@pytest.mark.parametrize("word, most", [("hung", 2), ("s4gan", 2), ("unimatch", 2), ("semantic_kl", 2), ("manual", 2),
                                        ("voc", 3), ("cityscapes", 3)])
def test_a_method_or_data_set_is_named_only_in_its_own_modules(word, most):
    """The registries find methods and data sets by their modules' names; nothing else branches on one."""
    found = literal_files(word)
    assert len(found) <= most, found


def run_stage(name: str, args: list[str], monkeypatch) -> BaseException | None:
    """Run ``stages/<name>.py`` here, as DVC would; what it raised (a stage's one line is a ``UserError``)."""
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *args])
    try:
        runpy.run_path(str(ROOT / "stages" / f"{name}.py"), run_name="__main__")
    except (Exception, SystemExit) as err:  # whatever ended the stage
        return err
    return None


def test_a_device_of_good_syntax_passes_resolve_and_its_stage_says_in_one_line_when_it_is_missing(
        tmp_path, monkeypatch, capsys):
    code, err = run_resolve(with_value("profiles.demo.runtime.device", "cuda:7"), tmp_path, monkeypatch, capsys)
    assert code == 0 and err == ""
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)  # the same on a machine with or without a GPU
    raised = run_stage("weights", ["--plan", str(tmp_path / "configs" / "weights.yaml"), "--out",
                                   str(tmp_path / "weights"), "--raw", str(tmp_path / "raw"), "--work",
                                   str(tmp_path / "work")], monkeypatch)
    assert isinstance(raised, UserError), raised
    report_user_errors(type(raised), raised, raised.__traceback__)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("weights: ") and "runtime.device 'cuda:7'" in line and "CUDA device" in line
    assert not (tmp_path / "weights").exists() and not (tmp_path / "work").exists()


def test_a_failed_split_leaves_no_split_folder(tmp_path, monkeypatch):
    tiny_data(tmp_path / "data", "voc")
    (tmp_path / "splits" / "old").mkdir(parents=True)  # what an earlier split left
    params = with_value("datasets.voc.fractions", ["1/8", "1/4", "abc"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    raised = run_stage("split", ["voc", "--data", "data", "--out", "splits", "--raw", "raw"], monkeypatch)
    assert isinstance(raised, SystemExit | UserError) and "abc" in str(raised), raised
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "params.yaml", "splits"]
    assert [p.name for p in (tmp_path / "splits").iterdir()] == ["old"]  # untouched, no half-written folder


def run_config(params: dict, tmp_path: Path, capsys, *args: str) -> tuple[int, str]:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    code = cli(["config", *args, "--params", str(path)])
    return code, capsys.readouterr().err


def test_config_reports_a_bad_setting_as_resolve_does(tmp_path, capsys):
    code, err = run_config(with_value("latent.k", 0), tmp_path, capsys, EXP)
    assert code == 2 and err.splitlines() == [
        f"params.yaml: latent.k = 0 (experiment {EXP}): must be an integer >= 1"], err
    code, err = run_config(with_value("profiles.demo.optim.batch_size", 0), tmp_path, capsys, EXP)
    assert code == 2 and err.startswith("params.yaml: profiles.demo.optim.batch_size = 0 ")


def test_config_matches_the_experiment_exactly_and_suggests_the_closest(tmp_path, capsys):
    params = with_value("experiments.voc-1_8-k10.latent", {"k": 0})  # bad in voc-1_8-k10 only
    params["experiments"]["voc-1_8-k1"] = {**params["experiments"]["voc-1_8-k2"], "latent": {"k": 1}}
    code, err = run_config(params, tmp_path, capsys, "voc-1_8-k1")
    assert code == 0 and err == ""
    code, err = run_config(params, tmp_path, capsys, "voc-1_8-k10")
    assert code == 2 and "experiments.voc-1_8-k10.latent.k = 0" in err
    code, err = run_config(PARAMS, tmp_path, capsys, "voc-1_8-k100")
    assert code == 2 and len(err.splitlines()) == 1 and "did you mean voc-1_8-k10?" in err, err


def test_config_with_an_unknown_profile_is_one_line(tmp_path, capsys):
    code, err = run_config(PARAMS, tmp_path, capsys, EXP, "--profile", "nope")
    assert code == 2 and err.splitlines() == [
        "latentseg config: --profile = 'nope': must be one of demo, paper (the keys of profiles)"], err
