"""Decoding one image file: every common format and mode to RGB or L, and the evaluation geometry
(shorter side to round(size * 8 / 7), centre crop), on small generated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hypermaml.data.images import DECODE_ERRORS, Geometry, decode_image, decode_into, is_grey


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, img: Image.Image, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


MODES = {
    "rgb.jpg": lambda p: _save(p, Image.fromarray(_rgb(12, 10)), quality=95),
    "grey.png": lambda p: _save(p, Image.fromarray(_rgb(12, 10)[..., 0])),
    "rgba.png": lambda p: _save(p, Image.fromarray(_rgb(12, 10)).convert("RGBA")),
    "palette.gif": lambda p: _save(p, Image.fromarray(_rgb(12, 10)).convert("P")),
    "palette_transparent.png": lambda p: _save(
        p, Image.fromarray(_rgb(12, 10)).convert("P"), transparency=0
    ),
    "rgb.bmp": lambda p: _save(p, Image.fromarray(_rgb(12, 10))),
    "rgb.webp": lambda p: _save(p, Image.fromarray(_rgb(12, 10)), lossless=True),
    "grey16.png": lambda p: _save(
        p, Image.fromarray(np.arange(120, dtype=np.uint16).reshape(12, 10) * 500)
    ),
    "cmyk.jpg": lambda p: _save(p, Image.fromarray(_rgb(12, 10)).convert("CMYK"), quality=95),
    "bilevel.png": lambda p: _save(p, Image.fromarray(_rgb(12, 10)[..., 0] > 127)),
}


@pytest.mark.parametrize("name", sorted(MODES))
@pytest.mark.parametrize("channels", [3, 1])
def test_every_common_format_and_mode_decodes_to_the_asked_channels(tmp_path, name, channels):
    path = MODES[name](tmp_path / name)
    pixels = decode_image(path, Geometry(16, channels))
    assert pixels.dtype == np.uint8 and pixels.shape == (channels, 16, 16)
    assert pixels.std() > 0  # real content, not a blank frame


def test_lossless_pixels_survive_when_no_resampling_is_needed(tmp_path):
    """With resize_ratio 1 an image of the target size is read pixel for pixel, in any mode."""
    rgb = _rgb(20, 20, seed=3)
    geometry = Geometry(20, 3, resize_ratio=1)
    for name, img in (("a.png", Image.fromarray(rgb)), ("a.bmp", Image.fromarray(rgb)),
                      ("a.webp", Image.fromarray(rgb))):  # fmt: skip
        kwargs = {"lossless": True} if name.endswith(".webp") else {}
        path = _save(tmp_path / name, img, **kwargs)
        assert np.array_equal(decode_image(path, geometry), rgb.transpose(2, 0, 1)), name
    grey = rgb[..., 1]
    path = _save(tmp_path / "g.png", Image.fromarray(grey))
    assert np.array_equal(decode_image(path, Geometry(20, 1, 1))[0], grey)
    rgba = np.concatenate([rgb, np.full((20, 20, 1), 7, np.uint8)], -1)
    path = _save(tmp_path / "t.png", Image.fromarray(rgba))
    assert np.array_equal(decode_image(path, geometry), rgb.transpose(2, 0, 1))  # alpha dropped
    wide = np.arange(20 * 20, dtype=np.uint16).reshape(20, 20) * 150
    path = _save(tmp_path / "w.png", Image.fromarray(wide))
    assert np.array_equal(decode_image(path, Geometry(20, 1, 1))[0], (wide >> 8).astype(np.uint8))


def test_geometry_resizes_the_shorter_side_then_crops_the_centre(tmp_path):
    """A 500x375 photo at 84: shorter side to 96 (84 * 8 / 7), then the centre 84x84."""
    assert Geometry(84).shorter_side == 96 and Geometry(28, 1, 1).shorter_side == 28
    # left half red, right half blue, a green band in rows 0..49 of 375 (cut by the crop)
    img = np.zeros((375, 500, 3), np.uint8)
    img[:, :250, 0] = 255
    img[:, 250:, 2] = 255
    img[:50, :, 1] = 255
    path = _save(tmp_path / "photo.png", Image.fromarray(img))
    pixels = decode_image(path, Geometry(84)).astype(int)
    # resized to 128x96, crop columns 22..105: the red/blue edge at column 64 -> 42 in the crop
    assert (pixels[0, :, :40] > 200).all() and (pixels[2, :, 44:] > 200).all()
    # the green band covers rows 0..12.8 of 96; the crop starts at row 6: rows 0..5 green
    assert (pixels[1, :5] > 200).all() and (pixels[1, 10:] < 30).all()
    tall = _save(tmp_path / "tall.png", Image.fromarray(_rgb(50, 20)))
    assert decode_image(tall, Geometry(8)).shape == (3, 8, 8)


def test_large_jpegs_are_decoded_at_a_reduced_scale_with_the_same_content(tmp_path):
    smooth = np.linspace(0, 255, 800, dtype=np.float32)
    img = np.stack([np.add.outer(smooth[:600] * 0, smooth)] * 3, -1).clip(0, 255).astype(np.uint8)
    path = _save(tmp_path / "big.jpg", Image.fromarray(img), quality=95)
    fast = decode_image(path, Geometry(84)).astype(int)
    full = decode_image(_save(tmp_path / "big.png", Image.fromarray(img)), Geometry(84))
    assert np.abs(fast - full.astype(int)).max() <= 3


def test_grey_detection_reads_the_header(tmp_path):
    assert is_grey(MODES["grey.png"](tmp_path / "g.png"))
    assert is_grey(MODES["grey16.png"](tmp_path / "g16.png"))
    assert not is_grey(MODES["rgb.jpg"](tmp_path / "c.jpg"))
    assert not is_grey(MODES["palette.gif"](tmp_path / "p.gif"))


@pytest.mark.parametrize("damage", ["truncated_jpeg", "truncated_png", "garbage", "empty"])
def test_corrupt_files_raise_never_a_partial_image(tmp_path, damage):
    if damage.startswith("truncated"):
        suffix = damage.split("_")[1]
        good = MODES["rgb.jpg" if suffix == "jpeg" else "grey.png"](tmp_path / f"g.{suffix}")
        data = good.read_bytes()
        path = tmp_path / f"bad.{suffix}"
        path.write_bytes(data[: len(data) * 2 // 3])
    else:
        path = tmp_path / "bad.jpg"
        path.write_bytes(b"" if damage == "empty" else b"not an image at all" * 10)
    with pytest.raises(DECODE_ERRORS):
        decode_image(path, Geometry(16))


def test_decode_into_reports_every_bad_file_and_decodes_the_rest(tmp_path):
    paths = [MODES["rgb.jpg"](tmp_path / f"{i}.jpg") for i in range(5)]
    paths[1].write_bytes(b"junk")
    paths[3].write_bytes(paths[3].read_bytes()[:100])
    out = np.zeros((5, 3, 8, 8), np.uint8)
    bad = decode_into(out, paths, Geometry(8), progress=False, workers=2)
    assert [i for i, _ in bad] == [1, 3] and all(why for _, why in bad)
    assert all(out[i].std() > 0 for i in (0, 2, 4)) and not out[1].any() and not out[3].any()
