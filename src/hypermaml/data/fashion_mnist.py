"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 70,000 grayscale 28x28 images of 10 clothing kinds.

Read from the four official IDX gzip files under ``<data dir>/fashion-mnist/``. A missing file
is downloaded from the project's S3 site and checked against the md5 its README publishes.
Files already in place are checked by content instead (IDX header, sizes and the sha256 of the
decompressed bytes), because repackaged copies, e.g. Debian's ``dataset-fashion-mnist``,
rewrite the gzip header (name and timestamp) and so change the md5 of the .gz but not its data.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .files import RemoteFile, fetch, replace_hint

_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_MD5 = {  # from the README of github.com/zalandoresearch/fashion-mnist
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
FILES = {
    stem: RemoteFile(f"fashion-mnist/{stem}.gz", f"{_URL}{stem}.gz", f"md5:{md5}")
    for stem, md5 in _MD5.items()
}
# sha256 of the decompressed IDX bytes of the official files above.
CONTENT_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
N_IMAGES = {"train": 60_000, "test": 10_000}
IMAGE_SIZE = 28
_PREFIX = {"train": "train", "test": "t10k"}
_IDX_UINT8 = 0x08  # IDX type code of unsigned bytes


def _fix(path: Path, remote: RemoteFile) -> str:
    return replace_hint(path, remote)


def read_idx(path: Path, remote: RemoteFile, ndim: int) -> tuple[np.ndarray, bytes]:
    """The uint8 array of a gzip IDX file with ``ndim`` dimensions, and its decompressed bytes.

    IDX: two zero bytes, type code (0x08 = uint8), number of dimensions, then one big-endian
    uint32 per dimension, then the data in row-major order.
    """
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # truncated, not gzip, bad CRC or deflate ...
        raise DataError(
            f"{path} is not a readable gzip file ({type(exc).__name__}: {exc}); "
            f"{_fix(path, remote)}"
        ) from exc
    header = 4 + 4 * ndim
    expected_magic = (_IDX_UINT8 << 8) | ndim
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic != expected_magic:
        found = "no header" if magic is None else f"magic number 0x{magic:08x}"
        raise DataError(
            f"{path} is not an IDX file of {ndim}-d uint8 data ({found}, expected "
            f"0x{expected_magic:08x}); {_fix(path, remote)}"
        )
    if len(raw) < header:
        raise DataError(f"{path}: IDX header cut short; {_fix(path, remote)}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + math.prod(dims):
        raise DataError(
            f"{path}: the header announces {dims} = {math.prod(dims)} bytes of data but the "
            f"file holds {len(raw) - header}; {_fix(path, remote)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims), raw


def load_fashion_mnist(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images uint8 [n, 1, 28, 28], labels int64 [n], the 10 class names) of ``split``.

    ``split`` is "train" (n = 60,000) or "test" (n = 10,000); 0 = background (black).
    """
    image_stem = f"{_PREFIX[split]}-images-idx3-ubyte"
    label_stem = f"{_PREFIX[split]}-labels-idx1-ubyte"
    image_path = fetch(FILES[image_stem], root)
    label_path = fetch(FILES[label_stem], root)
    images, image_raw = read_idx(image_path, FILES[image_stem], 3)
    labels, label_raw = read_idx(label_path, FILES[label_stem], 1)
    n = N_IMAGES[split]
    if images.shape != (n, IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{image_path} holds images of shape {images.shape}, expected ({n}, 28, 28); "
            f"{_fix(image_path, FILES[image_stem])}"
        )
    top = int(labels.max()) if labels.size else None
    if labels.shape != (n,) or top is None or top >= len(CLASS_NAMES):
        raise DataError(
            f"{label_path} holds {labels.shape[0]} labels up to {top}, expected "
            f"{n} labels in 0..9; {_fix(label_path, FILES[label_stem])}"
        )
    checks = ((image_path, image_stem, image_raw), (label_path, label_stem, label_raw))
    for path, stem, raw in checks:
        if hashlib.sha256(raw).hexdigest() != CONTENT_SHA256[stem]:
            raise DataError(
                f"{path} decompresses to data that differ from the official Fashion-MNIST file "
                f"(sha256 mismatch); {_fix(path, FILES[stem])}"
            )
    images_t = torch.from_numpy(images.copy())[:, None]
    return images_t, torch.from_numpy(labels.astype(np.int64)), list(CLASS_NAMES)
