"""``prepare`` (decode into the cache ahead of a run) and ``check`` (what a dataset holds and what
is wrong with it, without building anything), on a generated CUB tree and an image folder."""

from __future__ import annotations

import os
import shutil

import pytest

from hypermaml.data import FolderSpec, check, prepare
from hypermaml.data.split_files import cub_classes
from tests.data.image_fixtures import cub_all_classes, cub_count, make_cub, write_image


@pytest.fixture
def cub_root(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERMAML_CACHE", str(tmp_path / "cache"))
    make_cub(tmp_path / "data")
    return tmp_path / "data"


def test_check_then_prepare_then_check_again(cub_root):
    before = check("cub", cub_root)
    assert before.ok and before.caches == {"cub": "missing"}
    counts = [cub_count(i) for i in range(200)]
    assert [(s.split, s.classes) for s in before.splits] == [("train", 100), ("val", 50),
                                                             ("test", 50)]  # fmt: skip
    assert sum(s.images for s in before.splits) == sum(counts)
    assert before.splits[0].per_class == (2, 3.0, 4)
    assert not list((cub_root.parent / "cache").glob("*"))  # check builds nothing

    report = prepare("cub", cub_root)
    (cache,) = report.caches
    assert (cache.before, cache.after, cache.images) == ("missing", "present", sum(counts))
    assert cache.manifest and os.path.isfile(cache.manifest)
    assert [s.classes for s in report.splits] == [100, 50, 50]
    assert any("prepared" in line for line in report.lines())
    assert check("cub", cub_root).caches == {"cub": "present"}
    assert prepare("cub", cub_root).caches[0].before == "present"  # kept, not rebuilt

    name = cub_classes("val")[0]
    path = next((cub_root / "CUB_200_2011" / "images" / name).iterdir())
    write_image(path, 7, size=(14, 9), quality=95)  # the same name, other content
    assert check("cub", cub_root).caches == {"cub": "stale"}
    assert prepare("cub", cub_root).caches[0].after == "present"


def test_check_reports_missing_classes_and_unreadable_files(cub_root):
    images = cub_root / "CUB_200_2011" / "images"
    gone = cub_classes("val")[3]
    shutil.rmtree(images / gone)
    report = check("cub", cub_root)
    assert not report.ok and any(gone in p for p in report.problems)
    assert report.to_dict()["ok"] is False and any("problem" in line for line in report.lines())

    make_cub(cub_root)  # restore, then break one file two ways
    name = cub_all_classes()[5]
    files = sorted((images / name).iterdir())
    files[0].write_bytes(b"garbage")
    files[1].write_bytes(files[1].read_bytes()[:200])  # truncated: only a full decode sees it
    header_only = check("cub", cub_root)
    assert len(header_only.problems) == 1 and files[0].name in header_only.problems[0]
    decoded = check("cub", cub_root, decode=True)
    assert "2 unreadable" in decoded.problems[0] and files[1].name in decoded.problems[0]


def test_prepare_and_check_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERMAML_CACHE", str(tmp_path / "cache"))
    for c in range(5):
        for j in range(3):
            write_image(tmp_path / "imgs" / f"class{c}" / f"{j}.png", 10 * c + j)
    spec = FolderSpec(tmp_path / "imgs", size=16)
    report = prepare("folder", tmp_path, folder=spec)
    assert [s.classes for s in report.splits] == [3, 1, 1]
    assert report.caches[0].after == "present"
    assert check("folder", tmp_path, folder=spec).caches == {"folder": "present"}


def test_check_of_omniglot_loads_it(data_root):
    report = check("omniglot", data_root)
    assert report.ok and [s.classes for s in report.splits] == [4112, 688, 1692]
    assert report.splits[0].per_class == (20, 20.0, 20)
