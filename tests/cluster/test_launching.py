"""The launching side without Slurm: settings and their environment overrides, the rendezvous read from a fake
Slurm environment, which runs are pending and why, the evaluation record, the progress file and the status table."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from latentseg import cli
from latentseg.cluster.pending import changed_keys, why_pending
from latentseg.cluster.runs import RunSpec
from latentseg.cluster.settings import cluster_settings, executor_parameters
from latentseg.cluster.status import accounting_states, status_table
from latentseg.cluster.submit import Submitted, after_ok, read_record, record
from latentseg.config import SettingsError, to_dict
from latentseg.registry.experiments import resolve
from latentseg.registry.params import load_params
from latentseg.run.evaluation import FILE as EVALUATION_FILE
from latentseg.run.evaluation import evaluated
from latentseg.run.jobs import train_and_evaluate
from latentseg.run.progress_file import CURVES, CurvesFile, ProgressFile, read_curves, read_progress
from latentseg.run.progress_file import FILE as PROGRESS_FILE
from latentseg.train import identity as identity_module
from latentseg.train.identity import identity
from latentseg.train.rendezvous import adopt_slurm_rendezvous, first_host, slurm_rendezvous
from tests.cluster.layout import REPO, make_layout, write_classifier
from tests.train.speed_fixtures import make_data, one_thread, tiny_config

PARAMS = load_params(REPO / "params.yaml")


def test_cluster_settings_come_from_params_with_environment_overrides():
    base = cluster_settings(PARAMS, {})
    assert base.partition == PARAMS["cluster"]["partition"] and base.tasks == max(1, base.gpus_per_run)
    site = cluster_settings(PARAMS, {"LATENTSEG_CLUSTER_PARTITION": "gpu", "LATENTSEG_CLUSTER_GPUS_PER_RUN": "8",
                                     "LATENTSEG_CLUSTER_NODES": "2", "LATENTSEG_CLUSTER_MEM_GB": "null"})
    assert (site.partition, site.gpus_per_node, site.tasks, site.mem_gb) == ("gpu", 4, 8, None)
    params = executor_parameters(site, "latentseg")
    assert (params["slurm_partition"], params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == \
        ("gpu", 2, 4, 4) and "mem_gb" not in params
    with pytest.raises(SettingsError, match="LATENTSEG_CLUSTER_PARTITON"):
        cluster_settings(PARAMS, {"LATENTSEG_CLUSTER_PARTITON": "gpu"})  # a typo names itself
    with pytest.raises(SettingsError, match=r"cluster.gpus_per_run .*multiple of nodes"):
        cluster_settings(PARAMS, {"LATENTSEG_CLUSTER_GPUS_PER_RUN": "3", "LATENTSEG_CLUSTER_NODES": "2"})
    with pytest.raises(SettingsError, match=r"cluster\.time_min"):
        cluster_settings(PARAMS, {"LATENTSEG_CLUSTER_TIME_MIN": "0"})


def test_cluster_settings_change_no_resolved_configuration():
    """Another site's cluster section resolves every experiment as before: no run's settings (so no identity, no
    configs/<exp>.yaml, no training stage) depend on it."""
    other = {**PARAMS, "cluster": {**PARAMS["cluster"], "partition": "elsewhere", "gpus_per_run": 8, "nodes": 2}}
    for exp_id in list(PARAMS["experiments"])[:5]:
        assert resolve(other, exp_id) == resolve(PARAMS, exp_id)
    assert "cluster" not in to_dict(resolve(PARAMS, "voc-1_8-proposed")[1])


@pytest.mark.parametrize(("nodelist", "host"), [("vm", "vm"), ("gpu[03-05,09]", "gpu03"), ("a[7],b1", "a7"),
                                                ("node-1,node-2", "node-1"), ("n[012-015]", "n012")])
def test_first_host_of_a_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_rendezvous_from_a_slurm_task_group():
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "123456",
           "SLURM_JOB_NODELIST": "gpu[03-04]"}
    assert slurm_rendezvous(env) == {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu03",
                                     "MASTER_PORT": str(20000 + 123456 % 20000)}
    assert slurm_rendezvous({**env, "SLURM_NTASKS": "1"}) is None  # one task: no group
    assert slurm_rendezvous({}) is None
    with pytest.raises(ValueError, match="SLURM_JOB_NODELIST"):
        slurm_rendezvous({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_ID": "1"})
    adopted = dict(env)
    assert adopt_slurm_rendezvous(adopted) and adopted["WORLD_SIZE"] == "8"
    torchrun = {**env, "LOCAL_WORLD_SIZE": "4", "TORCHELASTIC_RUN_ID": "x", "RANK": "0"}
    assert not adopt_slurm_rendezvous(torchrun) and torchrun["RANK"] == "0"  # torchrun's own group wins


@pytest.mark.usefixtures(one_thread.__name__)
def test_pending_runs_say_why_and_a_finished_run_reuses_its_evaluation(tmp_path, monkeypatch):
    data = make_data(tmp_path / "data" / "voc")
    cfg = tiny_config(optim={"iterations": 2})
    layout = make_layout(tmp_path, "tiny", cfg, data, "1/2", [1234])
    spec = RunSpec("tiny", "voc", 1234, layout)
    job = spec.job()
    assert why_pending(job) == "missing: no checkpoint"

    first = train_and_evaluate(job)
    assert "2 steps (from 0)" in first.summary and ", evaluated," in first.summary
    assert why_pending(job) is None
    progress = read_progress(spec.folder / PROGRESS_FILE)
    assert progress["state"] == "evaluated" and (progress["step"], progress["total"]) == (2, 2)
    assert progress["val_miou"] == first.metrics["miou"]

    again = train_and_evaluate(job)  # what the training stage does after the cluster: nothing trained or evaluated
    assert "0 steps (from 2)" in again.summary and "evaluation reused" in again.summary
    assert again.metrics == first.metrics and torch.equal(again.p_latent, first.p_latent)
    assert torch.equal(again.p_latent_val, first.p_latent_val)

    longer = replace(job, cfg=replace(job.cfg, optim=replace(job.cfg.optim, iterations=3)))
    assert why_pending(longer) == "changed: settings (optim.iterations)"
    other_lr = replace(job, cfg=replace(job.cfg, optim=replace(job.cfg.optim, lr=0.5)))
    assert why_pending(other_lr).startswith("changed: settings (optim.lr")
    monkeypatch.setattr("latentseg.run.evaluation.evaluation_code", lambda objective: "other evaluation code")
    assert why_pending(job).startswith("not evaluated")
    (_, _, _), fresh = evaluated(job.checkpoint, job.data, identity(job.cfg, job.data, job.init), 2)
    assert fresh  # evaluated again, and recorded under the new key
    assert json.loads((spec.folder / EVALUATION_FILE).read_text())["key"]["evaluation_code"] == "other evaluation code"
    monkeypatch.setattr(identity_module, "code_fingerprint", lambda objective: "other training code")
    assert why_pending(job) == "changed: training code"


def test_an_unfinished_run_is_pending(tmp_path):
    data = make_data(tmp_path / "data" / "voc")
    cfg = tiny_config(optim={"iterations": 4}, runtime={"checkpoint_every": 2, "log_every": 2})
    job = RunSpec("tiny", "voc", 1234, make_layout(tmp_path, "tiny", cfg, data, "1/2", [1234])).job()

    class Killed(Exception):
        pass

    def kill(values, step):
        if step == 4:
            raise Killed

    from latentseg.train.trainer import train

    with pytest.raises(Killed):
        train(job.cfg, job.checkpoint, job.data, job.init, kill)
    assert why_pending(job) == "unfinished: step 2/4"


def test_changed_keys_are_dotted():
    assert changed_keys({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1, "c": 5}, "d": 3, "e": 0}) == ["a.c", "e"]


def test_status_table_reads_progress_files_and_tells_failed_from_cancelled(tmp_path):
    running, done, failed, cancelled = (tmp_path / name for name in ("running", "done", "failed", "cancelled"))
    ProgressFile(running / PROGRESS_FILE, 100).report({"total": 1.0}, 20)
    eta = ProgressFile(running / PROGRESS_FILE, 100)
    eta.first = (20, 0.0)
    eta.report({"val/miou": 41.234}, 60)  # 40 steps since time 0
    ProgressFile(done / PROGRESS_FILE, 100).finished(100, 55.5)
    for folder in (failed, cancelled):
        ProgressFile(folder / PROGRESS_FILE, 100).report({"total": 1.0}, 10)
    log = tmp_path / "7_0_log.err"
    requeue = "slurmstepd: error: *** JOB 8 ON vm CANCELLED AT 2026-12-02T10:00:00 DUE TO JOB REQUEUE ***\n"
    log.write_text(requeue + "Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory\n\n")
    scancelled, timed_out = tmp_path / "7_3_log.err", tmp_path / "7_4_log.err"
    scancelled.write_text("slurmstepd: error: *** JOB 11 ON vm CANCELLED AT 2026-12-02T10:00:00 ***\n")
    timed_out.write_text(requeue + "slurmstepd: error: *** JOB 12 ON vm CANCELLED AT 2026-12-02T11:00:00 DUE TO "
                                   "TIME LIMIT ***\n")
    subs = [Submitted("a/seed-1", "7_1", "", "", str(running), 0.0),
            Submitted("a/seed-2", "7_2", "", "", str(done), 0.0),
            Submitted("b/seed-1", "7_0", "", str(log), str(failed), 0.0),
            Submitted("b/seed-2", "7_3", "", str(scancelled), str(cancelled), 0.0),
            Submitted("c/seed-1", "7_4", "", str(timed_out), str(cancelled), 0.0),
            Submitted("c/seed-2", "7_5", "", str(log), str(cancelled), 0.0)]
    record(tmp_path, subs[:2])
    record(tmp_path, subs[2:])
    assert read_record(tmp_path) == subs
    asked = []

    def accounting(job_ids):  # sacct: it knows the jobs that left the queue long ago
        asked.extend(job_ids)
        return {"7_5": "CANCELLED"}

    table = status_table(subs, lambda: {"7_1": "RUNNING"}, accounting)
    assert asked == ["7_2", "7_0", "7_3", "7_4", "7_5"]  # not the job squeue knows
    rows = {line.split()[0]: line.split() for line in table.split("\n\n")[0].splitlines() if "/seed-" in line}
    assert rows["a/seed-1"][1:4] == ["7_1", "RUNNING", "60/100"] and rows["a/seed-1"][-1] == "41.23"
    assert rows["a/seed-2"][1:4] == ["7_2", "COMPLETED", "100/100"] and rows["a/seed-2"][-1] == "55.50"
    assert rows["b/seed-1"][1:4] == ["7_0", "FAILED", "10/100"]  # requeued, then failed
    assert rows["b/seed-2"][2] == "CANCELLED" and rows["c/seed-1"][2] == "TIMEOUT"  # from the logs
    assert rows["c/seed-2"][2] == "CANCELLED"  # from sacct
    assert f"b/seed-1 (job 7_0):\n  FAILED; log: {log}" in table and "RuntimeError: CUDA out of memory" in table
    assert f"b/seed-2 (job 7_3):\n  cancelled (scancel, or a run it waits for failed); log: {scancelled}" in table
    assert "a/seed-2 (job" not in table and "a/seed-1 (job" not in table
    assert accounting_states([]) == {}


def test_a_classifier_job_waits_for_the_jobs_of_its_runs():
    assert after_ok(["12_0", "12_3"]) == {"dependency": "afterok:12_0:12_3", "kill-on-invalid-dep": "yes"}
    assert after_ok([]) == {}


def test_curves_of_a_requeued_job_drop_the_points_trained_again(tmp_path):
    path = tmp_path / CURVES
    first = CurvesFile(path, 0)
    for step in (2, 4, 6):
        first({"total": float(step)}, step)
    assert read_curves(path) == [({"total": 2.0}, 2), ({"total": 4.0}, 4), ({"total": 6.0}, 6)]
    resumed = CurvesFile(path, 4)  # requeued after step 6 was logged, resumed from the checkpoint of step 4
    resumed({"total": 6.5}, 6)
    assert read_curves(path) == [({"total": 2.0}, 2), ({"total": 4.0}, 4), ({"total": 6.5}, 6)]
    assert CurvesFile(path, 0).points == []  # a fresh start keeps none


def test_a_classifier_is_a_cluster_run_pending_until_it_and_its_filtered_evaluations_are_saved(tmp_path, one_thread):
    """Mittal et al.'s classifiers are submitted too: pending when missing or changed, or when a run they filter,
    evaluated or submitted now, has no current filtered evaluation. The job's callable trains and saves what the
    training stage then loads (same identity), filters the runs that are evaluated and records what the stage then
    reuses (same key); a second call trains nothing."""
    import yaml

    from latentseg.classifier import load_classifier
    from latentseg.cluster.classifiers import classifier_specs, pending_classifiers
    from latentseg.config import DataConfig
    from latentseg.run.classifiers import read_classifiers
    from latentseg.run.stage import Inputs, build_jobs, classifier_jobs, filter_jobs, read_experiments

    data = make_data(tmp_path / "data" / "voc")
    layout = make_layout(tmp_path, "voc-1_8-ce", tiny_config(optim={"iterations": 2}), data, "1/8", [0])
    demo = PARAMS["profiles"]["demo"]["classifier"]
    cfg = {**PARAMS["classifier"], **demo, "epochs": 2, "steps_per_epoch": 2, "burn_in_epochs": 1}
    doc = {"profile": "demo", "classifier": "voc-1_8", "dataset": "voc", "fraction": "1/8", "filters": ["voc-1_8-ce"],
           "seeds": [0, 1], "config": cfg, "data": to_dict(tiny_config().data)}
    assert set(doc["data"]) == {f.name for f in DataConfig.__dataclass_fields__.values()}
    path = layout.outputs.classifier_config("voc", "voc-1_8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def pending(submitted: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
        return [(p.spec.name, p.reason) for p in pending_classifiers(layout, {"voc-1_8": "voc"}, submitted)]

    assert pending() == [("classifier-voc-1_8/seed-0", "missing: no classifier"),
                         ("classifier-voc-1_8/seed-1", "missing: no classifier")]
    spec = classifier_specs(layout, {"voc-1_8": "voc"})[0]
    assert [run.name for run in spec.runs()] == ["voc-1_8-ce/seed-0"]  # seed 1: no run of that seed to filter
    assert spec.task(max_requeues=2)() == {"classifier": spec.name, "filtered": {}}  # the run is not evaluated
    assert load_classifier(spec.path, spec.job().identity()) is not None  # what the stage looks for
    assert read_progress(spec.folder / PROGRESS_FILE)["state"] == "evaluated"
    assert pending() == [("classifier-voc-1_8/seed-1", "missing: no classifier")]  # seed 0: nothing to filter yet
    assert pending(frozenset({"voc-1_8-ce/seed-0"}))[0] == ("classifier-voc-1_8/seed-0",
                                                            "filters voc-1_8-ce/seed-0, submitted now")
    train_and_evaluate(RunSpec("voc-1_8-ce", "voc", 0, layout).job())
    assert pending()[0] == ("classifier-voc-1_8/seed-0", "not filtered: voc-1_8-ce/seed-0 (no current filtered "
                                                         "evaluation)")
    saved = spec.path.stat().st_mtime_ns
    filtered = spec.task(max_requeues=2)()["filtered"]  # found, not trained again; the run filtered
    assert spec.path.stat().st_mtime_ns == saved and list(filtered) == ["voc-1_8-ce/seed-0"]
    assert [name for name, _ in pending()] == ["classifier-voc-1_8/seed-1"]

    # the training stage finds the classifier and the filtered evaluation: it evaluates nothing
    inputs = Inputs(layout.data / "voc", layout.splits / "voc", layout.weights)
    runs = build_jobs(read_experiments(layout.configs, "voc"), inputs, layout.outputs)
    classifiers = classifier_jobs(read_classifiers(layout.configs, "voc"), inputs, layout.outputs)
    (stage_filter,) = filter_jobs(classifiers[:1], runs)
    assert classifiers[0].finished() is not None and stage_filter.finished().metrics["miou"] == filtered[
        "voc-1_8-ce/seed-0"]

    doc["config"] = {**cfg, "lr": 0.5}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert pending()[0][1].startswith("changed")


@pytest.mark.parametrize("missing", [("sbatch", "squeue"), ("squeue",)])
def test_a_dry_run_says_when_slurm_is_missing(missing, tmp_path, monkeypatch, capsys):
    """... and lists the classifier that filters the experiment, once stage resolve has written its file."""
    exp, cfg = resolve(PARAMS, "voc-1_8-proposed")
    layout = make_layout(tmp_path, exp.id, cfg, make_data(tmp_path / "data" / "voc"), exp.fraction, list(exp.seeds))
    monkeypatch.setattr("shutil.which", lambda name, *args, **kw: None if name in missing else f"/usr/bin/{name}")
    args = ["submit", "--dry-run", "--params", str(REPO / "params.yaml"), "--experiments", exp.id,
            "--configs", str(layout.configs), "--data", str(layout.data), "--splits", str(layout.splits),
            "--weights", str(layout.weights), "--runs", str(layout.runs)]
    assert cli.main(args) == 2  # no resolved file of the classifier yet
    assert "older than" in (err := capsys.readouterr().err) and "for voc-1_8: run `dvc repro resolve`" in err, err
    write_classifier(layout, PARAMS, "voc-1_8")
    code = cli.main(args)
    out = capsys.readouterr().out
    assert code == 0 and "missing: no checkpoint" in out
    assert f"classifier-voc-1_8/seed-{exp.seeds[0]}  missing: no classifier" in out, out
    assert f"{' and '.join(missing)} not found" in out.splitlines()[-1], out
