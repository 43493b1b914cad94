"""The fast step computes the method's step: bf16/channels-last and compiled iterations give the fp32 eager
losses; a failed compilation falls back to eager; nothing in an iteration waits on the device."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from latentseg.bench.profiles import calibrate_batch_norm
from latentseg.train import trainer
from latentseg.train.runtime import StepSpeed
from latentseg.train.step import make_optimizers, one_update
from tests.train.speed_fixtures import CLASSES, make_data, one_thread, step_and_batch, tiny_config

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

OPTIMISED = StepSpeed(amp=True, channels_last=True, compile=False, cudnn_benchmark=False, fused_optim=True)


def _iterations(cfg, speed: StepSpeed, steps: int = 2, compile_backend: str | None = None) -> list[dict]:
    """Losses of ``steps`` iterations from the seeded weights (statistics calibrated) on one fixed batch."""
    step, batch = step_and_batch(cfg)
    calibrate_batch_norm(step.model, torch.cat([batch.image, batch.unlabeled]))
    speed.prepare(step)
    sgd, adam = make_optimizers(cfg, step.model, step.discriminator, fused=speed.fused_optim)
    if compile_backend:
        step.model = torch.compile(step.model, backend=compile_backend)
    device = torch.device("cpu")
    batch = replace(batch, image=speed.to_device(batch.image, device),
                    unlabeled=speed.to_device(batch.unlabeled, device))
    return [{k: float(v) for k, v in one_update(step, batch, i, sgd, adam, speed.autocast(device)).items()}
            for i in range(steps)]


def _assert_close(got: list[dict], want: list[dict], rel: float) -> None:
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for name in w:
            assert g[name] == pytest.approx(w[name], rel=rel, abs=rel * 1e-2), name


def test_bf16_channels_last_step_gives_the_fp32_losses():
    """On the CPU, "optimised" means what it means on CUDA: bf16 autocast, channels-last, fused optimisers.

    bf16 keeps 8 bits of mantissa (relative 4e-3 per value); the losses are sums in float32 over many
    pixels, so they agree to about 1e-2 relative; a wrong layout or a dropped term would be far off.
    """
    cfg = tiny_config()
    _assert_close(_iterations(cfg, OPTIMISED), _iterations(cfg, StepSpeed.baseline()), rel=2e-2)


@pytest.mark.slow
def test_compiled_step_gives_the_eager_losses():
    """torch.compile's graph capture (dynamo + AOTAutograd) on the CPU; ``aot_eager`` skips inductor's C++
    code generation, which takes minutes on two cores (the GPU benchmark times inductor)."""
    torch._dynamo.reset()
    cfg = tiny_config()
    eager = _iterations(cfg, StepSpeed.baseline())
    _assert_close(_iterations(cfg, StepSpeed.baseline(), compile_backend="aot_eager"), eager, rel=1e-5)


class _Broken(nn.Module):
    """Stands in for a model whose compilation fails on its first call."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self._orig_mod = module

    def forward(self, *args, **kwargs):
        raise RuntimeError("backend compiler failed (simulated)")


def test_compile_failure_falls_back_to_eager_and_the_run_is_the_eager_run(tmp_path, monkeypatch, caplog):
    data = make_data(tmp_path / "voc")
    eager_cfg = tiny_config(optim={"iterations": 2})
    eager = trainer.train(eager_cfg, tmp_path / "eager.pt", data)
    monkeypatch.setattr(torch, "compile", lambda module, **kw: _Broken(module))
    with caplog.at_level(logging.WARNING):
        fallback = trainer.train(tiny_config(optim={"iterations": 2}, runtime={"compile": True}),
                                 tmp_path / "fallback.pt", data)
    assert not fallback.compiled and not eager.compiled
    assert "torch.compile failed" in caplog.text and "simulated" in caplog.text
    assert fallback.last_losses == eager.last_losses
    a, b = torch.load(tmp_path / "eager.pt")["networks"], torch.load(tmp_path / "fallback.pt")["networks"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# Operators that make the host wait for the device: a value read back (.item(), bool(), int()), or an output
# whose size depends on the data (nonzero, boolean-mask indexing, unique, ...).
SYNC_OPS = {"_local_scalar_dense", "item", "is_nonzero", "equal", "nonzero", "masked_select", "unique",
            "_unique", "_unique2", "unique_consecutive", "unique_dim", "bincount", "repeat_interleave"}


class _SyncRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        flat = [*args, *(kwargs or {}).values()]
        indices = [i for a in flat if isinstance(a, list | tuple) for i in a]
        bool_index = name in ("index", "index_put", "index_put_") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)
        if name in SYNC_OPS or bool_index:
            self.found.append(name)
        return func(*args, **(kwargs or {}))


VARIANTS = {
    "proposed": {},
    "hung": {"objective": "hung"},
    "s4gan": {"objective": "s4gan"},
    "manual": {"latent": {"target": "manual", "groups": {"a": CLASSES[:1], "b": CLASSES[1:8], "c": CLASSES[8:]}}},
    "semantic-kl": {"latent": {"target": "semantic_kl"}},
    "ce-adv-labeled": {"loss": {"latent": False, "consistency": False, "adversarial": "labeled"}},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_an_iteration_never_waits_on_the_device(variant):
    cfg = tiny_config(**VARIANTS[variant])
    step, batch = step_and_batch(cfg)
    sgd, adam = make_optimizers(cfg, step.model, step.discriminator, fused=True)  # as on CUDA
    one_update(step, batch, 0, sgd, adam)  # optimiser state is created on the first step
    with _SyncRecorder() as recorder:
        one_update(step, batch, 1, sgd, adam)
    assert recorder.found == []
