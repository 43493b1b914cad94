"""A run's identity: what it computes, from what. A checkpoint is resumed, or (finished) reused, only by a run of
the same identity, so a finished run is kept through any change that cannot change its numbers and re-trained on
any change that can.

It holds

- the resolved configuration, less the settings that change how a run is executed but not what it computes
  (``EXECUTION_ONLY``: logs, checkpoints, processes);
- the code of the computation (``code_fingerprint``): the parsed source of the training loop and every module it
  imports (models, losses, the run's own method, data reading and augmentation, the step), less the helpers that
  only log, write files, pick a device or read checkpoints (``NOT_COMPUTATION``), and less the other methods of the
  registry (adding a method re-trains no run of another). Comments and docstrings do not count;
- the data: the prepared set's content fingerprint and the split's lists; and the initial weights' digest.

Evaluation is not part of it: a change to the evaluation re-evaluates finished runs and re-trains none.
"""

from __future__ import annotations

from pathlib import Path

from latentseg import methods
from latentseg.config import RunConfig, to_dict
from latentseg.data.layout import TrainData, samples_digest
from latentseg.train import checkpoint as ckpt
from latentseg.util.closure import NOT_COMPUTATION, fingerprint
from latentseg.util.files import file_digest

TRAINING_CODE = "latentseg.train.trainer"  # the loop; its import closure is the code a checkpoint is made with
__all__ = ["NOT_COMPUTATION", "TRAINING_CODE", "identity", "resumable_state", "resume_step"]
# Settings that change how a run is executed (logs, checkpoints, processes), never what it computes.
EXECUTION_ONLY = {"runtime": ("log_every", "checkpoint_every", "eval_every", "parallel_runs", "threads"),
                  "data": ("workers", "in_memory")}


def code_fingerprint(objective: str) -> str:
    """The fingerprint of the code of a run of method ``objective`` (the module's docstring)."""
    return fingerprint(TRAINING_CODE, NOT_COMPUTATION, plugins=False, also=(methods.module_of(objective),))


def identity(cfg: RunConfig, data: TrainData, init: Path | None) -> dict:
    """What a run computes from what (the module's docstring)."""
    doc = to_dict(cfg)
    for section, keys in EXECUTION_ONLY.items():
        doc[section] = {k: v for k, v in doc[section].items() if k not in keys}
    return {"config": doc, "code": code_fingerprint(cfg.objective), "data": data.meta.fingerprint,
            "labeled": samples_digest(data.labeled), "unlabeled": samples_digest(data.unlabeled),
            "init": None if init is None else file_digest(init)}


def resumable_state(path: str | Path, cfg: RunConfig, data: TrainData, init: Path | None) -> dict | None:
    """The checkpoint at ``path`` if it is one of this run (``identity``), else None."""
    path = Path(path)
    if not path.is_file():
        return None
    state = ckpt.load(path)
    return state if state.get("identity") == identity(cfg, data, init) else None


def resume_step(path: str | Path, cfg: RunConfig, data: TrainData, init: Path | None) -> int:
    """The step a run of ``cfg`` resumes from: that of a checkpoint of the same run, else 0."""
    state = resumable_state(path, cfg, data, init)
    return 0 if state is None else int(state["step"])
