"""The training loop: resume (after a kill, or a stop signal deferred to the end of a step), identity (never reuse
a run of other settings, code, data or weights), every method's objective, the "full" split's unlabeled stream,
validation curves, Table 5's twin heads."""

import os
import signal
import time

import pytest
import torch

from latentseg.models.init import load_init, save_init
from latentseg.train import identity, stopping, trainer
from latentseg.train.checkpoint import load_trained
from latentseg.train.identity import resume_step
from latentseg.train.step import build_networks
from latentseg.train.trainer import train
from tests.helpers import tiny_config, tiny_data
from tests.train.speed_fixtures import one_thread

MANUAL = {"target": "manual", "groups": {"bg": ["background"], "rest": [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]}}


class Killed(Exception):
    pass


def _weights(path):
    model, _, state = load_trained(path)
    return model.state_dict(), state


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path):
    data = tiny_data(tmp_path / "data")
    cfg = tiny_config()
    train(cfg, tmp_path / "straight.pt", data)

    def die_after_checkpoint(metrics, step):
        if step == 4:  # the checkpoint of step 3 is on disk; step 4's update is lost
            raise Killed

    with pytest.raises(Killed):
        train(cfg, tmp_path / "killed.pt", data, log=die_after_checkpoint)
    assert resume_step(tmp_path / "killed.pt", cfg, data, None) == 3
    summary = train(cfg, tmp_path / "killed.pt", data)
    assert summary.resumed_from == 3 and summary.steps_run == 3
    straight, s_state = _weights(tmp_path / "straight.pt")
    resumed, r_state = _weights(tmp_path / "killed.pt")
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    matrix = "objective.cooccurrence.matrix"
    assert torch.equal(s_state["networks"][matrix], r_state["networks"][matrix])
    assert torch.equal(s_state["networks"]["discriminator.classifier.weight"],
                       r_state["networks"]["discriminator.classifier.weight"])


def test_a_checkpoint_is_reused_only_by_the_same_run(tmp_path, monkeypatch):
    """Another configuration, training code, split or initialisation starts afresh; how a run is executed
    (log and checkpoint intervals, loader processes) does not matter."""
    data = tiny_data(tmp_path / "data")
    path = tmp_path / "run.pt"
    train(tiny_config(), path, data)
    assert resume_step(path, tiny_config(), data, None) == 6  # finished: reused as it is
    assert resume_step(path, tiny_config(runtime={"log_every": 2, "checkpoint_every": 5}), data, None) == 6
    assert resume_step(path, tiny_config(latent={"k": 3}), data, None) == 0
    other_split = tiny_data(tmp_path / "data", fraction="1/2")
    assert resume_step(path, tiny_config(), other_split, None) == 0
    init = tmp_path / "init.pt"
    model, _ = build_networks(tiny_config(), 21)
    save_init(model.state_dict(), init, [], "tiny", "test")
    assert resume_step(path, tiny_config(), data, init) == 0
    monkeypatch.setattr(identity, "code_fingerprint", lambda objective: "other training code")
    assert resume_step(path, tiny_config(), data, None) == 0
    summary = train(tiny_config(), path, data)
    assert summary.resumed_from == 0 and summary.steps_run == 6


@pytest.mark.parametrize("name, method, terms", [
    ("ce", {"loss": {"latent": False, "consistency": False, "adversarial": "none"}}, {"ce"}),
    ("ce-latent", {"loss": {"consistency": False, "adversarial": "none"}}, {"ce", "latent"}),
    ("ce-adv-labeled", {"loss": {"latent": False, "consistency": False, "adversarial": "labeled"}},
     {"ce", "adv_l", "d"}),
    ("proposed", {}, {"ce", "latent", "adv_l", "adv_u", "cons", "d"}),
    ("hung", {"objective": "hung"}, {"ce", "adv_l", "adv_u", "semi", "d"}),
    ("s4gan", {"objective": "s4gan"}, {"ce", "fm", "st", "d"}),
    ("semantic", {"latent": {"target": "semantic"}}, {"ce", "latent", "adv_l", "adv_u", "cons", "d"}),
    ("semantic-kl", {"latent": {"target": "semantic_kl"}}, {"ce", "latent", "adv_l", "adv_u", "cons", "d"}),
    ("manual", {"latent": MANUAL}, {"ce", "latent", "adv_l", "adv_u", "cons", "d"}),
])
def test_every_method_trains_and_logs_its_terms(tmp_path, name, method, terms):
    data = tiny_data(tmp_path / "data", num_train=16)
    logged = []
    summary = train(tiny_config(optim={"iterations": 3}, **method), tmp_path / "run.pt", data,
                    log=lambda m, s: logged.append(m))
    assert summary.steps_run == 3
    assert all(torch.isfinite(torch.tensor(v)) for v in logged[-1].values())
    assert set(logged[-1]) == terms | {"total", "lr"}


@pytest.mark.parametrize("full_unlabeled, terms", [
    ("none", {"ce", "latent", "adv_l", "d"}),  # AdvSemiSeg's full-data run: no term on unlabeled images
    ("labeled", {"ce", "latent", "adv_l", "adv_u", "cons", "d"}),  # the labeled images fed as unlabeled
])
def test_a_full_split_has_no_unlabeled_terms_unless_asked(tmp_path, full_unlabeled, terms):
    data = tiny_data(tmp_path / "data", num_train=8, fraction="full")
    assert data.unlabeled == []
    logged = []
    train(tiny_config("full", optim={"iterations": 2}, data={"full_unlabeled": full_unlabeled}),
          tmp_path / "run.pt", data, log=lambda m, s: logged.append(m))
    assert set(logged[-1]) == terms | {"total", "lr"}


