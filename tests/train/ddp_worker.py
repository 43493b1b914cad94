"""One process of the two-process training run of ``test_ddp.py``; started by torchrun (gloo, CPU).

    torchrun --standalone --nproc_per_node 2 tests/train/ddp_worker.py <data> <config.json> <out> <init.pt>

Trains with ``latentseg.train.trainer.train`` exactly as the stage does, then writes what this rank holds
(co-occurrence matrix, both networks' weights, the losses rank 0 logged) to ``<out>/rank<r>.pt``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from latentseg.data.layout import TrainData, read_list, read_meta
from latentseg.methods import run_config
from latentseg.train import distributed, trainer
from latentseg.train.checkpoint import unwrap


def held_state(step_module) -> dict:
    model = unwrap(step_module.model)
    return {"matrix": step_module.objective.cooccurrence.matrix.clone(),
            "model": {k: v.clone() for k, v in model.state_dict().items()},
            "disc": {k: v.clone() for k, v in step_module.discriminator.state_dict().items()}}


def main() -> None:
    data_root, config, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    init = Path(sys.argv[4])
    torch.set_num_threads(1)
    cfg = run_config(json.loads(config.read_text()))
    procs = distributed.init_from_env(cfg.runtime.device)
    assert procs.world == 2 and torch.distributed.get_backend() == "gloo"
    captured, logged = {}, {}
    update = trainer.one_update

    def spy(step_module, *args, **kwargs):  # keeps a handle on the step module the trainer built
        captured["step"] = step_module
        return update(step_module, *args, **kwargs)

    trainer.one_update = spy
    train = read_list(data_root / "train.txt")
    data = TrainData(data_root, read_meta(data_root), train[:8], train[8:])
    summary = trainer.train(cfg, out / "checkpoint.pt", data, init, lambda m, s: logged.update(m))
    state = held_state(captured["step"])
    state.update(logged=logged, last=summary.last_losses, rank=procs.rank)
    torch.save(state, out / f"rank{procs.rank}.pt")
    distributed.barrier()
    distributed.shutdown()


if __name__ == "__main__":
    main()
