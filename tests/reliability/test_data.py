"""Every data read is safe and never silently wrong: the decoded-image cache is keyed on content,
a cache that cannot be written only warns, corrupt archives and cut split files are DataErrors
naming the file and the fix. All on tiny generated files (the Omniglot size constants are
patched down to 3 characters x 2 drawers)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hypermaml.data.cache as cache
import hypermaml.data.datasets as datasets
import hypermaml.data.emnist as emnist
import hypermaml.data.omniglot as omniglot
from hypermaml.data import DataError, load_split
from hypermaml.data.cache import CacheWarning
from hypermaml.data.cifar import ARCHIVES, load_cifar
from hypermaml.data.fashion_mnist import FILES, load_fashion_mnist
from hypermaml.data.files import content_sha256
from tests.conftest import files_under

# ---------------------------------------------------------------- tiny generated data


@pytest.fixture
def tiny_omniglot(monkeypatch):
    """Omniglot of 3 characters (2 background, alphabet A; 1 evaluation, alphabet B) x 2 drawers."""
    for name, value in (("N_CHARACTERS", 3), ("N_BACKGROUND", 2), ("N_DRAWERS", 2),
                        ("N_ALPHABETS", (1, 1))):  # fmt: skip
        monkeypatch.setattr(omniglot, name, value)


@pytest.fixture
def decodes(monkeypatch) -> list[Path]:
    """The sources each Omniglot decoding (a cache miss) read, one entry per decoding."""
    calls: list[Path] = []
    real_npz, real_zips = omniglot._from_npz, omniglot._from_zips

    def from_npz(path):
        calls.append(path)
        return real_npz(path)

    def from_zips(paths):
        calls.append(paths[0])
        return real_zips(paths)

    monkeypatch.setattr(omniglot, "_from_npz", from_npz)
    monkeypatch.setattr(omniglot, "_from_zips", from_zips)
    return calls


def tiny_pixels(seed: int) -> np.ndarray:
    """bool [3, 2, 105, 105], True = white page, a few ink pixels."""
    return np.random.default_rng(seed).random((3, 2, 105, 105)) > 0.1


def write_tiny_npz(root: Path, pixels: np.ndarray, **replace) -> Path:
    path = root / omniglot.NPZ
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "images": pixels,
        "alphabet": np.array(["A", "A", "B"]),
        "character": np.array(["character01", "character02", "character01"]),
        "background": np.array([True, True, False]),
    }
    np.savez(path, **{**arrays, **replace})  # uncompressed: other pixels, same size
    return path


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def write_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return path


def write_tiny_omniglot_zips(root: Path, method: int = zipfile.ZIP_DEFLATED, **extra) -> list[Path]:
    """The two official zips of the tiny Omniglot (plus ``extra`` members in the background one)."""
    white = (tiny_pixels(0) * 255).astype(np.uint8)
    background, evaluation = {}, {}
    for char_id, (alphabet, character, members, top) in enumerate(
        [("A", "character01", background, "images_background"),
         ("A", "character02", background, "images_background"),
         ("B", "character01", evaluation, "images_evaluation")], 1
    ):  # fmt: skip
        for drawer in (1, 2):
            name = f"{top}/{alphabet}/{character}/{char_id:04d}_{drawer:02d}.png"
            members[name] = png_bytes(white[char_id - 1, drawer - 1])
    background.update(extra)
    return [
        write_zip(root / omniglot.BACKGROUND_ZIP.relpath, background, method),
        write_zip(root / omniglot.EVALUATION_ZIP.relpath, evaluation, method),
    ]


def expected_images(pixels: np.ndarray) -> torch.Tensor:
    return omniglot._resize(torch.from_numpy(pixels.reshape(-1, 105, 105))).reshape(3, 2, 28, 28)


# ---------------------------------------------------------------- 1. content-keyed cache


def test_cache_rebuilds_when_source_content_changes_at_same_size_and_mtime(
    tmp_path, tiny_omniglot, cache_folder, decodes, offline
):
    npz = write_tiny_npz(tmp_path, tiny_pixels(0))
    stat = npz.stat()
    first = omniglot.load_omniglot(tmp_path)
    assert torch.equal(first.images, expected_images(tiny_pixels(0)))
    assert omniglot.load_omniglot(tmp_path).images.equal(first.images) and len(decodes) == 1
    write_tiny_npz(tmp_path, tiny_pixels(1))  # other pixels, same size, same stamp
    os.utime(npz, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert npz.stat().st_size == stat.st_size and npz.stat().st_mtime_ns == stat.st_mtime_ns
    second = omniglot.load_omniglot(tmp_path)
    assert len(decodes) == 2  # the stale entry was not trusted
    assert torch.equal(second.images, expected_images(tiny_pixels(1)))
    assert not torch.equal(second.images, first.images)
    assert omniglot.load_omniglot(tmp_path).images.equal(second.images) and len(decodes) == 2


def test_cache_rebuilds_when_the_decoding_version_changes(
    tmp_path, tiny_omniglot, cache_folder, decodes, monkeypatch
):
    write_tiny_npz(tmp_path, tiny_pixels(0))
    omniglot.load_omniglot(tmp_path)
    omniglot.load_omniglot(tmp_path)
    assert len(decodes) == 1
    monkeypatch.setattr(omniglot, "DECODE_VERSION", omniglot.DECODE_VERSION + 1)
    omniglot.load_omniglot(tmp_path)
    assert len(decodes) == 2


@pytest.mark.parametrize("entry", ["garbage", "other_key", "wrong_content"])
def test_broken_or_foreign_cache_entry_is_rebuilt(
    tmp_path, tiny_omniglot, cache_folder, decodes, entry
):
    write_tiny_npz(tmp_path, tiny_pixels(0))
    omniglot.load_omniglot(tmp_path)
    (path,) = cache_folder.glob("omniglot28-*.pt")
    if entry == "garbage":
        path.write_bytes(b"not a torch file" * 10)
    else:
        blob = torch.load(path, weights_only=True)
        if entry == "other_key":
            blob["key"] = "0" * 64
        else:
            blob["images"] = blob["images"][:2]
        torch.save(blob, path)
    data = omniglot.load_omniglot(tmp_path)
    assert len(decodes) == 2
    assert torch.equal(data.images, expected_images(tiny_pixels(0)))
    assert torch.load(path, weights_only=True)["key"] != "0" * 64  # rewritten with its key


def test_cache_key_covers_content_name_kind_and_version(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 100)
    b.write_bytes(b"x" * 100)
    key = cache.cache_key("kind", 1, [a])
    assert key == cache.cache_key("kind", 1, [a])
    assert key != cache.cache_key("kind", 1, [b])  # same content, other name
    assert key != cache.cache_key("other", 1, [a])
    assert key != cache.cache_key("kind", 2, [a])
    a.write_bytes(b"y" * 100)
    assert key != cache.cache_key("kind", 1, [a])


# ---------------------------------------------------------------- 2. a failed cache write warns


def _make_read_only(folder: Path, monkeypatch) -> None:
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores the mode: refuse the write the same way

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(folder))

        monkeypatch.setattr(cache.tempfile, "NamedTemporaryFile", refuse)


def _fail_mid_write(folder: Path, monkeypatch) -> None:
    def disk_full(obj, fh):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.torch, "save", disk_full)


@pytest.mark.parametrize("problem", ["a_file", "under_a_file", "read_only", "disk_full"])
def test_unwritable_cache_warns_and_returns_the_decoded_images(
    tmp_path, tiny_omniglot, monkeypatch, problem
):
    write_tiny_npz(tmp_path, tiny_pixels(0))
    folder = tmp_path / "cache"
    if problem == "a_file":
        folder.write_text("a file where the cache folder should be")
    elif problem == "under_a_file":
        (tmp_path / "file").write_text("x")
        folder = tmp_path / "file" / "cache"
    elif problem == "read_only":
        _make_read_only(folder, monkeypatch)
    else:
        _fail_mid_write(folder, monkeypatch)
    monkeypatch.setenv("HYPERMAML_CACHE", str(folder))
    with pytest.warns(CacheWarning) as record:
        data = omniglot.load_omniglot(tmp_path)
    assert torch.equal(data.images, expected_images(tiny_pixels(0)))
    (warning,) = record
    message = str(warning.message)
    assert str(folder) in message and "HYPERMAML_CACHE" in message and "\n" not in message
    if folder.is_dir():
        assert list(folder.iterdir()) == []  # no entry and no temporary file left behind


def test_cache_write_is_atomic_through_a_unique_temporary_file(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("HYPERMAML_CACHE", str(folder))
    seen: list[str] = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(os.path.basename(src))
        assert not Path(dst).exists()  # the entry appears only once complete
        real_replace(src, dst)

    monkeypatch.setattr(cache.os, "replace", replace)
    path = cache.entry_path("kind", "a" * 64)
    assert cache.write_entry(path, "a" * 64, {"x": torch.arange(3)})
    assert cache.read_entry(path, "a" * 64)["x"].tolist() == [0, 1, 2]
    assert cache.read_entry(path, "b" * 64) is None
    assert seen[0].startswith(".kind-") and seen[0].endswith(".tmp") and seen[0] != path.name
    assert files_under(folder) == [path]


# ---------------------------------------------------------------- 3. corrupt compressed data


def _corrupt_member(archive: Path, member: str, how: str) -> None:
    """Break one member of a zip in place: ``crc`` flips a byte of a stored member, ``deflate``
    overwrites a deflated member's stream with bytes that are not deflate."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    raw = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    if how == "crc":
        raw[start + info.compress_size // 2] ^= 0xFF
    else:
        raw[start : start + info.compress_size] = b"\xff" * info.compress_size
    archive.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["crc", "deflate"])
