"""The ``cluster:`` section of ``params.yaml``: how a run is submitted to Slurm, never what it computes.

Every key may be overridden from the environment, ``LATENTSEG_CLUSTER_<KEY>`` (``LATENTSEG_CLUSTER_PARTITION=gpu``,
``LATENTSEG_CLUSTER_GPUS_PER_RUN=4``), the value read as YAML (``null``, numbers, lists), so a site's values need not
be committed. The section enters no run's identity and no resolved configuration: changing it re-trains nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Annotated, Any

import yaml
from pydantic import Field

from latentseg.config import STRICT, NonNegativeInt, PositiveInt, SettingsError, from_dict

ENV_PREFIX = "LATENTSEG_CLUSTER_"


@dataclass(frozen=True)
class ClusterConfig:
    __pydantic_config__ = STRICT
    partition: str | None  # sbatch --partition; null: the cluster's default
    gpus_per_run: NonNegativeInt  # GPUs of one run, over all its nodes; 0: a CPU run
    nodes: PositiveInt  # nodes of one run
    tasks_per_node: PositiveInt | None  # processes per node; null: one per GPU (1 without GPUs)
    time_min: PositiveInt  # time limit of one job, minutes; a run that needs longer requeues itself
    cpus_per_task: PositiveInt
    mem_gb: PositiveInt | None  # memory per node; null: the partition's default
    slurm_additional_parameters: dict[str, Any]  # further sbatch options, {"account": "x", "qos": "high"}
    setup: list[str]  # shell lines run before the job's tasks (module load ..., source venv/bin/activate)
    log_folder: str  # submitit's scripts, pickles and logs, and the record of what was submitted
    max_requeues: NonNegativeInt  # a run requeued more often (preemption, time limit, node failure) gives up
    signal_delay_s: Annotated[int, Field(ge=10)]  # Slurm signals a job this long before its time limit
    array_parallelism: PositiveInt  # jobs of the array running at once

    @property
    def gpus_per_node(self) -> int:
        return self.gpus_per_run // self.nodes

    @property
    def tasks(self) -> int:
        """The processes of one run, each on a GPU of its own (where there are GPUs)."""
        per_node = self.tasks_per_node or max(1, self.gpus_per_node)
        return per_node * self.nodes


def cluster_settings(params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> ClusterConfig:
    """``params["cluster"]`` with the environment's overrides, checked (``SettingsError`` naming each key)."""
    environ = os.environ if environ is None else environ
    if "cluster" not in params:
        raise SettingsError([("cluster", None, "missing: latentseg submit reads its Slurm settings there")])
    values = dict(params["cluster"] or {})
    names = {f.name for f in fields(ClusterConfig)}
    for key, text in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key.removeprefix(ENV_PREFIX).lower()
            if name not in names:
                raise SettingsError([(key, text, f"unknown cluster setting; one of {', '.join(sorted(names))}")])
            values[name] = yaml.safe_load(text)
    cfg = from_dict(ClusterConfig, values, "cluster.")
    problems = []
    if cfg.gpus_per_run % cfg.nodes:
        problems.append(("cluster.gpus_per_run", cfg.gpus_per_run, f"must be a multiple of nodes ({cfg.nodes})"))
    if cfg.gpus_per_node and cfg.tasks_per_node not in (None, cfg.gpus_per_node):
        problems.append(("cluster.tasks_per_node", cfg.tasks_per_node,
                         f"must be null or the GPUs of a node ({cfg.gpus_per_node}): one process per GPU"))
    if problems:
        raise SettingsError(problems)
    return cfg


def executor_parameters(cfg: ClusterConfig, name: str) -> dict[str, Any]:
    """The ``submitit.AutoExecutor.update_parameters`` of one job array named ``name``."""
    params: dict[str, Any] = {
        "name": name, "timeout_min": cfg.time_min, "nodes": cfg.nodes, "tasks_per_node": cfg.tasks // cfg.nodes,
        "cpus_per_task": cfg.cpus_per_task, "slurm_signal_delay_s": cfg.signal_delay_s,
        "slurm_array_parallelism": cfg.array_parallelism,
        "slurm_additional_parameters": dict(cfg.slurm_additional_parameters),
    }
    if cfg.gpus_per_run:
        params["gpus_per_node"] = cfg.gpus_per_node
    if cfg.partition:
        params["slurm_partition"] = cfg.partition
    if cfg.mem_gb:
        params["mem_gb"] = cfg.mem_gb
    if cfg.setup:
        params["slurm_setup"] = list(cfg.setup)
    return params
