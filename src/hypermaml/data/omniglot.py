"""Omniglot: 1,623 handwritten characters from 50 alphabets, 20 drawers each.

Images are read from the lossless ``omniglot_105x105_bool.npz`` when present, else from the two
official zips (downloaded when missing), resized to 28x28 with antialiasing and cached as uint8
(255 = white background, 0 = ink).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import partial
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .archives import zip_pngs
from .cache import Blob, load_or_build
from .files import RemoteFile, fetch, replace_hint

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
N_ALPHABETS = (30, 20)
"""Alphabets of the background and of the evaluation set."""
N_DRAWERS = 20
RAW_SIZE = 105
IMAGE_SIZE = 28
SPLIT_CLASSES = {"train": 4112, "val": 688, "test": 1692}
"""Class lines of each Vinyals split file (characters x 4 rotations)."""
DECODE_VERSION = 2
"""Version of the decoding below; bump it when the cached images would change."""
_FIX = "replace it with the official file (see docs/data.md)"
_SPLIT_FIX = "reinstall hypermaml to restore the file"


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


def _resize(raw: torch.Tensor) -> torch.Tensor:
    """[n, 105, 105] bool (True = white) or uint8 (255 = white) -> uint8 [n, 28, 28], bilinear
    with antialiasing, converted to float one chunk at a time."""
    scale = 1.0 if raw.dtype == torch.bool else 255.0
    out = []
    for chunk in raw.split(2048):
        white = chunk.float() / scale
        small = F.interpolate(
            white[:, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True
        )
        out.append((small[:, 0] * 255).round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _check_counts(alphabet: list[str], background: np.ndarray, n_images: int, source: Path) -> None:
    """Raise a DataError naming ``source`` unless it holds the full Omniglot set."""
    n_bg = int(background.sum())
    bg_alphabets = len({a for a, b in zip(alphabet, background) if b})
    ev_alphabets = len({a for a, b in zip(alphabet, background) if not b})
    problems = []
    if len(alphabet) != N_CHARACTERS or n_bg != N_BACKGROUND:
        problems.append(
            f"{len(alphabet)} characters ({n_bg} background), expected {N_CHARACTERS} "
            f"({N_BACKGROUND})"
        )
    if (bg_alphabets, ev_alphabets) != N_ALPHABETS:
        problems.append(
            f"{bg_alphabets}+{ev_alphabets} alphabets, expected {N_ALPHABETS[0]}+{N_ALPHABETS[1]}"
        )
    if n_images != N_CHARACTERS * N_DRAWERS:
        problems.append(f"{n_images} images, expected {N_CHARACTERS * N_DRAWERS}")
    if problems:
        raise DataError(
            f"{source} does not hold the full Omniglot set: {'; '.join(problems)}. "
            f"Replace it with the official file (see docs/data.md)."
        )


def _npz_arrays(path: Path) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """(images, alphabet, character, background) as stored in the lossless .npz."""
    try:
        with np.load(path, allow_pickle=False) as z:
            images, alphabet = z["images"], [str(a) for a in z["alphabet"]]
            character, background = [str(c) for c in z["character"]], z["background"]
    except Exception as exc:  # not a zip, a corrupt member, a missing array ...
        raise DataError(
            f"{path} cannot be read as the Omniglot .npz ({type(exc).__name__}: {exc}); delete "
            f"it to read the official zips instead, or put a good copy at {path}"
        ) from exc
    return images, alphabet, character, background


def _from_npz(path: Path) -> Omniglot:
    images, alphabet, character, background = _npz_arrays(path)
    expected = (N_CHARACTERS, N_DRAWERS, RAW_SIZE, RAW_SIZE)
    if images.shape[1:] != expected[1:]:
        raise DataError(f"{path}: images of shape {images.shape}, expected {expected}; {_FIX}")
    if images.dtype != bool or background.dtype != bool:
        raise DataError(
            f"{path}: images of {images.dtype} and background of {background.dtype}, expected "
            f"bool (True = white); {_FIX}"
        )
    n = images.shape[0]
    if not len(alphabet) == len(character) == background.shape[0] == n:
        raise DataError(
            f"{path}: {n} characters of images but {len(alphabet)} alphabet, "
            f"{len(character)} character and {background.shape[0]} background entries; {_FIX}"
        )
    _check_counts(alphabet, background, n * images.shape[1], path)
    small = _resize(torch.from_numpy(images.reshape(-1, RAW_SIZE, RAW_SIZE)))
    small = small.reshape(N_CHARACTERS, N_DRAWERS, IMAGE_SIZE, IMAGE_SIZE)
    return Omniglot(small, alphabet, character, torch.from_numpy(background.copy()))


def _parse_member(name: str, archive: Path, fix: str) -> tuple[int, int, str, str]:
    """(character id, drawer, alphabet, character) of ``.../Alphabet/characterNN/XXXX_YY.png``."""
    parts = name.split("/")
    try:
        char_id, drawer = (int(p) for p in parts[-1][:-4].split("_"))
        alphabet, character = parts[-3], parts[-2]
    except (ValueError, IndexError) as exc:
        raise DataError(
            f"member {name} of {archive} is not named Alphabet/characterNN/XXXX_YY.png; {fix}"
        ) from exc
    if not (1 <= char_id <= N_CHARACTERS and 1 <= drawer <= N_DRAWERS):
        raise DataError(
            f"member {name} of {archive}: character {char_id} or drawer {drawer} is outside "
            f"1..{N_CHARACTERS} / 1..{N_DRAWERS}; {fix}"
        )
    return char_id, drawer, alphabet, character


def _from_zips(paths: Sequence[Path]) -> Omniglot:
    """Decode the background and the evaluation zip (in that order)."""
    pixels: dict[tuple[int, int], np.ndarray] = {}
    chars: dict[int, tuple[str, str, bool]] = {}
    for path, remote in zip(paths, (BACKGROUND_ZIP, EVALUATION_ZIP)):
        fix, is_background = replace_hint(path, remote), remote is BACKGROUND_ZIP
        for name, image in zip_pngs(path, fix, shape=(RAW_SIZE, RAW_SIZE)):
            char_id, drawer, alphabet, character = _parse_member(name, path, fix)
            if (char_id, drawer) in pixels:
                raise DataError(f"{path} holds character {char_id} drawer {drawer} twice; {fix}")
            filed = (alphabet, character, is_background)
            if chars.setdefault(char_id, filed) != filed:
                raise DataError(
                    f"member {name} of {path} files character {char_id} under another "
                    f"alphabet, character or zip than its other images; {fix}"
                )
            pixels[(char_id, drawer)] = image
    ids = sorted(chars)
    background = np.array([chars[i][2] for i in ids], dtype=bool)
    alphabet = [chars[i][0] for i in ids]
    _check_counts(alphabet, background, len(pixels), paths[0].parent)
    raw = torch.from_numpy(np.stack([pixels[key] for key in sorted(pixels)]))
    small = _resize(raw).reshape(N_CHARACTERS, N_DRAWERS, IMAGE_SIZE, IMAGE_SIZE)
    return Omniglot(small, alphabet, [chars[i][1] for i in ids], torch.from_numpy(background))


def _encode(data: Omniglot) -> Blob:
    return {field.name: getattr(data, field.name) for field in fields(Omniglot)}


def _decode(blob: Blob) -> Omniglot:
    """The Omniglot of a cache entry; ValueError when the entry does not hold the full set."""
    data = Omniglot(**{field.name: blob[field.name] for field in fields(Omniglot)})  # type: ignore[arg-type]
    images, background = data.images, data.background
    shape = (N_CHARACTERS, N_DRAWERS, IMAGE_SIZE, IMAGE_SIZE)
    if not (
        isinstance(images, torch.Tensor)
        and images.dtype == torch.uint8
        and tuple(images.shape) == shape
        and isinstance(background, torch.Tensor)
        and tuple(background.shape) == (N_CHARACTERS,)
        and len(data.alphabet) == len(data.character) == N_CHARACTERS
    ):
        raise ValueError("the cache entry does not hold the full Omniglot set")
    return data


def source_paths(root: Path) -> list[Path]:
    """The files Omniglot is read from: the lossless .npz when present, else the two zips."""
    npz = root / NPZ
    if npz.is_file():
        return [npz]
    return [root / BACKGROUND_ZIP.relpath, root / EVALUATION_ZIP.relpath]


def load_omniglot(root: Path) -> Omniglot:
    """All 1,623 x 20 Omniglot images at 28x28, decoded once and then read from the cache."""
    npz = root / NPZ
    if npz.is_file():
        sources, build = [npz], partial(_from_npz, npz)
    else:
        sources = [fetch(BACKGROUND_ZIP, root), fetch(EVALUATION_ZIP, root)]
        build = partial(_from_zips, sources)
    return load_or_build(f"omniglot{IMAGE_SIZE}", DECODE_VERSION, sources, build, _encode, _decode)


def split_file(split: str) -> Traversable:
    """The shipped Vinyals split file of ``split`` (a DataError for an unknown split)."""
    if split not in SPLIT_CLASSES:
        raise DataError(f"unknown Omniglot split {split!r}; choose one of {list(SPLIT_CLASSES)}")
    return SPLITS / f"{split}.txt"


def _parse_split(raw: bytes, path: Traversable) -> list[tuple[str, str, int]]:
    """The (alphabet, character, degrees) of each non-empty line ``Alphabet/characterNN/rotDDD``."""
    out = []
    for lineno, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            alphabet, character, rot = line.strip().split("/")
            degrees = int(rot[3:]) if rot.startswith("rot") else -1
            if degrees not in (0, 90, 180, 270):
                raise ValueError(rot)
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: cannot parse {line!r}; {_SPLIT_FIX}") from exc
        out.append((alphabet, character, degrees))
    return out


def read_split_file(split: str) -> list[tuple[str, str, int]]:
    """Vinyals split lines ``Alphabet/characterNN/rotDDD`` as (alphabet, character, degrees).

    The file must have the sha256 it ships with and exactly ``SPLIT_CLASSES[split]`` distinct
    class lines: a file cut short is refused, never scored on the classes that remain.
    """
    path = split_file(split)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read the Vinyals {split} split {path} ({exc}); {_SPLIT_FIX}"
        ) from exc
    expected = SPLIT_CLASSES[split]
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SPLIT_SHA256[split]:
        n_lines = sum(1 for line in raw.splitlines() if line.strip())
        raise DataError(
            f"{path} differs from the Vinyals split it ships ({n_lines} class lines, expected "
            f"{expected}; sha256 {digest[:16]}..., expected {SPLIT_SHA256[split][:16]}...); "
            f"{_SPLIT_FIX}"
        )
    classes = _parse_split(raw, path)
    if len(classes) != expected or len(set(classes)) != expected:
        raise DataError(
            f"{path} holds {len(set(classes))} distinct classes in {len(classes)} lines, expected "
            f"{expected} (the Vinyals {split} split); {_SPLIT_FIX}"
        )
    return classes
