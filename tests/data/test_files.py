"""The data directory, and fetching a missing file with checksum verification."""

from __future__ import annotations

import hashlib
import io

import pytest

from hypermaml import download as files_module  # where the files are fetched
from hypermaml.data import DataError, data_dir
from hypermaml.data.files import RemoteFile, fetch
from tests.conftest import files_under

# ---------------------------------------------------------------- data directory


def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HYPERMAML_DATA", raising=False)
    assert data_dir() == tmp_path / "home" / ".cache" / "hypermaml"
    monkeypatch.setenv("HYPERMAML_DATA", "")
    assert data_dir() == tmp_path / "home" / ".cache" / "hypermaml"
    monkeypatch.setenv("HYPERMAML_DATA", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_dir(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert data_dir("~/mine") == tmp_path / "home" / "mine"
    monkeypatch.setenv("HYPERMAML_DATA", "~/fromenv")
    assert data_dir() == tmp_path / "home" / "fromenv"


# ---------------------------------------------------------------- fetch


class FakeResponse(io.BytesIO):
    """A urlopen response: a readable binary stream and a context manager."""


def fake_urlopen(payload: bytes, calls: list[str], fail_after: int | None = None):
    def urlopen(url, *args, **kwargs):
        calls.append(url)
        if fail_after is None:
            return FakeResponse(payload)

        class Broken(FakeResponse):
            def read(self, size=-1):
                if self.tell() >= fail_after:
                    raise OSError("connection reset (test)")
                return super().read(min(size if size > 0 else fail_after, fail_after))

        return Broken(payload)

    return urlopen


PAYLOAD = b"some file content\n" * 1000


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_fetch_with_right_checksum_puts_the_file_in_place(tmp_path, monkeypatch, algorithm):
    calls: list[str] = []
    monkeypatch.setattr(files_module.urllib.request, "urlopen", fake_urlopen(PAYLOAD, calls))
    digest = hashlib.new(algorithm, PAYLOAD).hexdigest()
    url = "https://example.invalid/file.bin"
    remote = RemoteFile("sub/dir/file.bin", url, f"{algorithm}:{digest}")
    path = fetch(remote, tmp_path)
    assert path == tmp_path / "sub" / "dir" / "file.bin"
    assert path.read_bytes() == PAYLOAD
    assert calls == ["https://example.invalid/file.bin"]
    assert files_under(tmp_path) == [path]  # no temporary file left over
    # a file in place is not downloaded again
    assert fetch(remote, tmp_path) == path and len(calls) == 1


def test_fetch_with_wrong_checksum_leaves_no_file(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(files_module.urllib.request, "urlopen", fake_urlopen(PAYLOAD, calls))
    expected = hashlib.sha256(b"the real content").hexdigest()
    remote = RemoteFile("sub/file.bin", "https://example.invalid/file.bin", f"sha256:{expected}")
    with pytest.raises(DataError) as info:
        fetch(remote, tmp_path)
    message = str(info.value)
    assert expected in message and str(tmp_path / "sub" / "file.bin") in message
    assert not (tmp_path / "sub" / "file.bin").exists()
    assert files_under(tmp_path) == []
    assert calls


def test_fetch_without_published_checksum_accepts_the_download(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(files_module.urllib.request, "urlopen", fake_urlopen(PAYLOAD, calls))
    path = fetch(RemoteFile("f.zip", "https://example.invalid/f.zip", None), tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_fetch_interrupted_download_leaves_no_file(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(
        files_module.urllib.request, "urlopen", fake_urlopen(PAYLOAD, calls, fail_after=100)
    )
    remote = RemoteFile("sub/file.bin", "https://example.invalid/file.bin", None)
    with pytest.raises(DataError) as info:
        fetch(remote, tmp_path)
    assert str(tmp_path / "sub" / "file.bin") in str(info.value)
    assert files_under(tmp_path) == []
