"""The natural-image datasets by name on generated fixtures of their real on-disk layouts: the
shipped splits, CUB (tree and official archive), mini-ImageNet (packed and ILSVRC-2012),
mini_to_cub, FC100 / CIFAR-FS / fc100_to_mini, and sampling from each."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import hypermaml.data.cifar_fewshot as cifar_fewshot
import hypermaml.data.cub as cub
import hypermaml.data.mini_imagenet as mini_imagenet
from hypermaml.data import (
    DATASETS,
    IMAGENET_NORMALISATION,
    MIN_IMAGES_PER_CLASS,
    DataError,
    EpisodeSampler,
    TaskShape,
    image_shape,
    load_split,
)
from hypermaml.data.datasets import N_CLASSES
from hypermaml.data.files import RemoteFile
from hypermaml.data.split_files import (
    SPLITS,
    cifar100_superclasses,
    cifar_fs_classes,
    cub_classes,
    fc100_superclasses,
    image_number,
    mini_imagenet_files,
)
from tests.data.image_fixtures import (
    close,
    colour,
    cub_all_classes,
    cub_count,
    decoded_colour,
    make_cub,
    make_cub_archive,
    make_ilsvrc,
    make_packed_mini,
    mini_seed,
    mini_subset,
)

PER_CLASS = 2  # mini-ImageNet images per class in the fixtures (the real CSV names' first two)

# ---------------------------------------------------------------- shipped split files


def test_cub_split_is_closerlooks_rule_100_50_50():
    splits = {s: cub_classes(s) for s in SPLITS}
    assert [len(splits[s]) for s in SPLITS] == [100, 50, 50]
    everything = sorted(c for names in splits.values() for c in names)
    assert len(set(everything)) == 200 and everything[0] == "001.Black_footed_Albatross"
    rule = {"train": everything[0::2], "val": everything[1::4], "test": everything[3::4]}
    assert {s: sorted(v) for s, v in splits.items()} == rule


def test_mini_imagenet_split_is_64_16_20_classes_of_600():
    files = {s: mini_imagenet_files(s) for s in SPLITS}
    assert [len(files[s]) for s in SPLITS] == [64, 16, 20]
    synsets = [c for s in SPLITS for c in files[s]]
    assert len(set(synsets)) == 100
    for split in files.values():
        for synset, names in split.items():
            assert len(names) == 600 and all(n.startswith(synset) for n in names)
            numbers = [image_number(n) for n in names]
            assert numbers == sorted(numbers) and 1 <= numbers[0] and numbers[-1] <= 1300


def test_fc100_and_cifar_fs_splits():
    table = cifar100_superclasses()
    assert len(table) == 20 and all(len(v) == 5 for v in table.values())
    supers = {s: fc100_superclasses(s) for s in SPLITS}
    assert [len(supers[s]) for s in SPLITS] == [12, 4, 4]
    assert len({c for v in supers.values() for c in v}) == 20
    assert [len(cifar_fewshot.split_classes("fc100", s)) for s in SPLITS] == [60, 20, 20]
    fs = {s: [c for _, c in cifar_fs_classes(s)] for s in SPLITS}
    assert [len(fs[s]) for s in SPLITS] == [64, 16, 20]
    assert len({c for v in fs.values() for c in v}) == 100


def test_every_dataset_has_a_shape_and_the_benchmarks_their_class_counts():
    for name in DATASETS:
        if name != "folder":
            assert len(image_shape(name)) == 3
        for split in SPLITS:
            if name != "folder":
                assert N_CLASSES[(name, split)] >= 16 and MIN_IMAGES_PER_CLASS[(name, split)] >= 20


def test_edited_split_file_is_refused(monkeypatch, tmp_path):
    import hypermaml.data.split_files as split_files

    copy = tmp_path / "splits"
    shutil.copytree(split_files.FOLDER, copy)
    (copy / "cub" / "val.json").write_text('["001.Black_footed_Albatross"]')
    monkeypatch.setattr(split_files, "FOLDER", copy)
    with pytest.raises(DataError, match="reinstall hypermaml") as info:
        cub_classes("val")
    assert str(copy / "cub" / "val.json") in str(info.value)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> Path:
    """One data folder holding a CUB tree, a packed mini-ImageNet folder and an ILSVRC tree."""
    root = tmp_path_factory.mktemp("data")
    make_cub(root)
    subset = mini_subset(PER_CLASS)
    make_packed_mini(root, subset)
    make_ilsvrc(root / "ilsvrc_only", subset)
    return root


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _cache_and_subset(monkeypatch, module_cache):
    monkeypatch.setenv("HYPERMAML_CACHE", str(module_cache))
    subset = mini_subset(PER_CLASS)
    monkeypatch.setattr(mini_imagenet, "mini_imagenet_files", lambda split: subset[split])


def _sample_ok(data, n_way=5, n_shot=1, n_query=1) -> None:
    batch = EpisodeSampler(data, TaskShape(n_way, n_shot, n_query), seed=0).sample(2)
    c, s = data.image_shape[0], data.image_shape[1]
    assert batch.support_x.shape == (2, n_way * n_shot, c, s, s)
    assert batch.query_x.shape == (2, n_way * n_query, c, s, s)
    if data.normalisation is not None:  # normalised: undo it to get k / 255 back
        mean, std = (torch.tensor(v)[:, None, None] for v in data.normalisation)
        raw = (batch.support_x * std + mean) * 255
        assert torch.allclose(raw, raw.round(), atol=1e-3) and batch.support_x.min() < 0


# ---------------------------------------------------------------- CUB


def test_cub_tree_loads_its_splits_with_ragged_classes(trees):
    everything = cub_all_classes()
    for split, n in zip(SPLITS, (100, 50, 50)):
        data = load_split("cub", split, trees)
        assert data.n_classes == n and data.class_names == cub_classes(split)
        assert data.image_shape == (3, 84, 84) and data.images.dtype == torch.uint8
        assert data.normalisation == IMAGENET_NORMALISATION
        assert list(data.counts) == [cub_count(everything.index(c)) for c in data.class_names]
        assert not data.is_dense and data.n_per_class == 2
        i = everything.index(data.class_names[3])
        for j in range(data.counts[3]):  # images of a class in file-name order
            assert close(decoded_colour(data.class_images(3)[j]), colour(1000 * i + j))
        _sample_ok(data)


def test_cub_archive_is_checked_extracted_once_and_then_read(tmp_path, monkeypatch, trees):
    data_root = tmp_path / "data"
    archive, md5 = make_cub_archive(data_root, trees)
    monkeypatch.setattr(cub, "CUB_ARCHIVE", RemoteFile(cub.CUB_ARCHIVE.relpath, "u", f"md5:{md5}"))
    data = load_split("cub", "test", data_root)
    assert data.n_classes == 50 and (data_root / "CUB_200_2011" / "images").is_dir()
    assert not (data_root / "attributes.txt").exists()  # only CUB_200_2011/ is extracted
    assert not [p for p in data_root.iterdir() if p.name.startswith(".")]  # no temporary left
    opened = []
    monkeypatch.setattr(cub.tarfile, "open", lambda *a, **k: opened.append(a))
    assert load_split("cub", "val", data_root).n_classes == 50 and opened == []


def test_cub_archive_with_another_md5_is_refused_and_nothing_extracted(tmp_path, trees):
    data_root = tmp_path / "data"
    archive, md5 = make_cub_archive(data_root, trees)
    with pytest.raises(DataError) as info:
        load_split("cub", "train", data_root)
    message = str(info.value)
    assert str(archive) in message and md5 in message and cub.CUB_ARCHIVE.digest[4:] in message
    assert sorted(p.name for p in data_root.iterdir()) == ["CUB_200_2011.tgz"]


def test_cub_without_tree_or_archive_names_the_archive_and_its_url(tmp_path, offline):
    with pytest.raises(DataError) as info:
        load_split("cub", "train", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "CUB_200_2011.tgz") in message and "data.caltech.edu" in message


def test_cub_tree_lacking_split_classes_is_refused_naming_them(tmp_path, trees):
    shutil.copytree(trees / "CUB_200_2011", tmp_path / "CUB_200_2011")
    gone = [cub_classes("test")[0], cub_classes("train")[7]]
    for name in gone:
        shutil.rmtree(tmp_path / "CUB_200_2011" / "images" / name)
    with pytest.raises(DataError) as info:
        load_split("cub", "val", tmp_path)
    message = str(info.value)
    assert "lacks 2 of the 200" in message and all(name in message for name in gone)


def test_cub_source_option_reads_a_tree_elsewhere(tmp_path, trees):
    data = load_split("cub", "val", tmp_path, source=trees / "CUB_200_2011")
    assert data.n_classes == 50
    with pytest.raises(DataError, match="cub and mini_imagenet only"):
        load_split("mini_to_cub", "val", tmp_path, source=trees / "CUB_200_2011")


# ---------------------------------------------------------------- mini-ImageNet


def test_packed_mini_imagenet_loads_in_csv_order(trees):
    subset = mini_subset(PER_CLASS)
    for split, n in zip(SPLITS, (64, 16, 20)):
        data = load_split("mini_imagenet", split, trees)
        assert data.n_classes == n and data.class_names == list(subset[split])
        assert data.counts == (PER_CLASS,) * n and data.image_shape == (3, 84, 84)
        names = subset[split][data.class_names[5]]
        for j, name in enumerate(names):
            assert close(decoded_colour(data.class_images(5)[j]), colour(mini_seed(name)))
        _sample_ok(data, n_shot=1, n_query=1)


def test_ilsvrc_tree_maps_image_k_to_the_kth_file_by_numeric_id(trees):
    """n0153282900000005.jpg is the 5th JPEG of n01532829 sorted by id (7, 10, 13, 16, 19:
    n01532829_19.JPEG), not by text (10, 13, 16, 19, 22, ...)."""
    packed = {s: load_split("mini_imagenet", s, trees) for s in SPLITS}
    ilsvrc_root = trees / "ilsvrc_only"
    for split in SPLITS:
        data = load_split("mini_imagenet", split, ilsvrc_root)
        assert data.class_names == packed[split].class_names
        diff = (data.images.int() - packed[split].images.int()).abs()
        assert diff.max() <= 8  # the same pictures (both JPEG-coded flat colours)


def test_mini_imagenet_with_missing_files_names_them(tmp_path, trees):
    shutil.copytree(trees / "mini_imagenet", tmp_path / "mini_imagenet")
    gone = sorted((tmp_path / "mini_imagenet" / "images").iterdir())[:2]
    for path in gone:
        path.unlink()
    with pytest.raises(DataError) as info:
        load_split("mini_imagenet", "test", tmp_path)
    assert "lacks 2 of the" in str(info.value) and gone[0].name in str(info.value)


def test_no_mini_imagenet_names_both_layouts(tmp_path):
    with pytest.raises(DataError) as info:
        load_split("mini_imagenet", "train", tmp_path)
    message = str(info.value)
    assert "mini_imagenet/images" in message and "ILSVRC2012_train" in message


# ---------------------------------------------------------------- compositions


def test_mini_to_cub_trains_on_all_mini_classes_and_tests_on_cub(trees):
    train = load_split("mini_to_cub", "train", trees)
    mini = [load_split("mini_imagenet", s, trees) for s in SPLITS]
    assert train.n_classes == 100 and train.name == "mini_to_cub"
    assert train.class_names == [c for m in mini for c in m.class_names]
    assert torch.equal(train.images, torch.cat([m.images for m in mini]))
    for split in ("val", "test"):
        data, birds = load_split("mini_to_cub", split, trees), load_split("cub", split, trees)
        assert data.class_names == birds.class_names and torch.equal(data.images, birds.images)
        _sample_ok(data)
    _sample_ok(train)


def _fake_cifar100(per_class: int):
    names = sorted(c for s in SPLITS for _, c in cifar_fs_classes(s))  # CIFAR's fine order
    labels = torch.arange(100).repeat(per_class)  # interleaved, as in the archive
    images = (labels * 2 + torch.arange(len(labels)) // 100)[:, None, None, None]
    return images.expand(-1, 3, 32, 32).to(torch.uint8).contiguous(), labels, names


def test_fc100_cifar_fs_and_fc100_to_mini(trees, monkeypatch):
    images, labels, names = _fake_cifar100(6)
    calls = []

    def fake_load_cifar(root, name, split):
        calls.append((name, split))
        return images, labels, names

    monkeypatch.setattr(cifar_fewshot, "load_cifar", fake_load_cifar)
    monkeypatch.setattr(cifar_fewshot, "IMAGES_PER_CLASS", 6)
    for name, counts in (("fc100", (60, 20, 20)), ("cifar_fs", (64, 16, 20))):
        for split, n in zip(SPLITS, counts):
            data = load_split(name, split, trees)
            assert data.n_classes == n and data.counts == (6,) * n
            assert data.image_shape == (3, 32, 32)
            assert data.normalisation == IMAGENET_NORMALISATION
            k = names.index(data.class_names[2])  # its images, in archive order
            assert data.class_images(2)[:, 0, 0, 0].tolist() == [2 * k + j for j in range(6)]
    assert set(calls) == {("cifar100", ("train", "test"))}
    fc100 = load_split("fc100", "train", trees)
    table = cifar100_superclasses()
    assert fc100.class_names[:5] == table[fc100_superclasses("train")[0]]
    train = load_split("fc100_to_mini", "train", trees)
    assert train.class_names == fc100.class_names and train.name == "fc100_to_mini"
    for split in ("val", "test"):
        data = load_split("fc100_to_mini", split, trees)
        mini = load_split("mini_imagenet", split, trees)
        assert data.class_names == mini.class_names and data.image_shape == (3, 32, 32)
        _sample_ok(data)
    _sample_ok(train)


def test_cifar_split_with_wrong_counts_is_refused(trees, monkeypatch):
    images, labels, names = _fake_cifar100(5)
    monkeypatch.setattr(cifar_fewshot, "load_cifar", lambda *a: (images, labels, names))
    with pytest.raises(DataError, match="expected 600 each"):
        load_split("cifar_fs", "val", trees)
