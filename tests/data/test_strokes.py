"""Stroke-width augmentation: exact dilations, continuous blending, and its use in training."""

from __future__ import annotations

import pytest
import torch

from hypermaml.config import load_config
from hypermaml.data import ClassImages, EpisodeSampler, TaskShape
from hypermaml.data.strokes import StrokeAugment, dilate_ink, thicken_strokes
from hypermaml.training import training_sampler


def page_with_dot(size: int = 7) -> torch.Tensor:
    """[1, 1, size, size]: a white page (1) with one black pixel (0) in the middle."""
    x = torch.ones(1, 1, size, size)
    x[0, 0, size // 2, size // 2] = 0.0
    return x


def test_one_dilation_grows_a_dot_into_a_cross():
    out = dilate_ink(page_with_dot())[0, 0]
    ink = (out == 0).nonzero().tolist()
    assert sorted(ink) == [[2, 3], [3, 2], [3, 3], [3, 4], [4, 3]]
    assert ((out == 0) | (out == 1)).all()


def test_two_dilations_give_a_diamond_and_the_border_counts_as_page():
    out = thicken_strokes(page_with_dot(), torch.tensor([2.0]))[0, 0]
    rows, cols = torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")
    diamond = (rows - 3).abs() + (cols - 3).abs() <= 2
    assert torch.equal(out == 0, diamond)
    corner = torch.ones(1, 1, 3, 3)
    corner[0, 0, 0, 0] = 0.0
    # nothing outside the image is ink, so a dot in the corner grows only inwards
    assert int((dilate_ink(corner) == 0).sum()) == 3


def test_fractional_amounts_blend_consecutive_dilations():
    x = torch.rand(3, 1, 9, 9)
    once, twice = dilate_ink(x), dilate_ink(dilate_ink(x))
    out = thicken_strokes(x, torch.tensor([0.0, 0.25, 1.5]))
    assert torch.equal(out[0], x[0])
    torch.testing.assert_close(out[1], 0.75 * x[1] + 0.25 * once[1])
    torch.testing.assert_close(out[2], 0.5 * once[2] + 0.5 * twice[2])


def test_more_amount_never_means_less_ink():
    x = torch.rand(1, 1, 12, 12).expand(6, -1, -1, -1)
    amounts = torch.tensor([0.0, 0.3, 0.9, 1.0, 1.6, 2.5])
    ink = (1 - thicken_strokes(x, amounts)).sum((1, 2, 3))
    assert (ink[1:] >= ink[:-1]).all()


def test_bad_amounts_are_refused():
    with pytest.raises(ValueError, match=">= 0"):
        thicken_strokes(torch.rand(2, 1, 4, 4), torch.tensor([0.5, -1.0]))
    with pytest.raises(ValueError, match="shape"):
        thicken_strokes(torch.rand(2, 1, 4, 4), torch.tensor([0.5]))
    with pytest.raises(ValueError, match=">= 0"):
        StrokeAugment(-0.5)


def dotted_pages(n_classes: int = 5, n_per_class: int = 4) -> ClassImages:
    """uint8 white pages, each with one black dot, [n_classes, n_per_class, 1, 9, 9]."""
    images = torch.full((n_classes, n_per_class, 1, 9, 9), 255, dtype=torch.uint8)
    images[..., 4, 4] = 0
    return ClassImages.dense("dots", "train", images, [f"c{i}" for i in range(n_classes)])


def test_sampler_augments_every_image_by_its_own_seeded_amount():
    data = dotted_pages()
    plain = EpisodeSampler(data, TaskShape(3, 1, 2), seed=4).sample(2)
    a = EpisodeSampler(data, TaskShape(3, 1, 2), seed=4, augment=StrokeAugment(1.0)).sample(2)
    b = EpisodeSampler(data, TaskShape(3, 1, 2), seed=4, augment=StrokeAugment(1.0)).sample(2)
    assert torch.equal(a.query_x, b.query_x) and torch.equal(a.support_x, b.support_x)
    assert torch.equal(a.query_y, plain.query_y)
    ink = (1 - a.query_x).sum((-3, -2, -1)).flatten()  # dot of 1 + 4 neighbours grown by t
    assert (ink > 1).all() and (ink < 5).all()
    assert len(set(ink.tolist())) == ink.numel(), "every image draws its own amount"
    assert ((1 - plain.query_x).sum((-3, -2, -1)) == 1).all()


def test_config_turns_the_augmentation_on_for_training_tasks_only():
    data = dotted_pages()
    cfg = load_config(None, ["data.n_way=3", "data.n_query=2"])
    assert cfg.data.train_stroke == 0.0 and training_sampler(cfg, data).augment is None
    cfg = load_config(None, ["data.n_way=3", "data.n_query=2", "data.train_stroke=1.5"])
    sampler = training_sampler(cfg, data)
    assert isinstance(sampler.augment, StrokeAugment) and sampler.augment.max_pixels == 1.5
    assert (1 - sampler.sample(1).query_x).sum() > 6
