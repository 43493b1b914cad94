"""The registry and the methods' contracts: every method is found by name, prunes what it does not use, and
computes the scores that decide pseudo-labels in float32 even under bf16 autocast (issue 17)."""

from __future__ import annotations

import pytest
import torch

from latentseg import losses, methods
from latentseg.config import to_dict
from tests.train.speed_fixtures import step_and_batch, tiny_config


def test_the_registry_finds_every_method_by_its_module():
    assert set(methods.METHODS) == {"latent", "hung", "s4gan", "unimatch"}
    assert methods.sections() == ("hung", "loss", "latent", "s4gan", "unimatch")
    with pytest.raises(methods.SettingsError, match="must be one of hung, latent, s4gan, unimatch"):
        methods.get("unimatch-typo")


@pytest.mark.parametrize("objective, sections", [("latent", ["loss", "latent"]), ("hung", ["hung"]),
                                                 ("s4gan", ["s4gan"]), ("unimatch", ["unimatch", "latent"])])
def test_a_run_holds_its_own_method_settings_only(objective, sections):
    cfg = tiny_config(objective=objective)
    assert list(to_dict(cfg.settings)) == sections
    assert methods.run_config(to_dict(cfg)) == cfg  # a resolved file reads back to the same run


@pytest.mark.parametrize("objective, loss_name", [("hung", "self_training_loss"),
                                                  ("s4gan", "s4gan_self_training_loss")])
def test_pseudo_label_decisions_are_float32_under_bf16_autocast(objective, loss_name, monkeypatch):
    cfg = tiny_config(objective=objective)
    nets, batch = step_and_batch(cfg)
    seen = {}
    original = getattr(losses, loss_name)

    def spy(logits, d_logits, *args, **kwargs):
        seen["dtype"] = d_logits.dtype
        return original(logits, d_logits, *args, **kwargs)

    monkeypatch.setattr(losses, loss_name, spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nets.losses(batch, step=1)
    assert seen["dtype"] == torch.float32
