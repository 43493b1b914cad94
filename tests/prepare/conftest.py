"""Fixtures for the data tests: small official-layout releases (the HTTP server is in tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from latentseg.prepare.mock_release import make_cityscapes_zips, make_sbd_tgz, make_voc_tar


@dataclass(frozen=True)
class VocIds:
    """Scaled-down VOC/SBD id lists with the overlaps of the real ones."""

    voc_train: list[str]
    voc_val: list[str]
    sbd_train: list[str]
    sbd_val: list[str]

    @property
    def aug_train(self) -> list[str]:
        return sorted((set(self.voc_train) | set(self.sbd_train) | set(self.sbd_val)) - set(self.voc_val))


def voc_ids() -> VocIds:
    voc_train = [f"2007_{i:06d}" for i in range(0, 24, 2)]  # 12
    voc_val = [f"2007_{i:06d}" for i in range(1, 16, 2)]  # 8
    sbd_only_train = [f"2008_{i:06d}" for i in range(10)]
    sbd_only_val = [f"2009_{i:06d}" for i in range(5)]
    # as in the real data, SBD's lists overlap both VOC train and VOC val
    sbd_train = sorted(sbd_only_train + voc_train[:6] + voc_val[:2])
    sbd_val = sorted(sbd_only_val + voc_train[6:8] + voc_val[2:4])
    return VocIds(voc_train, voc_val, sbd_train, sbd_val)


@pytest.fixture(scope="session")
def voc_release(tmp_path_factory) -> tuple[Path, Path, VocIds]:
    """(VOC tar, SBD tgz, ids), built once per session."""
    folder = tmp_path_factory.mktemp("voc_release")
    ids = voc_ids()
    tar = make_voc_tar(
        folder / "VOCtrainval_11-May-2012.tar",
        ids.voc_train,
        ids.voc_val,
        extra_image_ids=ids.sbd_train + ids.sbd_val,
    )
    tgz = make_sbd_tgz(folder / "benchmark.tgz", ids.sbd_train, ids.sbd_val)
    return tar, tgz, ids


@pytest.fixture(scope="session")
def cityscapes_release(tmp_path_factory) -> Path:
    """A folder with the two Cityscapes zips (train: 2 cities x 2, val: 1 x 2, test: 1 x 2)."""
    folder = tmp_path_factory.mktemp("cityscapes_release")
    make_cityscapes_zips(folder)
    return folder


@pytest.fixture(autouse=True)
def _no_source_env(monkeypatch) -> None:
    """Sources named by the developer's environment must not leak into tests."""
    for name in (
        "LATENTSEG_VOC_ROOT",
        "LATENTSEG_SBD_ROOT",
        "LATENTSEG_CITYSCAPES_ROOT",
        "CITYSCAPES_USERNAME",
        "CITYSCAPES_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