def test_corrupt_member_of_the_omniglot_zip_names_archive_member_and_fix(
    tmp_path, tiny_omniglot, cache_folder, offline, how
):
    method = zipfile.ZIP_STORED if how == "crc" else zipfile.ZIP_DEFLATED
    background, _ = write_tiny_omniglot_zips(tmp_path, method)
    member = "images_background/A/character02/0002_01.png"
    _corrupt_member(background, member, how)
    with pytest.raises(DataError) as info:
        omniglot.load_omniglot(tmp_path)
    message = str(info.value)
    assert f"member {member} of {background} is corrupt" in message
    assert ("Bad CRC-32" if how == "crc" else "while decompressing data") in message
    assert f"delete {background}" in message
    assert f"put a good copy of that file at {background}" in message
    assert not offline and not any(cache_folder.glob("*.pt"))


@pytest.fixture
def tiny_emnist(monkeypatch):
    monkeypatch.setattr(emnist, "N_CLASSES", 2)
    monkeypatch.setattr(emnist, "N_PER_CLASS", 2)


def write_tiny_emnist(root: Path, method: int = zipfile.ZIP_DEFLATED, **members) -> Path:
    ink = np.random.default_rng(0).integers(0, 256, (2, 2, 28, 28), dtype=np.uint8)
    blobs = {f"emnist/{c}/{i}.png": png_bytes(ink[c, i]) for c in range(2) for i in range(2)}
    return write_zip(root / emnist.EMNIST_SUBSET.relpath, {**blobs, **members}, method)


