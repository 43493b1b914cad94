"""The session's one-machine Slurm cluster (``slurm_cluster.SlurmCluster``), for the tests marked ``slurm``.

Installs Debian's packages if a daemon is missing; where that cannot be done, the tests are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.cluster.slurm_cluster import SlurmCluster, install_packages


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    reason = install_packages()
    if reason is not None:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=min(2, os.cpu_count() or 1) or 1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
