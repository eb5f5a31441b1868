"""Framing augmentation: ink boxes, exact recentring and zoom, its limits, and its use in
training."""

from __future__ import annotations

import pytest
import torch

from hypermaml.config import load_config
from hypermaml.data import ClassImages, EpisodeSampler, TaskShape
from hypermaml.data.framing import FrameAugment, ink_boxes, reframe
from hypermaml.data.strokes import StrokeAugment
from hypermaml.training import training_sampler


def page_with_box(top: int, left: int, height: int, width: int, size: int = 12) -> torch.Tensor:
    """[1, 1, size, size]: a white page (1) with a black rectangle (0)."""
    x = torch.ones(1, 1, size, size)
    x[0, 0, top : top + height, left : left + width] = 0.0
    return x


def test_ink_boxes_give_centre_and_larger_side():
    x = torch.cat([page_with_box(1, 2, 3, 5), page_with_box(6, 6, 4, 2), torch.ones(1, 1, 12, 12)])
    centre, extent, has_ink = ink_boxes(x)
    torch.testing.assert_close(centre, torch.tensor([[2.0, 4.0], [7.5, 6.5], [5.5, 5.5]]))
    torch.testing.assert_close(extent, torch.tensor([5.0, 4.0, 0.0]))
    assert has_ink.tolist() == [True, True, False]


def test_reframe_with_no_move_and_no_zoom_is_the_identity():
    x = torch.rand(3, 2, 10, 10)
    out = reframe(x, torch.full((3, 2), 4.5), torch.ones(3))
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_reframe_moves_the_ink_centre_to_the_middle_by_whole_pixels():
    # a 2x2 box at rows 1-2, columns 3-4 of a 12x12 page: centre (1.5, 3.5), middle (5.5, 5.5)
    x = page_with_box(1, 3, 2, 2)
    centre, _, _ = ink_boxes(x)
    out = reframe(x, centre, torch.ones(1))
    torch.testing.assert_close(out, page_with_box(5, 5, 2, 2), atol=1e-6, rtol=0)


def test_zoom_by_two_doubles_the_box_about_the_middle():
    # a 2x2 box centred on the middle of a 12x12 page, zoom 2: the 4x4 box of rows/columns 4-7,
    # edges blended by the bilinear resampling, so count pixels that are mostly ink
    x = page_with_box(5, 5, 2, 2)
    out = reframe(x, torch.tensor([[5.5, 5.5]]), torch.tensor([2.0]))
    dark = out[0, 0] < 0.5
    expected = torch.zeros(12, 12, dtype=torch.bool)
    expected[4:8, 4:8] = True
    assert torch.equal(dark, expected)
    # the page outside the image stays page
    assert out[0, 0, 0, 0] == 1.0


def test_augment_centres_enlarges_within_the_fit_and_keeps_blank_pages():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([page_with_box(0, 0, 3, 3, size=28).expand(64, -1, -1, -1),
                   torch.ones(1, 1, 28, 28)])  # fmt: skip
    out = FrameAugment(4.0, fit=12)(x, g)
    centre, extent, _ = ink_boxes(out[:64])
    assert (centre - 13.5).abs().max() <= 0.5, "every character is centred"
    assert extent.min() >= 3 and extent.max() <= 13, "enlarged, larger side within the fit"
    assert len(set(extent.tolist())) > 3, "every image draws its own zoom"
    assert torch.equal(out[64], x[64])


def test_augment_is_seeded_and_keeps_the_batch_shape():
    x = torch.rand(2, 3, 4, 1, 28, 28).round()
    a = FrameAugment(1.5)(x, torch.Generator().manual_seed(3))
    b = FrameAugment(1.5)(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)


def test_bad_framing_arguments_are_refused():
    with pytest.raises(ValueError, match=">= 1"):
        FrameAugment(0.8)
    with pytest.raises(ValueError, match="> 0"):
        FrameAugment(1.5, fit=0)


def test_training_sampler_frames_then_thickens_and_leaves_defaults_alone():
    images = torch.full((5, 4, 1, 28, 28), 255, dtype=torch.uint8)
    images[..., 2:6, 3:6] = 0
    data = ClassImages.dense("boxes", "train", images, [f"c{i}" for i in range(5)])
    cfg = load_config(None, ["data.n_way=3", "data.n_shot=1", "data.n_query=2"])
    plain = training_sampler(cfg, data).sample(2)
    untouched = EpisodeSampler(data, TaskShape(3, 1, 2), seed=cfg.train.seed).sample(2)
    assert torch.equal(plain.query_x, untouched.query_x)
    cfg = load_config(None, ["data.n_way=3", "data.n_shot=1", "data.n_query=2",
                             "data.train_zoom=1.5", "data.train_stroke=1.0"])  # fmt: skip
    framed = training_sampler(cfg, data).sample(2)
    # the same draws as a sampler that frames, then thickens, with its own generator
    sampler = EpisodeSampler(data, TaskShape(3, 1, 2), seed=cfg.train.seed,
                             augment=lambda x, gen: StrokeAugment(1.0)(FrameAugment(1.5)(x, gen),
                                                                       gen))  # fmt: skip
    expected = sampler.sample(2)
    assert torch.equal(framed.query_x, expected.query_x)
    centre, _, _ = ink_boxes(framed.query_x.reshape(-1, 1, 28, 28))
    assert (centre - 13.5).abs().max() <= 1.0
    with pytest.raises(ValueError, match=">= 1"):
        training_sampler(load_config(None, ["data.train_zoom=0.5"]), data)