@pytest.mark.parametrize("how", ["crc", "deflate"])
def test_corrupt_member_of_the_emnist_zip_names_archive_member_and_fix(
    tmp_path, tiny_emnist, offline, how
):
    method = zipfile.ZIP_STORED if how == "crc" else zipfile.ZIP_DEFLATED
    path = write_tiny_emnist(tmp_path, method)
    assert emnist.load_emnist_subset(tmp_path).shape == (2, 2, 28, 28)
    _corrupt_member(path, "emnist/1/0.png", how)
    with pytest.raises(DataError) as info:
        emnist.load_emnist_subset(tmp_path)
    message = str(info.value)
    assert f"member emnist/1/0.png of {path} is corrupt" in message
    assert f"delete {path}" in message and emnist.EMNIST_SUBSET.url in message


def write_idx_gz(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    header = bytes([0, 0, 0x08, array.ndim]) + dims
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))
    return path


@pytest.mark.parametrize("how", ["cut", "crc", "garbled", "trailing_garbage"])
def test_corrupt_gzip_idx_names_the_file_and_fix(tmp_path, offline, how):
    images = write_idx_gz(tmp_path / FILES["t10k-images-idx3-ubyte"].relpath,
                          np.random.default_rng(0).integers(0, 256, (50, 28, 28)))  # fmt: skip
    write_idx_gz(tmp_path / FILES["t10k-labels-idx1-ubyte"].relpath, np.arange(50) % 10)
    raw = bytearray(images.read_bytes())
    if how == "cut":
        raw = raw[: len(raw) * 2 // 3]
    elif how == "crc":
        raw[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    elif how == "garbled":
        raw[20 : len(raw) - 20] = b"\xff" * (len(raw) - 40)
    else:
        raw += b"garbage after the gzip stream"
    images.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="not a readable gzip file") as info:
        load_fashion_mnist(tmp_path, "test")
    message = str(info.value)
    assert str(images) in message and f"delete {images}" in message
    assert FILES["t10k-images-idx3-ubyte"].url in message and "\n" not in message


def cifar_members(n: int = 40) -> dict[str, bytes]:
    """The members of a tiny CIFAR-10 archive that the test split reads."""
    rng = np.random.default_rng(0)
    batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             "labels": (np.arange(n) % 10).tolist()}  # fmt: skip
    meta = {"label_names": [f"class_{k}" for k in range(10)]}
    return {
        "cifar-10-batches-py/batches.meta": pickle.dumps(meta, protocol=4),
        "cifar-10-batches-py/test_batch": pickle.dumps(batch, protocol=4),
    }


