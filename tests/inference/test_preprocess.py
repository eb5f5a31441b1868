"""A person's image turned into what the model was trained on: the rule recorded with the
checkpoint, character polarity and framing, and the photo transform of the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hypermaml
from hypermaml.data.class_images import IMAGENET_NORMALISATION
from hypermaml.data.images import Geometry, decode_image
from hypermaml.inference import Preprocess

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"
CHARACTERS = Preprocess.for_dataset("cross_char", (1, 28, 28))


def drawn_character(width: int = 100, height: int = 60) -> np.ndarray:
    """A dark stroke on a light background, H x W uint8."""
    img = np.full((height, width), 250, dtype=np.uint8)
    img[height // 4 : 3 * height // 4, width // 2 - 3 : width // 2 + 3] = 10
    img[height // 2 - 2 : height // 2 + 2, width // 4 : 3 * width // 4] = 10
    return img


def test_a_character_photo_of_any_size_and_polarity_becomes_dark_ink_on_light(tmp_path):
    dark = drawn_character()
    Image.fromarray(dark).convert("RGB").save(tmp_path / "dark.jpg", quality=95)
    Image.fromarray(255 - dark).save(tmp_path / "light.png")  # chalk on a blackboard
    x = CHARACTERS([tmp_path / "dark.jpg", tmp_path / "light.png", dark])
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    border = torch.cat([x[:, 0, 0], x[:, 0, -1], x[:, 0, :, 0], x[:, 0, :, -1]], 1)
    assert (border > 0.9).all()  # the background is light
    assert x[:, 0, 14, 14].max() < 0.3  # the ink, in the middle, is dark
    assert (x[1] - x[2]).abs().max() < 0.02  # inverted: the same as the dark-ink original
    assert (x[0] - x[2]).abs().max() < 0.15  # JPEG noise only


def test_a_28_pixel_character_passes_unchanged():
    pixels = (torch.rand(28, 28) * 255).round().to(torch.uint8)
    pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1] = 255, 255, 255, 255
    assert torch.equal(CHARACTERS([pixels.numpy()])[0, 0], pixels.float() / 255)
    assert torch.equal(CHARACTERS(pixels[None, None].float() / 255)[0, 0], pixels.float() / 255)


def test_a_photo_gets_the_benchmarks_transform_and_normalisation(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    photo = Preprocess.for_dataset("mini_imagenet", (3, 84, 84))
    expected = torch.tensor(decode_image(tmp_path / "p.png", Geometry(84))).float() / 255
    mean, std = (torch.tensor(v)[:, None, None] for v in IMAGENET_NORMALISATION)
    assert torch.allclose(photo([tmp_path / "p.png"])[0], (expected - mean) / std, atol=1e-6)
    grey = Preprocess.for_dataset("folder", (1, 32, 32), resize_ratio=1.0)
    assert grey.normalisation is None and grey.ink is None
    assert grey([tmp_path / "p.png"]).shape == (1, 1, 32, 32)


def test_a_folder_of_queries_is_read_in_name_order(tmp_path):
    for name in ("b.png", "a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    Image.fromarray(drawn_character()).save(tmp_path / "a.png")
    Image.fromarray(255 - drawn_character()).save(tmp_path / "b.png")
    x = CHARACTERS(tmp_path)
    assert x.shape[0] == 2 and (x[0] - x[1]).abs().max() < 0.02


def test_the_transform_is_recorded_with_a_new_checkpoint_and_derived_for_an_older_one(
    data_root, tmp_path
):
    cfg = hypermaml.load_config(None, ["method={name: protonet}", "train.epochs=1",
                                       "train.episodes_per_epoch=2", "train.meta_batch=2",
                                       "train.val_tasks=2", "train.device=cpu"])  # fmt: skip
    hypermaml.train(cfg, tmp_path / "run", data_dir=data_root, progress=False)
    meta_file = tmp_path / "run" / "best" / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    assert Preprocess.from_dict(meta["preprocess"]) == Preprocess.for_dataset(
        "omniglot", (1, 28, 28)
    )
    model = hypermaml.load(tmp_path / "run")
    assert model.preprocess == CHARACTERS
    old = hypermaml.load(SHIPPED / "cross_char_1s_hypermaml")  # written before the record
    assert "preprocess" not in old.meta and old.preprocess == CHARACTERS


@pytest.mark.parametrize("bad", [torch.rand(2, 28, 28), np.zeros((2, 28, 28))])
def test_a_batch_of_the_wrong_rank_is_refused(bad):
    with pytest.raises(hypermaml.DataError, match=r"must be \[M, "):
        CHARACTERS(bad)
