"""CI's lock check (.ci/lock_check.py): results that differ between machines pass; a stage's code, parameters or
command that differ from the committed ones fail."""

from __future__ import annotations

import copy
import runpy

from tests.pipeline.repository import REPO

check = runpy.run_path(str(REPO / ".ci" / "lock_check.py"))
problems = check["problems"]


def _dep(path: str, md5: str) -> dict:
    return {"path": path, "hash": "md5", "md5": md5}


LOCK = {"schema": "2.0", "stages": {
    "train@voc": {"cmd": "python stages/train.py voc", "params": {},
                  "deps": [_dep("configs/voc", "c1.dir"), _dep("data/prepared/voc", "d1.dir"),
                           _dep("stages/train.py", "s1"), _dep("latentseg/losses.py", "l1")],
                  "outs": [_dep("runs/voc", "r1.dir"), _dep("results/metrics/voc", "m1.dir")]},
    "resolve": {"cmd": "python stages/resolve.py", "deps": [_dep("params.yaml", "p1")],
                "outs": [_dep("configs", "c0.dir")]},
    "prepare@voc": {"cmd": "python stages/prepare.py voc", "deps": [_dep("stages/prepare.py", "q1")],
                    "outs": [_dep("data/prepared/voc", "d1.dir")]},
    "tables": {"cmd": "python stages/tables.py", "params": {"params.yaml": {"profile": "demo"}},
               "deps": [_dep("results", "all1.dir"), _dep("reference/paper.yaml", "ref1")],
               "outs": [_dep("reports/tables", "t1.dir")]},
}}


def _changed(stage: str, path: str, md5: str) -> dict:
    lock = copy.deepcopy(LOCK)
    for dep in lock["stages"][stage]["deps"]:
        if dep["path"] == path:
            dep["md5"] = md5
    return lock


def test_numbers_that_differ_between_machines_pass():
    other = _changed("tables", "results", "all2.dir")  # the folder above the training stages' outputs
    other = copy.deepcopy(other)
    other["stages"]["train@voc"]["outs"][1]["md5"] = "m2.dir"  # other metrics
    for dep in other["stages"]["train@voc"]["deps"]:
        if dep["path"] in ("configs/voc", "data/prepared/voc"):  # inside other stages' outputs
            dep["md5"] += "x"
    assert problems(LOCK, other) == []


def test_a_changed_stage_script_library_file_parameter_or_reference_fails():
    assert problems(LOCK, _changed("train@voc", "stages/train.py", "s2")) == [
        "stage train@voc: dependency stages/train.py changed"]
    assert problems(LOCK, _changed("train@voc", "latentseg/losses.py", "l2")) == [
        "stage train@voc: dependency latentseg/losses.py changed"]
    assert problems(LOCK, _changed("resolve", "params.yaml", "p2")) == ["stage resolve: dependency params.yaml changed"]
    assert problems(LOCK, _changed("tables", "reference/paper.yaml", "ref2")) == [
        "stage tables: dependency reference/paper.yaml changed"]
    params = copy.deepcopy(LOCK)
    params["stages"]["tables"]["params"]["params.yaml"]["profile"] = "paper"
    assert problems(LOCK, params) == ["stage tables: its params changed"]


def test_a_stage_added_or_gone_fails():
    fewer = copy.deepcopy(LOCK)
    del fewer["stages"]["tables"]
    assert problems(LOCK, fewer) == ["stage tables: in the committed dvc.lock but no longer run"]
    assert problems(fewer, LOCK) == ["stage tables: not in the committed dvc.lock"]