def write_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    """A tar.gz whose deflate stream stores the bytes as they are (level 0): a flipped byte
    decodes to a flipped byte, caught only by the gzip CRC."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(buf.getvalue(), compresslevel=0, mtime=0))
    return path


@pytest.mark.parametrize("how", ["flipped_pixel", "cut_in_member"])
def test_corrupt_cifar_tar_gz_names_archive_and_fix(tmp_path, offline, how):
    members = cifar_members()
    path = write_tar_gz(tmp_path / ARCHIVES["cifar10"].relpath, members)
    images, _, _ = load_cifar(tmp_path, "cifar10", "test")
    raw = bytearray(path.read_bytes())
    pixels = bytes(np.asarray(pickle.loads(members["cifar-10-batches-py/test_batch"])["data"]))
    at = raw.index(pixels[:64]) + 100  # a pixel byte of the test batch
    if how == "flipped_pixel":
        raw[at] ^= 0x01
    else:
        raw = raw[:at]
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="not a readable tar.gz archive") as info:
        load_cifar(tmp_path, "cifar10", "test")
    message = str(info.value)
    assert str(path) in message and f"delete {path}" in message
    if how == "cut_in_member":
        assert "member cifar-10-batches-py/test_batch is corrupt" in message


# ---------------------------------------------------------------- 4. split files checked by content


@pytest.fixture
def split_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the shipped split files that the loader reads instead."""
    folder = tmp_path / "splits"
    folder.mkdir()
    for split in ("train", "val", "test"):
        (folder / f"{split}.txt").write_bytes((omniglot.SPLITS / f"{split}.txt").read_bytes())
    monkeypatch.setattr(omniglot, "SPLITS", folder)
    return folder


def test_cut_split_file_is_refused_naming_file_and_counts(split_copy):
    path = split_copy / "train.txt"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:100]))
    with pytest.raises(DataError) as info:
        omniglot.read_split_file("train")
    message = str(info.value)
    assert str(path) in message and "100 class lines, expected 4112" in message
    assert "reinstall hypermaml" in message


@pytest.mark.parametrize("damage", ["cut", "duplicated"])
def test_split_file_with_a_matching_digest_but_wrong_class_count_is_refused(
    split_copy, monkeypatch, damage
):
    """Even a re-pinned digest does not let a short split through: the count is checked too."""
    path = split_copy / "val.txt"
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:-5] if damage == "cut" else lines[:-1] + lines[:1]
    path.write_text("".join(kept))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(omniglot.SPLIT_SHA256, "val", digest)
    with pytest.raises(DataError, match="expected 688") as info:
        omniglot.read_split_file("val")
    assert str(path) in str(info.value) and "reinstall hypermaml" in str(info.value)


def test_missing_split_file_or_unknown_split_is_a_data_error(split_copy):
    (split_copy / "test.txt").unlink()
    with pytest.raises(DataError, match="reinstall hypermaml") as info:
        omniglot.read_split_file("test")
    assert str(split_copy / "test.txt") in str(info.value)
    with pytest.raises(DataError, match="unknown Omniglot split 'trian'"):
        omniglot.read_split_file("trian")


def test_shipped_splits_have_the_documented_class_counts():
    for split, n in omniglot.SPLIT_CLASSES.items():
        assert (
            len(set(omniglot.read_split_file(split)))
            == n
            == datasets.N_CLASSES[("omniglot", split)]
        )


def test_emnist_split_with_too_few_images_per_class_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "load_emnist_subset", lambda root: torch.zeros(62, 199, 28, 28))
    with pytest.raises(DataError) as info:
        load_split("cross_char", "val", tmp_path)
    message = str(info.value)
    path = tmp_path / emnist.EMNIST_SUBSET.relpath
    assert str(path) in message and "31 classes of 199 images, expected 31 of 200" in message


