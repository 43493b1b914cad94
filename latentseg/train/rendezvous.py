"""One run on the tasks of a Slurm job step (``srun -n N``): the process group described by Slurm's environment.

torchrun describes a group in ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, which
``train.distributed.init_from_env`` joins. ``srun`` describes its tasks in ``SLURM_PROCID``, ``SLURM_NTASKS``,
``SLURM_LOCALID`` and ``SLURM_JOB_NODELIST``; ``adopt_slurm_rendezvous`` writes the first from the second: rank 0 is
on the first host of the node list, and the port is derived from the job id, so two jobs sharing a node differ.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping

PORT_BASE, PORT_RANGE = 20000, 20000  # MASTER_PORT = PORT_BASE + job id % PORT_RANGE


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``gpu[03-05,09],cpu1`` -> ``gpu03``; ``node7`` -> ``node7``."""
    head = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if head is None or not head.group(1):
        raise ValueError(f"cannot read the Slurm node list {nodelist!r} (SLURM_JOB_NODELIST)")
    prefix, ranges = head.group(1), head.group(2)
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def slurm_rendezvous(env: Mapping[str, str]) -> dict[str, str] | None:
    """torchrun's variables for the task group ``env`` describes; None outside a Slurm step of several tasks."""
    if int(env.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in env:
        return None
    job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if job is None or nodelist is None:
        raise ValueError("a Slurm step of several tasks without SLURM_JOB_ID or SLURM_JOB_NODELIST: "
                         "start the tasks with srun inside an allocation (sbatch, salloc)")
    return {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": env["SLURM_NTASKS"],
            "LOCAL_RANK": env.get("SLURM_LOCALID", "0"), "MASTER_ADDR": first_host(nodelist),
            "MASTER_PORT": str(PORT_BASE + int(job) % PORT_RANGE)}


def adopt_slurm_rendezvous(env: MutableMapping[str, str] | None = None) -> bool:
    """Describe Slurm's task group in torchrun's variables (those torchrun has set win); whether there is one."""
    env = os.environ if env is None else env
    found = slurm_rendezvous(env)
    if found is None or ("LOCAL_WORLD_SIZE" in env and "TORCHELASTIC_RUN_ID" in env):  # torchrun's own group
        return False
    env.update(found)
    return True
