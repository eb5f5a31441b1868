"""The ``folder`` dataset: any ROOT/<class>/<image> tree, split by a file or seeded fractions,
mixed formats and modes, bad files and empty classes; and a real check: Omniglot written out as
a folder of PNGs reads back bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hypermaml.data import (
    DataError,
    EpisodeSampler,
    FolderSpec,
    SkippedImagesWarning,
    TaskShape,
    image_shape,
    load_split,
)
from hypermaml.data.folder import split_by_fractions
from hypermaml.data.omniglot import load_omniglot
from tests.data.image_fixtures import write_image

MIXED = {  # class -> its files, each saved as its suffix says, in a mode of its own
    "apple": ["a.jpg", "b.png", "c.bmp"],
    "birch": ["a.gif", "b.webp", "c.jpeg"],
    "cedar": ["a.png", "b.jpg", "c.tif"],
    "daisy": ["a.png", "b.png", "c.jpg"],
    "elder": ["a.jpg", "b.png", "c.png"],
    "fern": ["a.jpg", "b.jpg", "c.jpg"],
}


def make_mixed(root: Path) -> Path:
    """Six classes of three images in JPEG/PNG/BMP/GIF/WebP/TIFF and modes RGB, L, RGBA, P,
    I;16 and CMYK (sizes from 10x12 to 40x30)."""
    rng = np.random.default_rng(0)
    for k, (cls, names) in enumerate(sorted(MIXED.items())):
        for j, name in enumerate(names):
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (10 + 10 * j, 12 + 6 * k, 3), dtype=np.uint8)
            img = Image.fromarray(pixels)
            mode = ["RGB", "L", "RGBA", "P", "CMYK", "I;16"][(k + j) % 6]
            if mode == "I;16":
                img = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
                path = path.with_suffix(".png")
            elif mode == "CMYK":
                img, path = img.convert("CMYK"), path.with_suffix(".jpg")
            elif mode != "RGB":
                img = img.convert(mode)
                if mode in ("RGBA", "P") and path.suffix in (".jpg", ".jpeg"):
                    path = path.with_suffix(".png")
            img.save(path)
    (root / "notes.txt").write_text("not a class")
    (root / "apple" / "Thumbs.db").write_bytes(b"\0" * 10)  # not an image: ignored
    return root


@pytest.fixture(scope="module")
def omniglot(data_root):
    """The built-in loader's Omniglot, from the usual cache (loaded before the tests' own)."""
    return load_omniglot(data_root)


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HYPERMAML_CACHE", str(tmp_path / "cache"))


def test_mixed_formats_and_modes_load_as_rgb_and_split_by_seeded_fractions(tmp_path):
    root = make_mixed(tmp_path / "photos")
    spec = FolderSpec(root, fractions=(0.5, 0.25, 0.25), seed=3, size=20)
    splits = {s: load_split("folder", s, tmp_path, folder=spec) for s in ("train", "val", "test")}
    names = [c for d in splits.values() for c in d.class_names]
    assert sorted(names) == sorted(MIXED) and [d.n_classes for d in splits.values()] == [3, 2, 1]
    assert all(d.class_names == sorted(d.class_names) for d in splits.values())
    for d in splits.values():
        assert d.image_shape == (3, 20, 20) and d.counts == (3,) * d.n_classes
        assert d.normalisation is not None  # RGB: ImageNet mean and std
    again = load_split("folder", "train", tmp_path, folder=spec)
    assert again.class_names == splits["train"].class_names  # the seed fixes the split
    other = FolderSpec(root, fractions=(0.5, 0.25, 0.25), seed=4, size=20)
    assert load_split("folder", "train", tmp_path, folder=other).class_names != again.class_names
    batch = EpisodeSampler(splits["train"], TaskShape(3, 1, 2), seed=0).sample(2)
    assert batch.support_x.shape == (2, 3, 3, 20, 20) and batch.support_x.min() < 0
    assert image_shape("folder", spec, tmp_path) == (3, 20, 20)


def test_fractions_round_by_largest_remainder_and_need_a_class_per_split(tmp_path):
    classes = [f"c{i}" for i in range(10)]
    counts = [len(v) for v in split_by_fractions(classes, (0.6, 0.2, 0.2), 0, tmp_path).values()]
    assert counts == [6, 2, 2]
    counts = [
        len(v) for v in split_by_fractions(classes[:7], (0.6, 0.2, 0.2), 0, tmp_path).values()
    ]
    assert counts == [4, 2, 1] and sum(counts) == 7
    with pytest.raises(DataError, match="too few"):
        split_by_fractions(classes[:2], (0.6, 0.2, 0.2), 0, tmp_path)
    with pytest.raises(DataError, match="sum"):
        FolderSpec(tmp_path, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(DataError, match="channels"):
        FolderSpec(tmp_path, channels="colour")  # type: ignore[arg-type]


def test_split_file_chooses_the_classes(tmp_path):
    root = make_mixed(tmp_path / "photos")
    split = {"train": ["fern", "apple", "birch"], "val": ["daisy"], "test": ["cedar"]}
    (root / "split.json").write_text(json.dumps(split))
    spec = FolderSpec(root, split_file="split.json", size=16)
    for name, classes in split.items():
        assert load_split("folder", name, tmp_path, folder=spec).class_names == classes
    (root / "split.json").write_text(json.dumps({**split, "test": ["cedar", "fig", "apple"]}))
    with pytest.raises(DataError) as info:
        load_split("folder", "train", tmp_path, folder=spec)
    assert "apple" in str(info.value) and "more than one split" in str(info.value)
    (root / "split.json").write_text(json.dumps({**split, "test": ["cedar", "fig"]}))
    with pytest.raises(DataError, match="fig"):
        load_split("folder", "train", tmp_path, folder=spec)
    (root / "split.json").write_text("{not json")
    with pytest.raises(DataError, match="split.json"):
        load_split("folder", "train", tmp_path, folder=spec)


def test_corrupt_image_and_empty_class_are_refused_or_skipped_naming_them(tmp_path):
    root = make_mixed(tmp_path / "photos")
    (root / "ghost").mkdir()  # an empty class
    bad = write_image(root / "daisy" / "d.jpg", 1, size=(40, 30))
    bad.write_bytes(bad.read_bytes()[:300])  # a truncated JPEG
    spec = FolderSpec(root, split_file="split.json", size=16)
    split = {"train": ["apple", "birch", "daisy", "fern"], "val": ["cedar"], "test": ["elder"]}
    (root / "split.json").write_text(json.dumps(split))
    with pytest.raises(DataError) as info:
        load_split("folder", "train", tmp_path, folder=spec)
    assert "ghost" in str(info.value) and "skip_bad_images" in str(info.value)
    (root / "ghost").rmdir()
    with pytest.raises(DataError) as info:
        load_split("folder", "train", tmp_path, folder=spec)
    assert "daisy/d.jpg" in str(info.value) and "1 image(s)" in str(info.value)
    (root / "ghost").mkdir()
    skipping = FolderSpec(root, split_file="split.json", size=16, skip_bad_images=True)
    with pytest.warns(SkippedImagesWarning) as record:
        train = load_split("folder", "train", tmp_path, folder=skipping)
    messages = " ".join(str(w.message) for w in record)
    assert "ghost" in messages and "daisy/d.jpg" in messages
    assert train.counts == (3, 3, 3, 3)  # daisy's bad fourth image is left out


def test_grey_folder_is_read_as_one_channel_without_normalisation(tmp_path):
    for c in range(3):
        for j in range(2):
            img = Image.fromarray(np.full((8, 8), 40 * c + j, np.uint8))
            (tmp_path / "g" / f"k{c}").mkdir(parents=True, exist_ok=True)
            img.save(tmp_path / "g" / f"k{c}" / f"{j}.png")
    spec = FolderSpec(tmp_path / "g", fractions=(1, 0, 0), size=8, resize_ratio=1)
    data = load_split("folder", "train", tmp_path, folder=spec)
    assert data.image_shape == (1, 8, 8) and data.normalisation is None
    assert data.images[:, 0, 0, 0].tolist() == [0, 1, 40, 41, 80, 81]
    write_image(tmp_path / "g" / "k0" / "2.jpg", 5)  # one colour image: auto reads RGB
    assert load_split("folder", "train", tmp_path, folder=spec).image_shape == (3, 8, 8)
    grey = FolderSpec(tmp_path / "g", fractions=(1, 0, 0), size=8, channels="grey")
    assert load_split("folder", "train", tmp_path, folder=grey).image_shape == (1, 8, 8)


def test_missing_folder_or_spec_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split("folder", "train", tmp_path, folder=FolderSpec(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="folder spec"):
        load_split("folder", "train", tmp_path)


ALPHABETS = {"train": "Blackfoot_(Canadian_Aboriginal_Syllabics)", "val": "Tagalog",
             "test": "Ojibwe_(Canadian_Aboriginal_Syllabics)"}  # fmt: skip


def _omniglot_tree(root: Path, omniglot) -> tuple[FolderSpec, dict[str, list[str]], dict]:
    """Three Omniglot alphabets (the built-in loader's cached 28x28 pixels) written as a tree of
    grey PNGs with a split file; the spec that reads them at 28 px, grey, resize_ratio 1 (the
    shorter side resized to 28 itself: no resampling, no crop)."""
    split, index = {"train": [], "val": [], "test": []}, omniglot.index()
    for name, alphabet in ALPHABETS.items():
        for (a, character), i in sorted(index.items(), key=lambda kv: kv[1]):
            if a != alphabet:
                continue
            cls = f"{a}-{character}"
            split[name].append(cls)
            (root / "omni" / cls).mkdir(parents=True)
            for drawer, pixels in enumerate(omniglot.images[i].numpy(), start=1):
                Image.fromarray(pixels).save(root / "omni" / cls / f"{drawer:02d}.png")
    (root / "omni" / "split.json").write_text(json.dumps(split))
    spec = FolderSpec(root / "omni", split_file="split.json", size=28, channels="grey",
                      resize_ratio=1)  # fmt: skip
    return spec, split, index


def test_omniglot_written_as_a_folder_of_pngs_reads_back_bit_for_bit(tmp_path, omniglot):
    """The real check of the folder path: the same classes give the same pixels."""
    spec, split, index = _omniglot_tree(tmp_path, omniglot)
    for name in ("train", "val", "test"):
        data = load_split("folder", name, tmp_path, folder=spec)
        ids = [index[tuple(c.split("-", 1))] for c in data.class_names]
        assert data.class_names == split[name] and data.normalisation is None
        assert torch.equal(data.dense_images()[:, :, 0], omniglot.images[ids])


def test_a_checkpoint_scores_the_same_through_the_folder_and_the_built_in_loader(
    tmp_path, omniglot
):
    """The shipped Omniglot HyperMAML on one alphabet's characters, read through the folder
    dataset and through the built-in loader: the same tasks, the same accuracy to the bit."""
    from hypermaml.data import ClassImages, TaskShape
    from hypermaml.evaluation import evaluate
    from hypermaml.methods import load_method

    spec, split, index = _omniglot_tree(tmp_path, omniglot)
    folder = load_split("folder", "test", tmp_path, folder=spec)
    ids = [index[tuple(c.split("-", 1))] for c in folder.class_names]
    built_in = ClassImages("omniglot", "test", omniglot.images[ids][:, :, None],
                           folder.class_names)  # fmt: skip
    shipped = Path(__file__).resolve().parents[2] / "checkpoints" / "omniglot_5w1s_hypermaml"
    method = load_method(shipped).method
    shape = TaskShape(5, 1, 15)
    through_folder = evaluate(method, folder, shape, 100, 0)
    through_loader = evaluate(method, built_in, shape, 100, 0)
    assert through_folder.task_accuracies == through_loader.task_accuracies
    assert through_folder.accuracy > 80  # the checkpoint works on these characters (chance: 20)