def test_cross_char_train_without_the_latin_alphabet_is_refused(tmp_path, monkeypatch):
    """Omniglot with its alphabets renamed would keep all 1,623 characters as training classes."""
    images = torch.zeros(1623, 20, 28, 28, dtype=torch.uint8)
    fake = omniglot.Omniglot(images, ["Greek"] * 1623, ["c"] * 1623, torch.ones(1623, dtype=bool))
    monkeypatch.setattr(datasets, "load_omniglot", lambda root: fake)
    with pytest.raises(DataError) as info:
        load_split("cross_char", "train", tmp_path)
    message = str(info.value)
    assert "1623 classes of 20 images, expected 1597 of 20" in message
    assert str(tmp_path / omniglot.BACKGROUND_ZIP.relpath) in message


# ---------------------------------------------------------------- 5. other unreadable or odd files


def test_unreadable_source_is_a_data_error_naming_it(tmp_path):
    folder = tmp_path / "images_background.zip"
    folder.mkdir()  # a folder where the file should be
    with pytest.raises(DataError) as info:
        content_sha256(folder)
    assert str(folder) in str(info.value) and "good copy" in str(info.value)


def test_npz_with_uint8_images_is_refused_not_decoded_to_white(
    tmp_path, tiny_omniglot, cache_folder
):
    npz = write_tiny_npz(tmp_path, tiny_pixels(0), images=tiny_pixels(0).astype(np.uint8) * 255)
    with pytest.raises(DataError, match="expected bool") as info:
        omniglot.load_omniglot(tmp_path)
    assert str(npz) in str(info.value)


@pytest.mark.parametrize(
    ("member", "blob", "must_say"),
    [
        ("images_background/stray.png", None, "is not named Alphabet/characterNN/XXXX_YY.png"),
        ("images_background/A/character02/0002_01x.png", None, "is not named"),
        ("images_background/A/character01/0001_09.png", None, "outside"),
        ("images_background/A/character01/0001_01.png", "small", "expected 105x105"),
    ],
)
def test_odd_member_of_the_omniglot_zip_is_named(
    tmp_path, tiny_omniglot, cache_folder, offline, member, blob, must_say
):
    size = 28 if blob == "small" else 105
    png = png_bytes(np.full((size, size), 255, dtype=np.uint8))
    background, _ = write_tiny_omniglot_zips(tmp_path, **{member: png})
    with pytest.raises(DataError, match=must_say) as info:
        omniglot.load_omniglot(tmp_path)
    assert member in str(info.value) and str(background) in str(info.value)


def test_omniglot_zip_with_a_duplicated_drawer_is_refused(
    tmp_path, tiny_omniglot, cache_folder, offline
):
    png = png_bytes(np.full((105, 105), 255, dtype=np.uint8))
    extra = {"images_background/A/character01/copy/0001_01.png": png}
    background, _ = write_tiny_omniglot_zips(tmp_path, **extra)
    with pytest.raises(DataError) as info:
        omniglot.load_omniglot(tmp_path)
    assert str(background) in str(info.value)


def test_empty_label_file_is_a_data_error(tmp_path, offline):
    labels = write_idx_gz(tmp_path / FILES["t10k-labels-idx1-ubyte"].relpath, np.zeros(0))
    write_idx_gz(tmp_path / FILES["t10k-images-idx3-ubyte"].relpath,
                 np.zeros((10_000, 28, 28), dtype=np.uint8))  # fmt: skip
    with pytest.raises(DataError, match="0 labels up to None") as info:
        load_fashion_mnist(tmp_path, "test")
    assert str(labels) in str(info.value)


@pytest.mark.parametrize("field", ["names", "labels"])
def test_cifar_class_names_or_labels_of_the_wrong_kind_are_data_errors(tmp_path, offline, field):
    members = cifar_members()
    if field == "names":
        meta = {"label_names": [b"\xff\xfe"] * 10}
        members["cifar-10-batches-py/batches.meta"] = pickle.dumps(meta, protocol=4)
    else:
        batch = {"data": np.zeros((2, 3072), np.uint8), "labels": ["cat", "dog"]}
        members["cifar-10-batches-py/test_batch"] = pickle.dumps(batch, protocol=4)
    path = write_tar_gz(tmp_path / ARCHIVES["cifar10"].relpath, members)
    with pytest.raises(DataError, match="not a list of text|not integers") as info:
        load_cifar(tmp_path, "cifar10", "test")
    assert str(path) in str(info.value) and f"delete {path}" in str(info.value)
