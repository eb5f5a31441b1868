"""Classification data: real Fashion-MNIST, IDX and CIFAR archive errors, CIFAR round trips
from generated archives, safe unpickling, and batch augmentation."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hypermaml.data.augment import (
    DEFAULT_AUGMENT,
    Augment,
    augment_batch,
    batches,
    channel_stats,
    crop_at,
    random_crop,
    random_flip,
)
from hypermaml.data.cifar import ARCHIVES
from hypermaml.data.classification import LabelledImages, load_classification
from hypermaml.data.fashion_mnist import FILES
from hypermaml.data.files import DataError, file_digest

# ---------------------------------------------------------------- real Fashion-MNIST

FASHION_SKIP = (
    "Fashion-MNIST not found: set HYPERMAML_DATA to the folder holding fashion-mnist/ "
    "(the Makefile points it at the shared data folder)"
)
# The gzip header timestamps of the official files. Debian's copy (the one in shared/data)
# drops the name and timestamp from the gzip header; putting them back gives the official md5.
OFFICIAL_GZIP_MTIME = {
    "train-images-idx3-ubyte": 1504176606,
    "train-labels-idx1-ubyte": 1504176606,
    "t10k-images-idx3-ubyte": 1504176627,
    "t10k-labels-idx1-ubyte": 1504176627,
}


@pytest.fixture(scope="module")
def fashion_root() -> Path:
    env = os.environ.get("HYPERMAML_DATA")
    root = Path(env).expanduser() if env else None
    if root is None or not (root / "fashion-mnist").is_dir():
        pytest.skip(FASHION_SKIP)
    return root


@pytest.fixture(scope="module")
def fashion(fashion_root):
    return {s: load_classification("fashion_mnist", s, fashion_root) for s in ("train", "test")}


def test_fashion_mnist_counts_shapes_and_labels(fashion):
    for split, n in (("train", 60_000), ("test", 10_000)):
        data = fashion[split]
        assert (data.name, data.split, len(data)) == ("fashion_mnist", split, n)
        assert data.images.shape == (n, 1, 28, 28) and data.images.dtype == torch.uint8
        assert data.labels.dtype == torch.int64
        assert data.labels.bincount().tolist() == [n // 10] * 10
        assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    # the first labels of each split, as published; white garment on black
    assert fashion["train"].labels[:5].tolist() == [9, 0, 0, 3, 0]
    assert fashion["test"].labels[:5].tolist() == [9, 2, 1, 1, 6]
    mean, std = channel_stats(fashion["train"].images)
    assert mean[0] == pytest.approx(0.2860, abs=1e-4) and std[0] == pytest.approx(0.3530, abs=1e-4)


def test_fashion_mnist_files_are_the_official_ones(fashion_root):
    """Each file has the official md5, or does once its gzip name and timestamp are restored."""
    for stem, remote in FILES.items():
        path = fashion_root / remote.relpath
        official = remote.digest.removeprefix("md5:")
        if file_digest(path, "md5") == official:
            continue
        raw = path.read_bytes()
        assert raw[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no flags (no name)
        restored = (
            b"\x1f\x8b\x08\x08"  # FNAME flag set
            + struct.pack("<I", OFFICIAL_GZIP_MTIME[stem])
            + raw[8:10]  # extra flags, OS
            + stem.encode()
            + b"\0"
            + raw[10:]  # the compressed data, CRC and size, unchanged
        )
        assert hashlib.md5(restored).hexdigest() == official, stem


# ---------------------------------------------------------------- offline, IDX errors


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    magic = (0x08 << 8 | array.ndim) if magic is None else magic
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(header + array.astype(np.uint8).tobytes())
    return path


def fashion_test_files(root: Path, n: int = 10) -> tuple[Path, Path]:
    pixels = np.random.default_rng(0).integers(0, 256, (n, 28, 28))
    images = write_idx(root / "fashion-mnist/t10k-images-idx3-ubyte.gz", pixels)
    labels = write_idx(root / "fashion-mnist/t10k-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return images, labels


def test_truncated_idx_gzip_names_the_file(tmp_path, offline):
    images, _ = fashion_test_files(tmp_path)
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    with pytest.raises(DataError, match="not a readable gzip") as info:
        load_classification("fashion_mnist", "test", tmp_path)
    assert str(images) in str(info.value) and FILES["t10k-images-idx3-ubyte"].url in str(info.value)
    assert not offline  # the file was there: nothing was downloaded


def test_wrong_idx_magic_and_wrong_count_name_the_file(tmp_path, offline):
    images, _ = fashion_test_files(tmp_path)
    write_idx(images, np.ones((10, 28, 28)), magic=0x00000801)
    with pytest.raises(DataError, match="magic number 0x00000801") as info:
        load_classification("fashion_mnist", "test", tmp_path)
    assert str(images) in str(info.value)
    fashion_test_files(tmp_path)  # valid IDX files, but 10 images instead of 10,000
    with pytest.raises(DataError, match=r"expected \(10000, 28, 28\)"):
        load_classification("fashion_mnist", "test", tmp_path)


def test_idx_with_the_right_shape_but_other_content_is_refused(tmp_path, offline):
    images, _ = fashion_test_files(tmp_path, n=10_000)
    with pytest.raises(DataError, match="sha256 mismatch") as info:
        load_classification("fashion_mnist", "test", tmp_path)
    assert str(images) in str(info.value)


def test_unknown_name_or_split_lists_the_choices(tmp_path):
    with pytest.raises(DataError, match="fashion_mnist.*cifar10.*cifar100"):
        load_classification("cifar", "train", tmp_path)
    with pytest.raises(DataError, match="'train', 'test'"):
        load_classification("cifar10", "val", tmp_path)  # type: ignore[arg-type]


# ---------------------------------------------------------------- generated CIFAR archives


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 byte strings, as cPickle did for the CIFAR files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj, *args):
        size = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([size]) if size < 256 else pickle.BINSTRING
        self.write(head if size < 256 else head + struct.pack("<i", size))
        self.write(obj)
        self.memoize(obj)

    def save_str(self, obj, *args):
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj) -> bytes:
    out = io.BytesIO()
    Py2Pickler(out, protocol=2).dump(obj)
    # numpy 1.x, which wrote the files, named the array constructor numpy.core.multiarray
    return out.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """[n, 3, 32, 32] -> [n, 3072]: the red plane, then green, then blue, each row-major."""
    return np.concatenate([images[:, c].reshape(len(images), 1024) for c in range(3)], axis=1)


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def make_cifar(root: Path, name: str, seed: int = 0, replace: dict[str, bytes] | None = None):
    """A small archive of the official layout; returns {split: (images, labels, class names)}."""
    rng = np.random.default_rng(seed)
    n_classes = 10 if name == "cifar10" else 100
    top = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    names = [f"class_{k}" for k in range(n_classes)]
    sizes = {"cifar10": {"data_batch_1": 3, "data_batch_2": 4, "data_batch_3": 1,
                         "data_batch_4": 5, "data_batch_5": 2, "test_batch": 4},
             "cifar100": {"train": 6, "test": 3}}[name]  # fmt: skip
    members, splits = {f"{top}/readme.html": b"<html></html>"}, {}
    for member, n in sizes.items():
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, n_classes, n).tolist()
        batch = {"batch_label": f"{member} of 1", "data": cifar_rows(images),
                 "filenames": [f"img_{i}.png" for i in range(n)]}  # fmt: skip
        if name == "cifar10":
            batch["labels"] = labels
        else:
            batch["fine_labels"] = labels
            batch["coarse_labels"] = [k // 5 for k in labels]
        members[f"{top}/{member}"] = py2_pickle(batch)
        split = "test" if "test" in member else "train"
        old = splits.get(split, (np.zeros((0, 3, 32, 32), np.uint8), []))
        splits[split] = (np.concatenate([old[0], images]), old[1] + labels, names)
    if name == "cifar10":
        meta = {"num_cases_per_batch": 10000, "label_names": names, "num_vis": 3072}
        members[f"{top}/batches.meta"] = py2_pickle(meta)
    else:
        meta = {"fine_label_names": names, "coarse_label_names": [f"super_{k}" for k in range(20)]}
        members[f"{top}/meta"] = py2_pickle(meta)
    members.update(replace or {})
    write_tar(root / ARCHIVES[name].relpath, members)
    return splits


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_archive_round_trips(tmp_path, offline, name):
    expected = make_cifar(tmp_path, name)
    for split in ("train", "test"):
        data = load_classification(name, split, tmp_path)
        images, labels, names = expected[split]
        assert isinstance(data, LabelledImages) and data.class_names == names
        assert data.images.dtype == torch.uint8 and data.images.shape == images.shape
        assert torch.equal(data.images, torch.from_numpy(images))
        assert data.labels.tolist() == labels and data.labels.dtype == torch.int64
    # layout: green pixel (y=5, x=7) of image 2 is byte 1024 + 5 * 32 + 7 of its row
    assert data.images[2, 1, 5, 7] == cifar_rows(images)[2, 1024 + 5 * 32 + 7]
    assert not offline


class RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize(
    "payload, message",
    [
        ("os.system", r"refused to load global (posix|nt|os)\.system"),
        ([1, 2, 3], "holds a list, not a dict"),
        ({b"data": {1, 2}}, "values other than"),
    ],
)
def test_unsafe_or_unexpected_pickles_are_refused(tmp_path, payload, message):
    marker = tmp_path / "pwned"
    payload = {b"data": RunsACommand(marker)} if payload == "os.system" else payload
    evil = {"cifar-10-batches-py/data_batch_1": pickle.dumps(payload, protocol=4)}
    make_cifar(tmp_path, "cifar10", replace=evil)
    with pytest.raises(DataError, match=message) as info:
        load_classification("cifar10", "train", tmp_path)
    assert "data_batch_1" in str(info.value)
    assert not marker.exists()


def test_missing_cifar_archive_offline_names_file_and_place(tmp_path, offline):
    with pytest.raises(DataError) as info:
        load_classification("cifar100", "train", tmp_path)
    target = tmp_path / "cifar" / "cifar-100-python.tar.gz"
    assert str(target) in str(info.value) and "HYPERMAML_DATA" in str(info.value)
    assert offline == ["https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"]
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # no partial download left


def test_corrupt_or_incomplete_cifar_archive_names_it(tmp_path, offline):
    make_cifar(tmp_path, "cifar10")
    path = tmp_path / ARCHIVES["cifar10"].relpath
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="not a readable tar.gz") as info:
        load_classification("cifar10", "test", tmp_path)
    assert str(path) in str(info.value) and ARCHIVES["cifar10"].url in str(info.value)
    write_tar(path, {"cifar-10-batches-py/test_batch": b""})
    with pytest.raises(DataError, match="lacks.*batches.meta"):
        load_classification("cifar10", "test", tmp_path)


# ---------------------------------------------------------------- augmentation and batches


def random_images(n=32, c=3, size=8, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, c, size, size), generator=g, dtype=torch.uint8)


def test_crop_without_padding_is_the_identity():
    images = random_images()
    assert torch.equal(random_crop(images, 0, torch.Generator().manual_seed(0)), images)


def test_crop_outputs_windows_of_the_padded_input_at_varied_offsets():
    images, p = random_images(n=64), 3
    out = random_crop(images, p, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (p, p, p, p))
    offsets = []
    for i in range(len(images)):
        hits = [(t, s) for t in range(2 * p + 1) for s in range(2 * p + 1)
                if torch.equal(out[i], padded[i, :, t : t + 8, s : s + 8])]  # fmt: skip
        assert len(hits) == 1, f"image {i} is not one window of its padded input"
        offsets.append(hits[0])
    assert len(set(offsets)) > 20  # 49 possible offsets, 64 images
    assert {t for t, _ in offsets} == set(range(2 * p + 1))
    # crop_at is exact and dtype-agnostic
    top, left = torch.tensor([o[0] for o in offsets]), torch.tensor([o[1] for o in offsets])
    assert torch.equal(crop_at(images.float(), p, top, left), out.float())


def test_flip_mirrors_exactly_the_chosen_images():
    images, g = random_images(n=40), torch.Generator().manual_seed(2)
    chosen = torch.rand(40, generator=torch.Generator().manual_seed(2)) < 0.5
    out = random_flip(images, g)
    for i in range(40):
        assert torch.equal(out[i], images[i].flip(-1) if chosen[i] else images[i])
    assert 0 < int(chosen.sum()) < 40


def batch_list(data, seed, *stats, **kwargs):
    return list(batches(data, 4, *stats, generator=torch.Generator().manual_seed(seed), **kwargs))


def test_batches_are_reproducible_and_cover_the_data():
    images = random_images(n=10)
    data = LabelledImages("cifar10", "train", images, torch.arange(10) % 3, ["a", "b", "c"])
    augment = DEFAULT_AUGMENT["cifar10"]
    first, again = batch_list(data, 0, augment=augment), batch_list(data, 0, augment=augment)
    other = batch_list(data, 1, augment=augment)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(first[0][0], other[0][0])
    assert [len(y) for _, y in first] == [4, 4, 2]
    assert [len(y) for _, y in batch_list(data, 0, drop_last=True)] == [4, 4]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, batch_list(data, 0, augment=True)))
    plain = list(batches(data, 4, shuffle=False))  # no generator needed
    assert torch.equal(torch.cat([x for x, _ in plain]), images.float() / 255)
    assert torch.cat([y for _, y in plain]).tolist() == data.labels.tolist()
    assert first[0][0].dtype == torch.float32 and 0 <= first[0][0].min() <= first[0][0].max() <= 1
    # normalised with the set's own statistics: zero mean and unit deviation per channel
    stats = channel_stats(images)
    full = torch.cat([x for x, _ in batch_list(data, 0, *stats)])
    assert torch.allclose(full.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(full.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    as_tensors = [torch.tensor(v) for v in stats]
    assert torch.equal(torch.cat([x for x, _ in batch_list(data, 0, *as_tensors)]), full)


def test_augment_batch_with_no_augmentation_changes_nothing():
    images = random_images()
    assert torch.equal(augment_batch(images, Augment(), torch.Generator()), images)


def test_batches_refuse_randomness_without_a_generator():
    data = LabelledImages(
        "toy", "train", random_images(n=4), torch.zeros(4, dtype=torch.long), ["a"]
    )
    with pytest.raises(ValueError, match="Generator"):
        next(batches(data, 2))
    with pytest.raises(ValueError, match="no default augmentation for 'toy'"):
        next(batches(data, 2, shuffle=False, augment=True))
