"""Omniglot: 1,623 handwritten characters from 50 alphabets, 20 drawers each.

Images are read from the lossless ``omniglot_105x105_bool.npz`` when present, else from the two
official zips (downloaded when missing), resized to 28x28 with antialiasing and cached as uint8
(255 = white background, 0 = ink).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .files import RemoteFile, cache_dir, fetch

_OMNIGLOT_RAW = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
BACKGROUND_ZIP = RemoteFile(
    "omniglot/images_background.zip",
    _OMNIGLOT_RAW + "images_background.zip",
    "md5:68d2efa1b9178cc56df9314c21c6e718",
)
EVALUATION_ZIP = RemoteFile(
    "omniglot/images_evaluation.zip",
    _OMNIGLOT_RAW + "images_evaluation.zip",
    "md5:6b91aef0f799c5bb55b94e3f2daec811",
)
NPZ = "omniglot/omniglot_105x105_bool.npz"
SPLITS = files("hypermaml.data") / "splits" / "omniglot"
"""The Vinyals split files (``Alphabet/characterNN/rotDDD`` per line), shipped with the package:
jakesnell/prototypical-networks@c9bb4d25 ``data/omniglot/splits/vinyals/`` (MIT, Copyright (c)
2017 Jake Snell)."""
SPLIT_SHA256 = {
    "train": "984522c194c30fb678ce53304a160a42faf5403ad4f9a67010f32dd3a35738e0",
    "val": "11f99e54faee3e26f53d3231c1cceac5bf7b8730e9be31cb6dab256551dc0c1a",
    "test": "845264cc5c156180828ccf17915668b17ee21424d0170df6e7d81676aa5d1204",
}

N_CHARACTERS = 1623
N_BACKGROUND = 964
N_DRAWERS = 20
IMAGE_SIZE = 28
_CACHE_VERSION = 1


@dataclass
class Omniglot:
    """All Omniglot characters, in character-id order (background 1..964, evaluation 965..1623).

    ``images``: uint8 [1623, 20, 28, 28]; ``alphabet`` / ``character``: names per character;
    ``background``: bool [1623], True for the 964 characters of ``images_background``.
    """

    images: torch.Tensor
    alphabet: list[str]
    character: list[str]
    background: torch.Tensor

    def index(self) -> dict[tuple[str, str], int]:
        return {(a, c): i for i, (a, c) in enumerate(zip(self.alphabet, self.character))}


def _resize(white: torch.Tensor) -> torch.Tensor:
    """[n, 105, 105] float in [0, 1] -> uint8 [n, 28, 28], bilinear with antialiasing."""
    out = []
    for chunk in white.split(2048):
        small = F.interpolate(
            chunk[:, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True
        )
        out.append((small[:, 0] * 255).round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _check_counts(alphabet: list[str], background: np.ndarray, n_images: int, source: Path):
    n_bg = int(background.sum())
    bg_alphabets = len({a for a, b in zip(alphabet, background) if b})
    ev_alphabets = len({a for a, b in zip(alphabet, background) if not b})
    problems = []
    if len(alphabet) != N_CHARACTERS or n_bg != N_BACKGROUND:
        problems.append(f"{len(alphabet)} characters ({n_bg} background), expected 1623 (964)")
    if (bg_alphabets, ev_alphabets) != (30, 20):
        problems.append(f"{bg_alphabets}+{ev_alphabets} alphabets, expected 30+20")
    if n_images != N_CHARACTERS * N_DRAWERS:
        problems.append(f"{n_images} images, expected {N_CHARACTERS * N_DRAWERS}")
    if problems:
        raise DataError(
            f"{source} does not hold the full Omniglot set: {'; '.join(problems)}. "
            f"Replace it with the official file (see docs/data.md)."
        )


def _from_npz(path: Path) -> Omniglot:
    try:
        with np.load(path, allow_pickle=False) as z:
            images, alphabet = z["images"], [str(a) for a in z["alphabet"]]
            character, background = [str(c) for c in z["character"]], z["background"]
    except Exception as exc:
        raise DataError(f"{path} cannot be read as the Omniglot .npz ({exc}); delete it") from exc
    if images.shape[1:] != (N_DRAWERS, 105, 105):
        raise DataError(f"{path}: images of shape {images.shape}, expected (1623, 20, 105, 105)")
    _check_counts(alphabet, background, images.shape[0] * images.shape[1], path)
    white = torch.from_numpy(images.reshape(-1, 105, 105)).float()
    small = _resize(white).reshape(N_CHARACTERS, N_DRAWERS, IMAGE_SIZE, IMAGE_SIZE)
    return Omniglot(small, alphabet, character, torch.from_numpy(background.copy()))


def _from_zips(paths: list[Path]) -> Omniglot:
    from PIL import Image

    records: list[tuple[int, int, str, str, bool, np.ndarray]] = []
    for path, is_background in zip(paths, (True, False)):
        try:
            with zipfile.ZipFile(path) as zf:
                for name in zf.namelist():
                    if not name.endswith(".png"):
                        continue
                    parts = name.split("/")
                    char_id, drawer = (int(p) for p in parts[-1][:-4].split("_"))
                    with Image.open(io.BytesIO(zf.read(name))) as img:
                        pixels = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
                    records.append((char_id, drawer, parts[-3], parts[-2], is_background, pixels))
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DataError(f"{path} is not a readable Omniglot zip ({exc}); delete it") from exc
    records.sort(key=lambda r: (r[0], r[1]))
    chars = {r[0]: (r[2], r[3], r[4]) for r in records}
    alphabet = [chars[i][0] for i in sorted(chars)]
    character = [chars[i][1] for i in sorted(chars)]
    background = np.array([chars[i][2] for i in sorted(chars)])
    _check_counts(alphabet, background, len(records), paths[0].parent)
    white = torch.from_numpy(np.stack([r[5] for r in records]))
    small = _resize(white).reshape(N_CHARACTERS, N_DRAWERS, IMAGE_SIZE, IMAGE_SIZE)
    return Omniglot(small, alphabet, character, torch.from_numpy(background))


def load_omniglot(root: Path) -> Omniglot:
    """All 1,623 x 20 Omniglot images at 28x28, decoded once and then read from the cache."""
    npz = root / NPZ
    if npz.is_file():
        sources = [npz]
    else:
        sources = [fetch(BACKGROUND_ZIP, root), fetch(EVALUATION_ZIP, root)]
    stamp = [(p.name, p.stat().st_size) for p in sources]
    cache = cache_dir() / f"omniglot{IMAGE_SIZE}_v{_CACHE_VERSION}.pt"
    if cache.is_file():
        try:
            blob = torch.load(cache, weights_only=True)
            if blob["stamp"] == stamp:
                return Omniglot(
                    blob["images"], blob["alphabet"], blob["character"], blob["background"]
                )
        except Exception:
            pass  # a stale or broken cache is rebuilt below
    data = _from_npz(npz) if sources == [npz] else _from_zips(sources)
    tmp = cache.with_suffix(".tmp")
    torch.save(
        {
            "stamp": stamp,
            "images": data.images,
            "alphabet": data.alphabet,
            "character": data.character,
            "background": data.background,
        },
        tmp,
    )
    tmp.replace(cache)
    return data


def read_split_file(split: str) -> list[tuple[str, str, int]]:
    """Vinyals split lines ``Alphabet/characterNN/rotDDD`` as (alphabet, character, degrees)."""
    path = SPLITS / f"{split}.txt"
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != SPLIT_SHA256[split]:
        raise DataError(f"{path} differs from the Vinyals split it ships; reinstall hypermaml")
    out = []
    for lineno, line in enumerate(raw.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            alphabet, character, rot = line.strip().split("/")
            out.append((alphabet, character, int(rot[3:])))
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: cannot parse {line!r}; reinstall hypermaml") from exc
    return out