def test_validation_during_training_logs_a_curve_and_changes_nothing(tmp_path):
    data = tiny_data(tmp_path / "data")
    plain = tiny_config(objective="s4gan")  # its discriminator's dropout draws from the global generator
    evaluated = tiny_config(objective="s4gan", runtime={"eval_every": 2})
    train(plain, tmp_path / "plain.pt", data)
    logged, seen = [], []

    def validate(model):
        seen.append(model.training)
        torch.rand(3)  # a validation that draws random numbers must not shift training's
        return {"miou": 12.5}

    train(evaluated, tmp_path / "evaluated.pt", data, log=lambda m, s: logged.append((s, m)), validate=validate)
    assert [s for s, m in logged if "val/miou" in m] == [2, 4]  # not at the end: the stage evaluates the run
    a, b = _weights(tmp_path / "plain.pt")[0], _weights(tmp_path / "evaluated.pt")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_symmetric_kl_variant_starts_both_heads_from_the_coco_head(tmp_path):
    """Table 5: "both branches predict semantic classes and are trained alike"."""
    data = tiny_data(tmp_path / "data")
    source, _ = build_networks(tiny_config(), 21)
    init = save_init(source.state_dict(), tmp_path / "coco.pt", [], "tiny", "test")
    cfg = tiny_config(latent={"target": "semantic_kl"})
    model, _ = build_networks(cfg, 21)
    load_init(model, init, latent_from_semantic=True)
    for a, b in zip(model.semantic_head.parameters(), model.latent_head.parameters(), strict=True):
        assert torch.equal(a, b)
    spied = {}
    update = trainer.one_update

    def spy(step_module, batch, *args, **kwargs):
        spied.setdefault("real", batch.real_mask)
        return update(step_module, batch, *args, **kwargs)

    trainer.one_update = spy
    try:
        train(cfg, tmp_path / "kl.pt", data, init)
    finally:
        trainer.one_update = update
    assert spied["real"] is not None  # the discriminator's ground truth: a labeled draw of its own


def test_one_s4gan_step_changes_the_weights_of_both_networks():
    """Mittal et al.'s iteration: SGD on the segmentation network (L_ce + L_fm + L_st), Adam on their discriminator."""
    from tests.train.speed_fixtures import step_and_batch

    cfg = tiny_config(objective="s4gan", optim={"iterations": 3})
    step, batch = step_and_batch(cfg)
    batch.real_image, batch.real_mask = batch.image.flip(0), batch.mask.flip(0)  # its own labeled draw
    sgd, adam = trainer.make_optimizers(cfg, step.model, step.discriminator)
    before = {name: {k: v.clone() for k, v in net.state_dict().items()}
              for name, net in (("segmentation", step.model), ("discriminator", step.discriminator))}
    parts = trainer.one_update(step, batch, 1, sgd, adam)
    assert set(parts) == {"ce", "fm", "st", "d", "total"}
    for name, net in (("segmentation", step.model), ("discriminator", step.discriminator)):
        moved = [k for k, v in net.state_dict().items()
                 if v.is_floating_point() and not torch.equal(v, before[name][k])]
        assert moved, f"the {name} network did not move"


class Requeued(Exception):
    pass


@pytest.mark.usefixtures(one_thread.__name__)
def test_a_stop_signal_waits_for_the_step_in_progress_and_the_resumed_run_ends_as_an_uninterrupted_one(
        tmp_path, monkeypatch):
    """Slurm's warning signal, deferred (``train.stopping``, as a cluster job does): sent halfway into step 2's
    update, it lets the update end, the trainer saves step 2 (before its first checkpoint, of step 3) and then runs
    the handler of before (submitit's requeues; here it raises); resumed, the run trains steps 3 and 4 alone."""
    data = tiny_data(tmp_path / "data")
    cfg = tiny_config(optim={"iterations": 4})  # a checkpoint every 3
    train(cfg, tmp_path / "straight.pt", data)
    update = trainer.one_update

    def signalled_midway(nets, batch, step, *args):
        if step == 1:  # the update of the second step
            os.kill(os.getpid(), signal.SIGUSR2)
            assert stopping.requested()  # the handler has run, and only marked the request
        return update(nets, batch, step, *args)

    def requeue(signum, frame):
        raise Requeued

    monkeypatch.setattr(trainer, "one_update", signalled_midway)
    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        with stopping.deferred(signal.SIGUSR2), pytest.raises(Requeued):
            train(cfg, tmp_path / "stopped.pt", data)
        with stopping.deferred(signal.SIGUSR2), pytest.raises(Requeued):
            os.kill(os.getpid(), signal.SIGUSR2)  # outside the loop: handled at once
            time.sleep(1)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert resume_step(tmp_path / "stopped.pt", cfg, data, None) == 2
    monkeypatch.setattr(trainer, "one_update", update)
    summary = train(cfg, tmp_path / "stopped.pt", data)
    assert (summary.resumed_from, summary.steps_run) == (2, 2)
    straight, resumed = _weights(tmp_path / "straight.pt"), _weights(tmp_path / "stopped.pt")
    for key, value in straight[0].items():
        assert torch.equal(value, resumed[0][key]), key
    for key, value in straight[1]["networks"].items():
        assert torch.equal(value, resumed[1]["networks"][key]), key
