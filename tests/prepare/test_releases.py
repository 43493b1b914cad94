"""find_release on a made-up release of two zips (the data set tests cover the real declarations)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from latentseg.prepare.download import ChecksumError, Remote, file_digest
from latentseg.prepare.releases import Archive, Release, find_release

NAMES = ("images.zip", "labels.zip")


def _zip(path: Path, top: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{top}/a.txt", top)
        archive.writestr("README", "at the top of both zips, as Cityscapes' are")
    return path


def _is_root(path: Path) -> bool:
    return (path / "images/a.txt").is_file() and (path / "labels/a.txt").is_file()


def _release(remotes: list[Remote], **kwargs) -> Release:
    archives = tuple(Archive(r, (r.filename.removesuffix(".zip"),), r.filename.removesuffix(".zip") + "_x")
                     for r in remotes)
    return Release(name="demo release", archives=archives, env="DEMO_RELEASE_ROOT", is_root=_is_root,
                   layout="images/ and labels/", joined="both", **kwargs)


@pytest.fixture
def zips(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "mine"
    folder.mkdir()
    return {name: _zip(folder / name, name.removesuffix(".zip")) for name in NAMES}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("DEMO_RELEASE_ROOT", raising=False)


def _official(zips: dict[str, Path]) -> list[Remote]:
    return [Remote((f"https://example.org/{n}",), n, md5=file_digest(p, "md5")) for n, p in zips.items()]


def test_download_extract_join_then_nothing_more(zips, served, tmp_path):
    for path in zips.values():
        (served.state.root / path.name).write_bytes(path.read_bytes())
    release = _release([served.remote(n) for n in NAMES])
    root = find_release(release, tmp_path / "raw", download=True)
    assert root == tmp_path / "raw/both" and (root / "images").is_symlink() and _is_root(root)
    requests = len(served.state.requests)
    for name in NAMES:  # an extraction whose archive was deleted since (to save space) still counts
        (tmp_path / "raw" / name).unlink()
    assert find_release(release, tmp_path / "raw", download=False) == root
    assert len(served.state.requests) == requests


def test_a_folder_holding_the_archives_is_a_copy(zips, tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_RELEASE_ROOT", str(zips[NAMES[0]].parent))
    root = find_release(_release(_official(zips)), tmp_path / "raw", download=False)
    assert _is_root(root) and not (tmp_path / "raw" / NAMES[0]).exists()  # extracted from where they are
    assert find_release(_release(_official(zips)), tmp_path / "other", root) == root  # an extracted copy: as it is


def test_a_copy_with_another_checksum_is_refused_unless_asked(zips, tmp_path):
    release = _release([Remote(r.urls, r.filename, md5="0" * 32) for r in _official(zips)])
    folder = zips[NAMES[0]].parent
    with pytest.raises(ChecksumError, match=re.escape(str(zips[NAMES[0]]))):
        find_release(release, tmp_path / "raw", folder)
    assert _is_root(find_release(release, tmp_path / "raw", folder, verify_checksum=False))


def test_own_downloader_for_official_archives_plain_urls_for_mirrors(zips, served, tmp_path):
    (served.state.root / "labels.zip").write_bytes(zips["labels.zip"].read_bytes())
    fetched = []

    def login_and_fetch(raw_dir: Path, names):
        fetched.extend(names)
        for name in names:
            (raw_dir / name).write_bytes(zips[name].read_bytes())

    release = _release(_official(zips), downloader=login_and_fetch)
    mirrored = release.with_remotes({"labels.zip": served.remote("labels.zip")})
    assert _is_root(find_release(mirrored, tmp_path / "raw"))
    assert fetched == ["images.zip"] and served.count("labels.zip") == 1
    with pytest.raises(ValueError, match=re.escape("other.zip")):
        release.with_remotes({"other.zip": served.remote("labels.zip")})


def test_not_found_names_each_file_its_checksum_and_where_to_get_it(zips, tmp_path):
    release = _release(_official(zips), page="https://example.org/downloads")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/images.zip").write_bytes(zips["images.zip"].read_bytes())
    with pytest.raises(FileNotFoundError) as err:
        find_release(release, tmp_path / "raw", download=False)
    message = str(err.value)
    assert str(tmp_path / "raw/labels.zip") in message and "images.zip" not in message
    assert f"md5 {file_digest(zips['labels.zip'], 'md5')}" in message and "https://example.org/downloads" in message
    assert "DEMO_RELEASE_ROOT" in message


def test_bad_copies_are_named(zips, tmp_path):
    release = _release(_official(zips))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_release(release, tmp_path / "raw", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="is a file: name the folder"):
        find_release(release, tmp_path / "raw", zips["images.zip"])
    with pytest.raises(FileNotFoundError, match=r"holds neither images/ and labels/ .* nor the archive"):
        find_release(release, tmp_path / "raw", tmp_path)
    with pytest.raises(ValueError, match="no archive of the demo release is known"):
        find_release(_release([]), tmp_path / "raw")
