"""The decode-once image cache is never silently wrong: reused only while the source listing and
the settings are unchanged, written atomically (a killed or failed build leaves nothing that
passes for valid), unreadable images named or skipped with a warning but never zero images, and
a cache that cannot be written only warns. All on tiny generated image folders."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

import hypermaml.data.image_cache as image_cache
from hypermaml.data import DataError, SkippedImagesWarning
from hypermaml.data.cache import CacheWarning
from hypermaml.data.image_cache import (
    CacheSettings,
    ImageFolderSource,
    cache_state,
    load_or_build,
    slot_path,
)
from tests.data.image_fixtures import close, colour, decoded_colour, write_image

SETTINGS = CacheSettings(16)


def make_source(root: Path, classes: int = 3, per_class: int = 4) -> ImageFolderSource:
    files = []
    for c in range(classes):
        names = []
        for j in range(per_class):
            write_image(root / f"c{c}" / f"{j}.png", 10 * c + j)
            names.append(f"c{c}/{j}.png")
        files.append(tuple(names))
    return ImageFolderSource(
        "test", root, tuple(f"c{c}" for c in range(classes)), tuple(files), f"images at {root}"
    )


@pytest.fixture
def decodes(monkeypatch) -> list[int]:
    """The number of images of each decoding (a cache miss)."""
    calls: list[int] = []
    real = image_cache.decode_into

    def counting(out, paths, *args, **kwargs):
        calls.append(len(paths))
        return real(out, paths, *args, **kwargs)

    monkeypatch.setattr(image_cache, "decode_into", counting)
    return calls


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_cache_is_memory_mapped_and_reused_while_nothing_changes(tmp_path, cache_folder, decodes):
    source = make_source(tmp_path / "imgs")
    first = load_or_build(source, SETTINGS)
    assert first.counts == [4, 4, 4] and first.images.shape == (12, 3, 16, 16)
    assert close(decoded_colour(first.images[5]), colour(11))
    second = load_or_build(source, SETTINGS)
    assert decodes == [12] and np.array_equal(first.images.numpy(), second.images.numpy())
    assert isinstance(second.images.numpy().base, np.memmap) or second.path is not None
    names = _files(cache_folder)
    assert len(names) == 2 and names[0].endswith(".json") is not names[1].endswith(".json")
    assert cache_state(source, SETTINGS) == "present"


@pytest.mark.parametrize("change", ["content", "size_setting", "channels", "ratio", "decoder"])
def test_a_changed_file_or_setting_rebuilds(tmp_path, cache_folder, decodes, monkeypatch, change):
    source = make_source(tmp_path / "imgs")
    load_or_build(source, SETTINGS)
    settings = SETTINGS
    if change == "content":
        path = tmp_path / "imgs" / "c1" / "2.png"
        write_image(path, 99, size=(13, 11))
        os.utime(path, ns=(1, 1))  # even with an old mtime, the size differs
        assert cache_state(source, SETTINGS) == "stale"
    elif change == "size_setting":
        settings = CacheSettings(12)
    elif change == "channels":
        settings = CacheSettings(16, channels=1)
    elif change == "ratio":
        settings = CacheSettings(16, resize_ratio=1)
    else:
        monkeypatch.setattr(image_cache, "DECODER_VERSION", 99)
    rebuilt = load_or_build(source, settings)
    assert decodes == [12, 12]
    if change == "content":
        assert close(decoded_colour(rebuilt.images[6]), colour(99))
        data_files = [n for n in _files(cache_folder) if n.endswith(".npy")]
        assert len(data_files) == 1  # the stale data file is gone
    if change == "channels":
        assert rebuilt.images.shape == (12, 1, 16, 16)


@pytest.mark.parametrize("damage", ["manifest_garbage", "data_truncated", "data_missing",
                                    "manifest_other_key"])  # fmt: skip
def test_a_damaged_entry_is_rebuilt(tmp_path, cache_folder, decodes, damage):
    source = make_source(tmp_path / "imgs")
    good = load_or_build(source, SETTINGS).images.numpy().copy()
    manifest = slot_path(source, SETTINGS).with_suffix(".json")
    data = cache_folder / json.loads(manifest.read_text())["data"]
    if damage == "manifest_garbage":
        manifest.write_text("{")
    elif damage == "data_truncated":
        data.write_bytes(data.read_bytes()[:500])
    elif damage == "data_missing":
        data.unlink()
    else:
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "key": "0" * 64}))
    assert cache_state(source, SETTINGS) == "stale"
    again = load_or_build(source, SETTINGS)
    assert decodes == [12, 12] and np.array_equal(again.images.numpy(), good)


def test_a_build_killed_midway_leaves_no_valid_entry_and_no_temporary(
    tmp_path, cache_folder, monkeypatch
):
    source = make_source(tmp_path / "imgs")
    real = image_cache.decode_into

    def interrupted(out, paths, *args, **kwargs):
        real(out[:3], paths[:3], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(image_cache, "decode_into", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_or_build(source, SETTINGS)
    assert _files(cache_folder) == []
    assert cache_state(source, SETTINGS) == "missing"
    monkeypatch.setattr(image_cache, "decode_into", real)
    assert load_or_build(source, SETTINGS).counts == [4, 4, 4]


def test_temporary_files_of_a_dead_writer_are_removed(tmp_path, cache_folder):
    source = make_source(tmp_path / "imgs")
    slot = slot_path(source, SETTINGS)
    cache_folder.mkdir()
    dead = cache_folder / f".{slot.name}-0123456789abcdef.npy.999999999-abcdef"
    dead.write_bytes(b"x" * 100)
    load_or_build(source, SETTINGS)
    assert not dead.exists()


def test_unreadable_images_are_named_or_skipped_never_zero_images(tmp_path, cache_folder, decodes):
    source = make_source(tmp_path / "imgs")
    bad = [tmp_path / "imgs" / "c0" / "1.png", tmp_path / "imgs" / "c2" / "3.png"]
    bad[0].write_bytes(b"not a png")
    bad[1].write_bytes(bad[1].read_bytes()[:40])
    with pytest.raises(DataError) as info:
        load_or_build(source, SETTINGS)
    message = str(info.value)
    assert "2 image(s)" in message and "c0/1.png" in message and "c2/3.png" in message
    assert "skip_bad_images" in message and "\n" not in message
    # the cache holds the readable images and remembers the bad ones: no decoding again
    with pytest.raises(DataError, match="c0/1.png"):
        load_or_build(source, SETTINGS)
    with pytest.warns(SkippedImagesWarning, match="2 image") as record:
        kept = load_or_build(source, SETTINGS, skip_bad_images=True)
    assert decodes == [12] and "c0/1.png" in str(record[0].message)
    assert kept.counts == [3, 4, 3] and kept.images.shape[0] == 10
    for row in kept.images:
        assert row.float().std((1, 2)).max() < 3 and row.float().mean() > 15  # none zero
    assert close(decoded_colour(kept.images[1]), colour(2))  # c0/2.png moved up a row


@pytest.mark.parametrize("problem", ["a_file", "disk_full", "rename_fails"])
def test_an_unwritable_cache_warns_and_returns_the_images(tmp_path, monkeypatch, problem):
    source = make_source(tmp_path / "imgs")
    folder = tmp_path / "cache"
    if problem == "a_file":
        folder.write_text("a file where the cache folder should be")
    elif problem == "disk_full":

        def full(fd, offset, length):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(image_cache.os, "posix_fallocate", full)
    else:

        def refuse(src, dst):
            raise OSError(errno.EACCES, "Permission denied", str(dst))

        monkeypatch.setattr(image_cache.os, "replace", refuse)
    monkeypatch.setenv("HYPERMAML_CACHE", str(folder))
    with pytest.warns(CacheWarning) as record:
        data = load_or_build(source, SETTINGS)
    assert data.path is None and data.counts == [4, 4, 4]
    assert close(decoded_colour(data.images[11]), colour(23))
    message = str(record[0].message)
    assert "HYPERMAML_CACHE" in message and "\n" not in message
    if folder.is_dir():
        assert _files(folder) == []  # no entry and no temporary file left behind
