"""Real data (skipped without $HYPERMAML_DATA): counts, splits, polarity; and data-file errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from hypermaml.data import DataError, load_split
from hypermaml.data.emnist import load_emnist_subset
from hypermaml.data.omniglot import load_omniglot, read_split_file
from tests.conftest import files_under

# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def omniglot(data_root):
    return load_omniglot(data_root)


@pytest.fixture(scope="module")
def cross_char(data_root):
    return {split: load_split("cross_char", split, data_root) for split in ("train", "val", "test")}


@pytest.fixture(scope="module")
def omniglot_splits(data_root):
    return {split: load_split("omniglot", split, data_root) for split in ("train", "val", "test")}


def test_omniglot_counts(omniglot):
    assert omniglot.images.shape == (1623, 20, 28, 28)
    assert omniglot.images.dtype == torch.uint8
    assert len(omniglot.alphabet) == len(omniglot.character) == 1623
    assert int(omniglot.background.sum()) == 964
    # character-id order: the 964 background characters come first
    assert bool(omniglot.background[:964].all()) and not bool(omniglot.background[964:].any())
    bg = {a for a, b in zip(omniglot.alphabet, omniglot.background.tolist()) if b}
    ev = {a for a, b in zip(omniglot.alphabet, omniglot.background.tolist()) if not b}
    assert (len(bg), len(ev)) == (30, 20) and not bg & ev
    assert len(omniglot.index()) == 1623  # (alphabet, character) identifies a character


def test_omniglot_polarity_is_dark_ink_on_white(omniglot):
    images = omniglot.images.float()
    assert images.mean() > 200
    assert (images[:, :, 0, 0] > 200).float().mean() > 0.95  # corners are background
    assert images.amin(dim=(2, 3)).mean() < 100  # every image has ink


def test_omniglot_images_are_the_resized_pngs_in_character_id_order(omniglot, data_root):
    """0709_01.png (Alphabet_of_the_Magi/character01) is character id 709, drawer 1."""
    name = "images_background/Alphabet_of_the_Magi/character01/0709_01.png"
    with zipfile.ZipFile(data_root / "omniglot" / "images_background.zip") as zf:
        with Image.open(io.BytesIO(zf.read(name))) as img:
            big = torch.from_numpy(np.asarray(img.convert("L"), dtype=np.float32) / 255.0)
    small = F.interpolate(big[None, None], size=(28, 28), mode="bilinear", antialias=True)
    expected = (small[0, 0] * 255).round().clamp(0, 255).to(torch.uint8)
    assert (omniglot.alphabet[708], omniglot.character[708]) == (
        "Alphabet_of_the_Magi",
        "character01",
    )
    diff = (omniglot.images[708, 0].int() - expected.int()).abs()
    assert diff.max() <= 1


def test_omniglot_vinyals_splits(omniglot_splits):
    sizes = {s: d.dense_images().shape for s, d in omniglot_splits.items()}
    assert sizes == {
        "train": (4112, 20, 1, 28, 28),
        "val": (688, 20, 1, 28, 28),
        "test": (1692, 20, 1, 28, 28),
    }
    chars = {s: {n.rsplit("/", 1)[0] for n in d.class_names} for s, d in omniglot_splits.items()}
    assert [len(chars[s]) for s in ("train", "val", "test")] == [1028, 172, 423]
    assert not (chars["train"] & chars["val"] or chars["train"] & chars["test"]
                or chars["val"] & chars["test"])  # fmt: skip
    for d in omniglot_splits.values():
        assert len(set(d.class_names)) == d.n_classes
        assert d.images.dtype == torch.uint8


def test_omniglot_rotations_are_counterclockwise_copies(omniglot, omniglot_splits):
    train = omniglot_splits["train"]
    pos = {n: i for i, n in enumerate(train.class_names)}
    base = train.dense_images()[pos["Angelic/character01/rot000"], :, 0]
    idx = omniglot.index()[("Angelic", "character01")]
    assert torch.equal(base, omniglot.images[idx])
    for degrees in (90, 180, 270):
        rotated = train.dense_images()[pos[f"Angelic/character01/rot{degrees:03d}"], :, 0]
        assert not torch.equal(rotated, base)
        # PIL's rotate is counterclockwise, as in the reference data loaders
        pil = Image.fromarray(base[3].numpy()).rotate(degrees)
        assert torch.equal(rotated[3], torch.from_numpy(np.array(pil)))


def test_cross_char_train_is_omniglot_without_latin(cross_char, omniglot):
    train = cross_char["train"]
    assert train.dense_images().shape == (1597, 20, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.normalisation is None
    assert len(train.class_names) == 1597
    assert not any(n.split("/")[0] == "Latin" for n in train.class_names)
    assert sum(a == "Latin" for a in omniglot.alphabet) == 1623 - 1597
    keep = [i for i, a in enumerate(omniglot.alphabet) if a != "Latin"]
    assert torch.equal(train.dense_images()[:, :, 0], omniglot.images[keep])
    assert train.images.float().mean() > 200


def test_cross_char_val_test_are_even_and_odd_emnist_classes(cross_char):
    val, test = cross_char["val"], cross_char["test"]
    assert val.dense_images().shape == test.dense_images().shape == (31, 200, 1, 28, 28)
    assert val.images.dtype == test.images.dtype == torch.uint8
    assert val.class_names == [f"emnist/{i}" for i in range(0, 62, 2)]
    assert test.class_names == [f"emnist/{i}" for i in range(1, 62, 2)]


def test_emnist_is_inverted_to_dark_ink_on_light(cross_char, data_root):
    val, test = cross_char["val"], cross_char["test"]
    assert val.images.float().mean() > 127 and test.images.float().mean() > 127
    with zipfile.ZipFile(data_root / "emnist" / "emnist_closerlook_62x200.zip") as zf:
        for split, position, emnist_id, index in ((val, 1, 2, 0), (test, 0, 1, 5),
                                                  (test, 30, 61, 199)):  # fmt: skip
            with Image.open(io.BytesIO(zf.read(f"emnist/{emnist_id}/{index}.png"))) as img:
                raw = np.asarray(img.convert("L"), dtype=np.uint8)
            assert raw.mean() < 127  # stored white ink on black
            assert torch.equal(
                split.dense_images()[position, index, 0], torch.from_numpy(255 - raw)
            )


def test_unknown_dataset_and_split_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="cifar"):
        load_split("cifar", "train", tmp_path)
    with pytest.raises(DataError, match="trian"):
        load_split("omniglot", "trian", tmp_path)


# ---------------------------------------------------------------- missing and corrupt files


@pytest.fixture
def private_cache(monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HYPERMAML_CACHE", str(cache))
    return cache


def test_missing_omniglot_names_the_file_to_put_in_place(tmp_path, offline, private_cache):
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(DataError) as info:
        load_omniglot(root)
    message = str(info.value)
    assert str(root / "omniglot" / "images_background.zip") in message
    assert "HYPERMAML_DATA" in message
    assert offline  # a download was attempted
    assert files_under(root) == []  # no partial download left behind


def test_missing_emnist_names_the_file_to_put_in_place(tmp_path, offline, private_cache):
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(DataError) as info:
        load_split("cross_char", "val", root)
    assert str(root / "emnist" / "emnist_closerlook_62x200.zip") in str(info.value)
    assert files_under(root) == []


def test_split_files_ship_with_the_package_without_a_data_dir(tmp_path, offline):
    """The Vinyals split files are package data: no download, whatever the data dir holds."""
    counts = {split: len(read_split_file(split)) for split in ("train", "val", "test")}
    assert counts == {"train": 4112, "val": 688, "test": 1692}
    assert offline == []  # nothing was fetched


def test_a_changed_split_file_is_refused(tmp_path, monkeypatch):
    import hypermaml.data.omniglot as omniglot

    (tmp_path / "test.txt").write_text("Angelic/character01/rot000\n")
    monkeypatch.setattr(omniglot, "SPLITS", tmp_path)
    with pytest.raises(DataError, match="differs from the Vinyals split.*reinstall"):
        read_split_file("test")


def test_corrupt_omniglot_zips_raise_data_error_naming_the_file(tmp_path, offline, private_cache):
    root = tmp_path / "data"
    (root / "omniglot").mkdir(parents=True)
    for name in ("images_background.zip", "images_evaluation.zip"):
        (root / "omniglot" / name).write_bytes(b"this is not a zip file" * 100)
    with pytest.raises(DataError) as info:
        load_omniglot(root)
    assert str(root / "omniglot" / "images_background.zip") in str(info.value)
    assert not offline  # files in place are not downloaded again
    assert not any(private_cache.glob("*.pt"))


def test_garbage_npz_raises_data_error_naming_the_file(tmp_path, offline, private_cache):
    root = tmp_path / "data"
    (root / "omniglot").mkdir(parents=True)
    npz = root / "omniglot" / "omniglot_105x105_bool.npz"
    npz.write_bytes(b"\x00\x01garbage" * 1000)
    with pytest.raises(DataError) as info:
        load_omniglot(root)
    assert str(npz) in str(info.value)
    assert not any(private_cache.glob("*.pt"))


def _write_npz(path: Path, n_chars: int, shape=(20, 105, 105), **extra) -> None:
    arrays = {
        "images": np.ones((n_chars, *shape), dtype=bool),
        "alphabet": np.array(["A"] * n_chars),
        "character": np.array([f"character{i:02d}" for i in range(n_chars)]),
        "background": np.ones(n_chars, dtype=bool),
    }
    arrays.update(extra)
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    ("variant", "must_name"),
    [
        ("too_few_characters", "1623"),
        ("wrong_image_shape", "(3, 20, 28, 28)"),
        ("missing_array", "background"),
    ],
)
def test_npz_with_wrong_content_raises_data_error_naming_the_file(
    tmp_path, offline, private_cache, variant, must_name
):
    root = tmp_path / "data"
    (root / "omniglot").mkdir(parents=True)
    npz = root / "omniglot" / "omniglot_105x105_bool.npz"
    if variant == "too_few_characters":
        _write_npz(npz, 3)
    elif variant == "wrong_image_shape":
        _write_npz(npz, 3, shape=(20, 28, 28))
    else:
        np.savez(npz, images=np.ones((3, 20, 105, 105), dtype=bool), alphabet=np.array(["A"] * 3),
                 character=np.array(["c"] * 3))  # fmt: skip
    with pytest.raises(DataError) as info:
        load_omniglot(root)
    assert str(npz) in str(info.value) and must_name in str(info.value)
    assert not any(private_cache.glob("*.pt"))


def test_corrupt_emnist_zip_raises_data_error_naming_the_file(tmp_path, offline):
    root = tmp_path / "data"
    (root / "emnist").mkdir(parents=True)
    path = root / "emnist" / "emnist_closerlook_62x200.zip"
    path.write_bytes(b"garbage" * 50)
    with pytest.raises(DataError) as info:
        load_emnist_subset(root)
    assert str(path) in str(info.value)


def test_incomplete_emnist_zip_raises_data_error_naming_the_count(tmp_path, offline):
    root = tmp_path / "data"
    (root / "emnist").mkdir(parents=True)
    path = root / "emnist" / "emnist_closerlook_62x200.zip"
    png = io.BytesIO()
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(png, format="PNG")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("emnist/0/0.png", png.getvalue())
    with pytest.raises(DataError) as info:
        load_emnist_subset(root)
    assert str(path) in str(info.value) and "1 of the 12400" in str(info.value)
