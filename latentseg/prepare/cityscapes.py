"""Cityscapes (fine annotations): download, extract, convert label ids to the 19 train ids.

Sources, first that applies (``releases.find_release``): ``source`` (or ``$LATENTSEG_CITYSCAPES_ROOT``), a folder
holding either the extracted ``leftImg8bit/`` + ``gtFine/`` trees or the two release zips (checked against the
site's MD5s); the zips in ``raw_dir``; a download, through ``remotes`` (plain URLs: a mirror, the tests) or else
the official downloader of ``cityscapesscripts`` logged in with ``$CITYSCAPES_USERNAME`` / ``$CITYSCAPES_PASSWORD``
or the credentials an earlier ``csDownload`` stored.

Prepared folder (train and val; the test split has no public labels and is left out)::

    <out>/dataset.json, train.txt, val.txt
    <out>/leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png      # hard links to the raw files
    <out>/gtFine/{train,val}/<city>/<stem>_gtFine_labelIds.png (+ color, instanceIds, polygons)  # links
    <out>/gtFine/{train,val}/<city>/<stem>_gtFine_labelTrainIds.png  # written here: 0..18, 255 = ignore

``torchvision.datasets.Cityscapes(out, split="train", mode="fine", target_type="semantic")`` reads it
(its "semantic" target is the labelIds file); our lists point at the labelTrainIds files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from PIL import Image

from latentseg.data.layout import DatasetMeta, Sample, write_list, write_meta
from latentseg.datasets.cityscapes import CITYSCAPES_CLASSES, DATASET
from latentseg.prepare.download import DownloadError, OfflineError, Remote
from latentseg.prepare.parallel import link_or_copy, parallel_map, save_png
from latentseg.prepare.releases import Archive, Release, find_release
from latentseg.prepare.validate import DataError, check_prepared

log = logging.getLogger(__name__)

# The site's MD5s of the two packages (https://www.cityscapes-dataset.com/md5-sum/?packageID=<id>), the ones its
# downloader checks; the URLs need a logged-in session, which ``download_official`` opens.
CITYSCAPES_REMOTES = (
    Remote(("https://www.cityscapes-dataset.com/file-handling/?packageID=3",), "leftImg8bit_trainvaltest.zip",
           md5="0a6e97e94b616a514066c9e2adb0c97f"),  # 11 GB
    Remote(("https://www.cityscapes-dataset.com/file-handling/?packageID=1",), "gtFine_trainvaltest.zip",
           md5="4237c19de34c8a376e9ba46b495d6f66"),  # 241 MB
)
PACKAGES = tuple(r.filename for r in CITYSCAPES_REMOTES)
SPLITS = ("train", "val")
SOURCE_ENV = "LATENTSEG_CITYSCAPES_ROOT"
USER_ENV, PASSWORD_ENV = "CITYSCAPES_USERNAME", "CITYSCAPES_PASSWORD"
LOGIN_URL = "https://www.cityscapes-dataset.com/login/"
EXPECTED = {"train": 2975, "val": 500}  # the official release; other counts are logged, not refused

LABEL_IDS = frozenset(lab.id for lab in CS_LABELS if lab.id >= 0)


def train_id_table() -> np.ndarray:
    """(256,) uint8: train id of each label id; 255 for ignored ids and for values that are no label id."""
    table = np.full(256, 255, dtype=np.uint8)
    for lab in CS_LABELS:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < 255:
            table[lab.id] = lab.trainId
    return table


_TABLE = train_id_table()


def to_train_ids(label_ids: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    present = np.flatnonzero(np.bincount(label_ids.ravel().astype(np.int64), minlength=256))
    unknown = sorted(set(present.tolist()) - LABEL_IDS)
    if unknown:
        raise DataError(
            f"{path}: values {unknown[:10]} are no Cityscapes label id (0..33); "
            "is this a labelIds image of the official release?"
        )
    return _TABLE[label_ids]


def _is_tree(path: Path) -> bool:
    return all((path / top / split).is_dir() for top in ("leftImg8bit", "gtFine") for split in SPLITS)


def _stored_credentials() -> Path | None:
    """The credentials file an earlier interactive ``csDownload`` saved, if any."""
    from cityscapesscripts.download import downloader

    path = Path(downloader.appdirs.user_data_dir("cityscapesscripts", "cityscapes"), "credentials.json")
    return path if path.is_file() else None


def _login_with(user: str, password: str):
    """A ``requests`` session logged in to the Cityscapes site (what the official downloader needs)."""
    import requests

    session = requests.Session()
    try:
        session.get(LOGIN_URL, allow_redirects=False, timeout=60).raise_for_status()
        reply = session.post(
            LOGIN_URL,
            data={"username": user, "password": password, "submit": "Login"},
            allow_redirects=False,
            timeout=60,
        )
        reply.raise_for_status()
    except requests.ConnectionError as err:
        raise OfflineError(f"cannot reach {LOGIN_URL} ({err})") from err
    if reply.status_code != 302:  # the site redirects after a successful login
        raise DownloadError(f"Cityscapes rejected the login of {user!r}: check {USER_ENV} / {PASSWORD_ENV}")
    return session


def _session(raw_dir: Path, packages: Sequence[str]):
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    try:
        if user and password:
            return _login_with(user, password)
        if _stored_credentials() is not None:
            from cityscapesscripts.download import downloader

            return downloader.login()  # reads the stored file; never prompts when it exists
        raise DownloadError(
            f"Cityscapes needs an account (https://www.cityscapes-dataset.com/register/): set {USER_ENV} "
            f"and {PASSWORD_ENV}"
        )
    except DownloadError as err:
        raise type(err)(
            f"{err}; or download {', '.join(packages)} by hand and place them in {raw_dir}, "
            f"or set ${SOURCE_ENV} to a folder with the extracted leftImg8bit/ and gtFine/"
        ) from err


def download_official(raw_dir: str | Path, packages: Sequence[str] = PACKAGES) -> None:
    """Download the packages with cityscapesscripts' own downloader (it checks the site's MD5 of each).

    It writes to its final name as it goes, so we point it at ``raw_dir/.download`` and move each zip
    into ``raw_dir`` once it is complete and verified; an interrupted download resumes there.
    """
    from cityscapesscripts.download import downloader

    raw_dir = Path(raw_dir)
    staging = raw_dir / ".download"
    staging.mkdir(parents=True, exist_ok=True)
    session = _session(raw_dir, packages)
    for name in packages:
        if (raw_dir / name).is_file():
            continue
        try:
            downloader.download_packages(
                session=session, package_names=[name], destination_path=str(staging), resume=True
            )
        except Exception as err:  # the downloader raises bare Exceptions
            raise DownloadError(
                f"official download of {name} failed ({err}); re-run to resume, "
                f"or place {name} at {raw_dir / name}"
            ) from err
        os.replace(staging / name, raw_dir / name)


CITYSCAPES_RELEASE = Release(
    name="Cityscapes release",
    # one extraction folder per zip (each also holds a README and license.txt at its top), joined in trainvaltest/
    archives=tuple(
        Archive(r, tuple(f"{r.filename.split('_')[0]}/{split}" for split in SPLITS), Path(r.filename).stem)
        for r in CITYSCAPES_REMOTES
    ),
    env=SOURCE_ENV,
    is_root=_is_tree,
    layout="leftImg8bit/ and gtFine/, each with train/ and val/",
    joined="trainvaltest",
    downloader=download_official,  # verified against the site's MD5 by the downloader
    page="https://www.cityscapes-dataset.com/downloads/",
)


def _prepare_one(job: tuple[str, str, list[tuple[str, str]], str, str]) -> None:
    image_src, image_dst, gt_links, label_ids, train_ids = job
    link_or_copy(image_src, image_dst)
    for src, dst in gt_links:
        link_or_copy(src, dst)
    if os.path.exists(train_ids):
        return
    try:
        with Image.open(label_ids) as img:
            values = np.asarray(img)
    except OSError as err:
        raise DataError(
            f"{label_ids} cannot be read ({err}); delete the extracted gtFine folder and re-run"
        ) from err
    save_png(Image.fromarray(to_train_ids(values, label_ids)), train_ids)


RELEASE_KEYS = ("source", "verify_checksum")  # profiles.<p>.datasets.cityscapes


def prepare_release(out_dir: str | Path, raw_dir: str | Path, release: dict) -> DatasetMeta:
    """Stage ``prepare``'s entry: ``release`` holds the profile's ``RELEASE_KEYS``."""
    return prepare_cityscapes(out_dir, raw_dir, source=release.get("source"),
                              verify_checksum=release.get("verify_checksum", True))


def prepare_cityscapes(
    out_dir: str | Path,
    raw_dir: str | Path,
    *,
    source: str | Path | None = None,
    download: bool = True,
    remotes: Sequence[Remote] | None = None,
    workers: int | None = None,
    check: bool = True,
    verify_checksum: bool = True,
) -> DatasetMeta:
    """Prepare Cityscapes train (2,975) and val (500) in ``out_dir``; downloads/extractions in ``raw_dir``.

    ``remotes`` replace the official packages (by file name); ``verify_checksum=False`` accepts zips of yours
    whose MD5 is not the official one (``releases.find_release``)."""
    out_dir, raw_dir = Path(out_dir), Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    release = CITYSCAPES_RELEASE.with_remotes({r.filename: r for r in remotes or ()})
    root = find_release(release, raw_dir, source, download=download, verify_checksum=verify_checksum)
    images_root, labels_root = root / "leftImg8bit", root / "gtFine"
    jobs, lists = [], {}
    for split in SPLITS:
        image_dir, gt_dir = images_root / split, labels_root / split
        samples = []
        for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
            city, stem = image.parent.name, image.name[: -len("_leftImg8bit.png")]
            label_ids = gt_dir / city / f"{stem}_gtFine_labelIds.png"
            if not label_ids.is_file():
                raise FileNotFoundError(
                    f"{image} has no annotation {label_ids}; the gtFine release is incomplete"
                )
            rel_image = f"leftImg8bit/{split}/{city}/{image.name}"
            rel_mask = f"gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png"
            gt_links = [
                (str(f), str(out_dir / "gtFine" / split / city / f.name))
                for f in sorted((gt_dir / city).glob(f"{stem}_gtFine_*"))
                if not f.name.endswith("_labelTrainIds.png")
            ]  # ours replaces any the user made
            jobs.append(
                (str(image), str(out_dir / rel_image), gt_links, str(label_ids), str(out_dir / rel_mask))
            )
            (out_dir / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
            (out_dir / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
            samples.append(Sample(rel_image, rel_mask))
        if not samples:
            raise FileNotFoundError(f"no *_leftImg8bit.png images under {image_dir}/<city>/")
        if len(samples) != EXPECTED[split]:
            log.warning(
                "Cityscapes %s: %d images (the official release has %d)", split, len(samples), EXPECTED[split]
            )
        lists[split] = samples
    parallel_map(_prepare_one, jobs, workers=workers, desc="Cityscapes")
    write_list(out_dir / "train.txt", lists["train"])
    write_list(out_dir / "val.txt", lists["val"])
    meta = DatasetMeta(DATASET.name, list(CITYSCAPES_CLASSES), 255, len(lists["train"]), len(lists["val"]))
    meta = write_meta(out_dir, meta)
    if check:
        check_prepared(out_dir, workers=workers)
    return meta
