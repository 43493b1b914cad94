from __future__ import annotations

import io
import os
import re
import tarfile
import zipfile

import pytest

from latentseg.prepare.archives import MARKER, UnsafeArchiveError, extract, is_extracted


def _tar(path, members: dict[str, bytes], links: dict[str, str] | None = None):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return path


def test_extracts_only_the_wanted_prefixes_and_skips_when_done(tmp_path):
    archive = _tar(
        tmp_path / "a.tgz", {"top/keep/x.txt": b"x", "top/skip/y.txt": b"y", "top/keepnot.txt": b"z"}
    )
    dest = extract(archive, tmp_path / "out", prefixes=["top/keep"])
    assert (dest / "top/keep/x.txt").read_bytes() == b"x"
    assert not (dest / "top/skip").exists() and not (dest / "top/keepnot.txt").exists()
    assert is_extracted(dest)
    (dest / "top/keep/x.txt").unlink()  # a second call trusts the marker and does nothing
    extract(archive, tmp_path / "out", prefixes=["top/keep"])
    assert not (dest / "top/keep/x.txt").exists()


def test_changed_archive_is_extracted_again(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {"d/x.txt": b"old"})
    extract(archive, tmp_path / "out")
    _tar(archive, {"d/x.txt": b"new, longer"})
    assert (extract(archive, tmp_path / "out") / "d/x.txt").read_bytes() == b"new, longer"


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"])
def test_tar_path_traversal_is_refused(tmp_path, name):
    archive = _tar(tmp_path / "a.tgz", {"ok/fine.txt": b"1", name: b"evil"})
    with pytest.raises(UnsafeArchiveError, match="outside the extraction folder"):
        extract(archive, tmp_path / "sub" / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub" / "evil.txt").exists()
    assert not (tmp_path / "sub" / "out").exists()  # nothing half-extracted is left
    assert [p.name for p in (tmp_path / "sub").iterdir()] == []


def test_tar_symlink_is_refused(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {"d/x.txt": b"1"}, links={"d/link": "/etc/passwd"})
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract(archive, tmp_path / "out")


def test_zip_path_traversal_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "1")
        zf.writestr("../../evil.txt", "evil")
    with pytest.raises(UnsafeArchiveError, match=re.escape("evil.txt")):
        extract(archive, tmp_path / "x" / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_not_an_archive(tmp_path):
    path = tmp_path / "a.tar"
    path.write_bytes(b"<html>login page</html>")
    with pytest.raises(ValueError, match="neither a tar nor a zip"):
        extract(path, tmp_path / "out")


def test_interrupted_extraction_leaves_no_marker(tmp_path, monkeypatch):
    archive = _tar(tmp_path / "a.tgz", {"d/x.txt": b"1", "d/y.txt": b"2"})
    calls = []
    real = tarfile.TarFile.extract

    def failing(self, member, *args, **kwargs):
        calls.append(member.name)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(self, member, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", failing)
    with pytest.raises(OSError, match="disk full"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / MARKER).exists()
    assert os.listdir(tmp_path) == ["a.tgz"]
