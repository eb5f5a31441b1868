"""Photo augmentation (random resized crop, colour jitter, flip): seeded by the sampler's
generator only, the crop and flip it claims, grey images, and its speed."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from kornia.enhance import (
    adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction,
    adjust_saturation_with_gray_subtraction,
)

from hypermaml.data import ClassImages, EpisodeSampler, TaskShape
from hypermaml.data.photo_augment import (
    ATTEMPTS,
    DRAWS,
    ORDERS,
    PhotoAugment,
    _order_index,
    crop_matrices,
    jitter_colours,
    random_resized_boxes,
)

WHOLE = {"scale": (1.0, 1.0), "ratio": (1.0, 1.0)}
"""Options whose crop is always the whole (square) image."""


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def task_images(channels: int = 3, size: int = 84, seed: int = 0) -> torch.Tensor:
    """Float [2, 5, 3, channels, size, size] in [0, 1]: 2 tasks, 5 ways, 3 images per class."""
    return torch.rand(2, 5, 3, channels, size, size, generator=generator(seed))


def ramps(n: int, size: int = 84) -> torch.Tensor:
    """[n, 3, size, size]: channel 0 rises left to right (column / (size - 1)), channel 1 top to
    bottom, channel 2 is 0.5."""
    ramp = torch.arange(size, dtype=torch.float32) / (size - 1)
    image = torch.stack([ramp.expand(size, -1), ramp[:, None].expand(-1, size)])
    image = torch.cat([image, torch.full((1, size, size), 0.5)])
    return image.expand(n, -1, -1, -1).contiguous()


def test_the_same_seed_gives_the_same_images_and_other_seeds_others():
    x = task_images()
    aug = PhotoAugment()
    a, b, c = aug(x, generator(3)), aug(x, generator(3)), aug(x, generator(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # consecutive calls on one generator go on drawing
    g = generator(3)
    first, second = aug(x, g), aug(x, g)
    assert torch.equal(first, a) and not torch.allclose(second, a)


def test_the_global_generator_neither_changes_the_images_nor_is_used():
    x = task_images()
    aug = PhotoAugment()
    torch.manual_seed(1)
    a = aug(x, generator(7))
    torch.manual_seed(12345)
    torch.rand(1000)
    state = torch.get_rng_state()
    b = aug(x, generator(7))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state), "the global generator was drawn from"


def test_shape_dtype_and_range():
    x = task_images()
    out = PhotoAugment()(x, generator(0))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x)
    double = PhotoAugment()(x.double(), generator(0))
    assert double.dtype == torch.float64 and double.min() >= 0 and double.max() <= 1
    # extreme pixels and a strong jitter stay within [0, 1]
    extreme = (torch.rand(40, 3, 84, 84, generator=generator(1)) > 0.5).float()
    out = PhotoAugment(jitter=0.9)(extreme, generator(2))
    assert out.min() >= 0 and out.max() <= 1


def test_larger_images_are_cropped_to_the_output_size():
    x = task_images(size=96)
    out = PhotoAugment(size=84)(x, generator(0))
    assert out.shape == (*x.shape[:-2], 84, 84)
    assert PhotoAugment(size=84)(torch.rand(7, 3, 120, 90), generator(0)).shape == (7, 3, 84, 84)


def test_the_whole_box_without_jitter_or_flip_returns_the_image():
    x = task_images()
    out = PhotoAugment(jitter=0.0, flip=False, **WHOLE)(x, generator(0))
    torch.testing.assert_close(out, x, atol=1e-4, rtol=0)


def test_about_half_the_images_are_mirrored_and_the_rest_untouched():
    x = ramps(200)
    out = PhotoAugment(jitter=0.0, flip=True, **WHOLE)(x, generator(5))
    mirrored = (out - x.flip(-1)).abs().amax((1, 2, 3)) < 1e-4
    kept = (out - x).abs().amax((1, 2, 3)) < 1e-4
    assert (mirrored ^ kept).all()
    assert 70 < int(mirrored.sum()) < 130
    never = PhotoAugment(jitter=0.0, flip=False, **WHOLE)(x, generator(5))
    torch.testing.assert_close(never, x, atol=1e-4, rtol=0)


def test_each_image_shows_its_own_box_enlarged():
    n, size = 64, 84
    x = ramps(n)
    aug = PhotoAugment(jitter=0.0, flip=False)
    out = aug(x, generator(9))
    # the same draws give the boxes the augmentation used
    draws = torch.rand(n, DRAWS, generator=generator(9), dtype=torch.float64)
    top, left, box_h, box_w = random_resized_boxes(
        draws[:, : 2 * ATTEMPTS + 2], size, size, aug.scale, aug.ratio
    )
    j = torch.arange(size, dtype=torch.float64)
    # output pixel j shows the box at (j + 0.5) * box / size - 0.5
    cols = (left[:, None] + (j + 0.5) * box_w[:, None] / size - 0.5).clamp(0, size - 1)
    rows = (top[:, None] + (j + 0.5) * box_h[:, None] / size - 0.5).clamp(0, size - 1)
    torch.testing.assert_close(out[:, 0, 0, :].double(), cols / (size - 1), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[:, 1, :, 0].double(), rows / (size - 1), atol=1e-4, rtol=0)
    # the boxes are real crops of many sizes and places
    assert (box_w < size).sum() > n // 2 and len(set(box_w.tolist())) > n // 4
    assert len(set(left.tolist())) > n // 4
    # inside a box, the crop is a bilinear resize of it
    k = int(torch.argmin(box_w * box_h))
    t, lft, h, w = (int(v[k]) for v in (top, left, box_h, box_w))
    crop = F.interpolate(x[k : k + 1, :, t : t + h, lft : lft + w], size=(size, size),
                         mode="bilinear", align_corners=False)  # fmt: skip
    inner = slice(size // w + 1, size - size // w - 1)
    torch.testing.assert_close(out[k, :, inner, inner], crop[0, :, inner, inner], atol=1e-4, rtol=0)


def test_boxes_follow_the_scale_and_ratio_and_fit_the_image():
    n, h, w = 2000, 84, 84
    draws = torch.rand(n, 2 * ATTEMPTS + 2, generator=generator(0), dtype=torch.float64)
    top, left, box_h, box_w = random_resized_boxes(draws, h, w, (0.08, 1.0), (3 / 4, 4 / 3))
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + box_h <= h).all() and (left + box_w <= w).all()
    assert (box_h >= 1).all() and (box_w >= 1).all()
    area = box_h * box_w / (h * w)
    assert area.min() > 0.07 and area.max() <= 1.0
    aspect = box_w / box_h
    assert aspect.min() > 0.7 and aspect.max() < 1.4
    assert 0.45 < float(area.mean()) < 0.6  # uniform in [0.08, 1] before the misfits are redrawn
    assert (top == top.floor()).all() and (box_w == box_w.floor()).all()


def test_when_no_box_fits_the_central_box_of_an_allowed_ratio_is_taken():
    draws = torch.rand(3, 2 * ATTEMPTS + 2, generator=generator(0), dtype=torch.float64)
    # areas larger than the image never fit
    top, left, box_h, box_w = random_resized_boxes(draws, 84, 42, (2.0, 3.0), (3 / 4, 4 / 3))
    assert box_w.tolist() == [42] * 3 and box_h.tolist() == [56] * 3  # 42 / (3/4)
    assert top.tolist() == [14] * 3 and left.tolist() == [0] * 3
    top, left, box_h, box_w = random_resized_boxes(draws, 60, 70, (2.0, 3.0), (3 / 4, 4 / 3))
    # 70 / 60 is an allowed ratio: the whole image
    assert [t.tolist() for t in (box_h, box_w, top, left)] == [[60] * 3, [70] * 3, [0] * 3, [0] * 3]


def test_crop_matrices_map_the_box_onto_the_output():
    z = torch.zeros(2, dtype=torch.float64)
    flip = torch.tensor([False, True])
    m = crop_matrices(z + 10, z + 20, z + 30, z + 40, 84, flip)
    corner = torch.tensor([20 - 0.5, 10 - 0.5, 1.0], dtype=torch.float64)  # (x, y, 1)
    far = torch.tensor([60 - 0.5, 40 - 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(m[0] @ corner, torch.tensor([-0.5, -0.5], dtype=torch.float64))
    torch.testing.assert_close(m[0] @ far, torch.tensor([83.5, 83.5], dtype=torch.float64))
    torch.testing.assert_close(m[1] @ corner, torch.tensor([83.5, -0.5], dtype=torch.float64))


def test_jitter_applies_each_image_its_own_factors_in_its_own_order():
    n = 24
    x = torch.rand(n, 3, 8, 8, generator=generator(0))
    factors = 0.6 + 0.8 * torch.rand(n, 3, generator=generator(1))
    orders = torch.arange(n) % len(ORDERS)
    out = jitter_colours(x, factors, orders)
    steps = (
        adjust_brightness_accumulative,
        adjust_contrast_with_mean_subtraction,
        adjust_saturation_with_gray_subtraction,
    )
    for i in range(n):
        expected = x[i : i + 1]
        for step in ORDERS[int(orders[i])]:
            expected = steps[step](expected, factors[i, step : step + 1])
        torch.testing.assert_close(out[i : i + 1], expected)
    # the order matters, so the six orders are not one
    one = jitter_colours(x[:1].expand(6, -1, -1, -1), factors[:1].expand(6, -1), torch.arange(6))
    assert not torch.allclose(one[0], one[1:])


def test_jitter_orders_are_uniform_and_match_the_keys():
    keys = torch.rand(6000, 3, generator=generator(0), dtype=torch.float64)
    index = _order_index(keys)
    table = torch.tensor(ORDERS)
    assert torch.equal(table[index], keys.argsort(1))
    counts = torch.bincount(index, minlength=6)
    assert (counts > 850).all() and (counts < 1150).all()


def test_jitter_factors_stay_within_their_range():
    grey = torch.full((300, 3, 16, 16), 0.5)  # contrast and saturation leave a flat grey alone
    out = PhotoAugment(jitter=0.4, flip=False, **WHOLE)(grey, generator(0))
    level = out.mean((1, 2, 3))
    assert level.min() >= 0.5 * 0.6 - 1e-4 and level.max() <= 0.5 * 1.4 + 1e-4
    assert level.max() - level.min() > 0.3
    torch.testing.assert_close(out, level.view(-1, 1, 1, 1).expand_as(out))


def test_grey_images():
    x = task_images(channels=1)
    out = PhotoAugment()(x, generator(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x)
    assert torch.equal(out, PhotoAugment()(x, generator(0)))
    flat = PhotoAugment(jitter=0.0, flip=False, **WHOLE)(x, generator(0))
    torch.testing.assert_close(flat, x, atol=1e-4, rtol=0)


def test_bad_inputs_and_options_are_refused():
    aug = PhotoAugment()
    with pytest.raises(ValueError, match="1 or 3 channels"):
        aug(torch.rand(2, 2, 16, 16), generator(0))
    with pytest.raises(ValueError, match="float images"):
        aug(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), generator(0))
    with pytest.raises(ValueError, match="float images"):
        aug(torch.rand(3, 16, 16), generator(0))
    with pytest.raises(ValueError, match="size"):
        PhotoAugment(size=0)
    with pytest.raises(ValueError, match="jitter"):
        PhotoAugment(jitter=-0.1)
    with pytest.raises(ValueError, match="scale"):
        PhotoAugment(scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="ratio"):
        PhotoAugment(ratio=(0.0, 1.0))


def test_sampler_tasks_are_fixed_by_the_seed():
    images = torch.randint(0, 256, (6, 5, 3, 32, 32), dtype=torch.uint8, generator=generator(0))
    data = ClassImages("photos", "train", images, [f"c{i}" for i in range(6)])
    shape = TaskShape(3, 1, 2)
    aug = PhotoAugment(size=28)
    torch.manual_seed(0)
    a = EpisodeSampler(data, shape, seed=4, augment=aug).sample(2)
    torch.manual_seed(99)
    b = EpisodeSampler(data, shape, seed=4, augment=aug).sample(2)
    c = EpisodeSampler(data, shape, seed=5, augment=aug).sample(2)
    assert a.support_x.shape == (2, 3, 3, 28, 28) and a.query_x.shape == (2, 6, 3, 28, 28)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.query_x, c.query_x)


def test_a_batch_of_85_images_is_fast():
    x = torch.rand(1, 5, 17, 3, 84, 84, generator=generator(0))
    aug = PhotoAugment()
    g = generator(0)
    aug(x, g)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        aug(x, g)
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"PhotoAugment on 85 images 3x84x84: {1000 * best:.1f} ms (best of 5)")
    assert best < 1.0
