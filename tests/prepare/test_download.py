from __future__ import annotations

import hashlib
import os
import re
import time

import pytest

from latentseg.prepare.download import ChecksumError, DownloadError, OfflineError, Remote, fetch, verify

PAYLOAD = os.urandom(300_000) + b"end"  # several chunks of the server's writes
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
FAST = {"backoff": 0.01, "progress": False}


@pytest.fixture
def payload_server(served):
    (served.state.root / "file.bin").write_bytes(PAYLOAD)
    return served


def test_download_verifies_and_renames(payload_server, tmp_path):
    dest = tmp_path / "out" / "file.bin"
    assert fetch(payload_server.url("file.bin"), dest, md5=MD5, sha256=SHA256, **FAST) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("file.bin.part").exists()


def test_existing_verified_file_is_not_downloaded_again(payload_server, tmp_path):
    dest = tmp_path / "file.bin"
    fetch(payload_server.url("file.bin"), dest, md5=MD5, **FAST)
    fetch(payload_server.url("file.bin"), dest, md5=MD5, **FAST)
    assert payload_server.count("file.bin") == 1


def test_resumes_after_the_connection_drops(payload_server, tmp_path):
    payload_server.state.drop_once.add("file.bin")
    dest = tmp_path / "file.bin"
    fetch(payload_server.url("file.bin"), dest, md5=MD5, **FAST)
    assert dest.read_bytes() == PAYLOAD
    (_, first_range), (_, second_range) = payload_server.state.requests
    assert first_range is None
    offset = int(second_range.removeprefix("bytes=").rstrip("-"))
    assert 0 < offset < len(PAYLOAD)  # the second request continued where the first broke


def test_resumes_a_part_file_left_by_an_earlier_run(payload_server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.with_name("file.bin.part").write_bytes(PAYLOAD[:1000])
    fetch(payload_server.url("file.bin"), dest, md5=MD5, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert payload_server.state.requests == [("file.bin", "bytes=1000-")]


def test_server_ignoring_range_restarts_from_zero(payload_server, tmp_path):
    payload_server.state.ignore_range.add("file.bin")
    dest = tmp_path / "file.bin"
    dest.with_name("file.bin.part").write_bytes(PAYLOAD[:1000])
    fetch(payload_server.url("file.bin"), dest, md5=MD5, **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_stale_part_file_is_discarded_and_download_restarted(payload_server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.with_name("file.bin.part").write_bytes(b"x" * 1000)  # not a prefix of the file
    fetch(payload_server.url("file.bin"), dest, md5=MD5, **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_transient_server_errors_are_retried(payload_server, tmp_path):
    payload_server.state.fail_status["file.bin"] = [503, 500]
    dest = tmp_path / "file.bin"
    fetch(payload_server.url("file.bin"), dest, md5=MD5, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert payload_server.count("file.bin") == 3


def test_gives_up_after_the_retries(payload_server, tmp_path):
    payload_server.state.fail_status["file.bin"] = [503] * 10
    with pytest.raises(DownloadError, match="gave up after 3 attempts"):
        fetch(payload_server.url("file.bin"), tmp_path / "file.bin", md5=MD5, retries=2, **FAST)


def test_not_found_is_not_retried(payload_server, tmp_path):
    with pytest.raises(DownloadError, match="404") as err:
        fetch(payload_server.url("missing.bin"), tmp_path / "missing.bin", md5=MD5, **FAST)
    assert payload_server.count("missing.bin") == 1
    assert str(tmp_path / "missing.bin") in str(err.value)  # where to place it by hand


def test_checksum_mismatch_of_our_download_removes_only_the_part_file(payload_server, tmp_path):
    dest = tmp_path / "file.bin"
    wrong = "0" * 32
    with pytest.raises(ChecksumError) as err:
        fetch(payload_server.url("file.bin"), dest, md5=wrong, **FAST)
    message = str(err.value)
    assert wrong in message and MD5 in message and payload_server.url("file.bin") in message
    assert not dest.exists() and not dest.with_name("file.bin.part").exists()


def test_checksum_mismatch_of_a_hand_placed_file_keeps_it(payload_server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"what the user put there")
    actual = hashlib.md5(b"what the user put there").hexdigest()
    with pytest.raises(ChecksumError) as err:
        fetch(payload_server.url("file.bin"), dest, md5=MD5, **FAST)
    message = str(err.value)
    assert str(dest) in message and MD5 in message and actual in message
    assert dest.read_bytes() == b"what the user put there"
    assert payload_server.count("file.bin") == 0


def test_offline_fails_at_once_with_instructions(refused_url, tmp_path):
    dest = tmp_path / "file.bin"
    start = time.perf_counter()
    with pytest.raises(OfflineError) as err:
        fetch(refused_url, dest, md5=MD5, backoff=5.0, progress=False)  # back-off would take > 1 min
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert refused_url in message and str(dest.resolve()) in message and MD5 in message


def test_dns_failure_is_offline(tmp_path):
    url = "http://no-such-host.invalid/file.bin"  # .invalid never resolves (RFC 2606)
    with pytest.raises(OfflineError, match=re.escape("no-such-host.invalid")):
        fetch(url, tmp_path / "file.bin", md5=MD5, backoff=5.0, progress=False)


def test_second_mirror_is_used_when_the_first_is_down(payload_server, refused_url, tmp_path):
    remote = Remote((refused_url, payload_server.url("file.bin")), "file.bin", md5=MD5)
    assert remote.fetch(tmp_path, **FAST).read_bytes() == PAYLOAD


def test_verify(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert verify(path, md5=MD5, sha256=SHA256) == path
    assert verify(path, md5=MD5.upper()) == path
    with pytest.raises(ChecksumError, match="sha256"):
        verify(path, sha256="f" * 64)
    with pytest.raises(FileNotFoundError):
        verify(tmp_path / "missing", md5=MD5)


def test_a_checksum_prefix_verifies_like_the_full_digest(payload_server, tmp_path):
    """torch hub names files by the first 8 hex digits of their SHA-256 (resnet101-63fe2227.pth)."""
    dest = tmp_path / "file.bin"
    fetch(payload_server.url("file.bin"), dest, sha256=SHA256[:8], **FAST)
    assert verify(dest, sha256=SHA256[:8].upper()) == dest
    with pytest.raises(ChecksumError, match="expected 00000000"):
        verify(dest, sha256="00000000")
    with pytest.raises(ValueError, match="too short"):
        verify(dest, sha256=SHA256[:4])
