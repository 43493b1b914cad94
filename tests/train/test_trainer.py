import pytest
import torch

from latentseg.train.trainer import load_trained, resume_step, train
from tests.helpers import tiny_config, tiny_data


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
    assert resume_step(tmp_path / "killed.pt", cfg) == 3
    summary = train(cfg, tmp_path / "killed.pt", data)
    assert summary.resumed_from == 3 and summary.steps_run == 3
    straight, s_state = _weights(tmp_path / "straight.pt")
    resumed, r_state = _weights(tmp_path / "killed.pt")
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    assert torch.equal(s_state["step_module"]["cooccurrence.matrix"], r_state["step_module"]["cooccurrence.matrix"])
    assert torch.equal(s_state["step_module"]["discriminator.classifier.weight"],
                       r_state["step_module"]["discriminator.classifier.weight"])


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path):
    data = tiny_data(tmp_path / "data")
    train(tiny_config(), tmp_path / "run.pt", data)
    other = tiny_config(latent={"k": 3})
    assert resume_step(tmp_path / "run.pt", other) == 0
    summary = train(other, tmp_path / "run.pt", data)
    assert summary.resumed_from == 0
    _, state = _weights(tmp_path / "run.pt")
    assert state["num_latent"] == 3


@pytest.mark.parametrize("method", [
    {"loss": {"latent": False, "consistency": False, "adversarial": "none"}},  # L_ce
    {"loss": {"consistency": False, "adversarial": "none"}},  # + L_latent
    {"loss": {"latent": False, "consistency": False, "adversarial": "labeled"}},  # + L_adv (labeled only)
    {"loss": {"latent": False, "consistency": False}, "self_training": {"enabled": True}},  # Hung et al.
    {"latent": {"target": "semantic"}},
    {"latent": {"target": "semantic_kl"}},
    {"latent": {"target": "manual", "groups": {"bg": ["background"], "rest": [
        "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
        "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]}}},
])
def test_every_variant_trains_and_logs_its_terms(tmp_path, method):
    data = tiny_data(tmp_path / "data", num_train=16)
    logged = []
    summary = train(tiny_config(optim={"iterations": 3}, **method), tmp_path / "run.pt", data,
                    log=lambda m, s: logged.append(m))
    assert summary.steps_run == 3
    assert all(torch.isfinite(torch.tensor(v)) for v in logged[-1].values())
    terms = set(logged[-1])
    loss = method.get("loss", {})
    assert ("latent" in terms) == (loss.get("latent", True) or method.get("latent", {}).get("target") == "semantic_kl")
    assert ("d" in terms) == (loss.get("adversarial", "all") != "none")
    assert ("semi" in terms) == method.get("self_training", {}).get("enabled", False)


def test_full_split_uses_labeled_images_as_the_unlabeled_stream(tmp_path):
    data = tiny_data(tmp_path / "data", num_train=8, fraction="full")
    assert data.unlabeled == []
    summary = train(tiny_config(optim={"iterations": 2}), tmp_path / "run.pt", data)
    assert summary.steps_run == 2
