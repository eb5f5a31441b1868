"""ClassImages with classes of different sizes, and the sampler on them: flat storage, offsets,
per-class draws, normalisation after augmentation, and tasks of a dense set left unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hypermaml.data import (
    IMAGENET_NORMALISATION,
    ClassImages,
    DataError,
    EpisodeSampler,
    TaskShape,
    load_split,
)

COUNTS = [5, 9, 6, 12, 7]


def ragged() -> ClassImages:
    """Image i of class c has every pixel = 20 * c + i, classes of COUNTS images, 1x4x4."""
    codes = torch.cat([20 * c + torch.arange(n) for c, n in enumerate(COUNTS)]).to(torch.uint8)
    images = codes[:, None, None, None].expand(-1, 1, 4, 4).contiguous()
    return ClassImages.from_counts("ragged", "train", images, COUNTS, list("abcde"))


def test_dense_constructor_is_a_view_and_keeps_the_old_attributes():
    images = torch.arange(3 * 4 * 2 * 2, dtype=torch.uint8).reshape(3, 4, 1, 2, 2)
    for data in (ClassImages.dense("d", "t", images, list("abc")),
                 ClassImages("d", "t", images, list("abc"))):  # fmt: skip
        assert data.images.shape == (12, 1, 2, 2)
        assert data.images.data_ptr() == images.data_ptr()  # no copy
        assert data.offsets.tolist() == [0, 4, 8, 12] and data.counts == (4, 4, 4)
        assert (data.n_classes, data.n_per_class, data.image_shape) == (3, 4, (1, 2, 2))
        assert data.is_dense and torch.equal(data.dense_images(), images)
        assert torch.equal(data.class_images(1), images[1])


def test_ragged_classes_offsets_counts_and_views():
    data = ragged()
    assert data.counts == tuple(COUNTS) and data.n_per_class == 5 and not data.is_dense
    assert data.offsets.tolist() == [0, 5, 14, 20, 32, 39]
    assert data.class_images(3)[:, 0, 0, 0].tolist() == [60 + i for i in range(12)]
    with pytest.raises(ValueError, match="no dense view"):
        data.dense_images()


def test_memory_mapped_images_are_used_in_place(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(6 * 3 * 2 * 2, dtype=np.uint8).reshape(6, 3, 2, 2))
    mapped = torch.from_numpy(np.load(path, mmap_mode="c"))
    data = ClassImages.from_counts("m", "t", mapped, [2, 4], ["a", "b"], IMAGENET_NORMALISATION)
    assert data.images.data_ptr() == mapped.data_ptr()
    assert EpisodeSampler(data, TaskShape(2, 1, 1)).sample(2).support_x.shape == (2, 2, 3, 2, 2)


@pytest.mark.parametrize(
    ("images", "offsets", "names", "message"),
    [
        (torch.zeros(5, 2, 2, dtype=torch.uint8), [0, 2, 5], ["a", "b"], "N, C, H, W"),
        (torch.zeros(5, 1, 2, 2, dtype=torch.uint8), None, ["a"], "need offsets"),
        (torch.zeros(5, 1, 2, 2, dtype=torch.uint8), [0, 2, 4], ["a", "b"], "rise from 0 to 5"),
        (torch.zeros(5, 1, 2, 2, dtype=torch.uint8), [0, 3, 2, 5], list("abc"), "rise"),
        (torch.zeros(5, 1, 2, 2, dtype=torch.uint8), [0, 5], ["a", "b"], "rise"),
    ],
)
def test_inconsistent_images_or_offsets_are_refused(images, offsets, names, message):
    offsets = None if offsets is None else torch.tensor(offsets)
    with pytest.raises(ValueError, match=message):
        ClassImages("bad", "t", images, names, offsets)


def test_bad_normalisation_is_refused():
    images = torch.zeros(2, 3, 2, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="3 means and 3 positive stds"):
        ClassImages.from_counts("n", "t", images, [2], ["a"], ((0.5,), (0.2,)))
    with pytest.raises(ValueError, match="positive"):
        ClassImages.from_counts("n", "t", images, [2], ["a"], ((0, 0, 0), (1, 0, 1)))


def test_sampler_draws_each_class_within_its_own_images():
    data = ragged()
    batch = EpisodeSampler(data, TaskShape(5, 2, 3), seed=0).sample(200)
    codes = torch.cat([batch.support_x, batch.query_x], 1)[..., 0, 0, 0].mul(255).round().long()
    labels = torch.cat([batch.support_y, batch.query_y], 1)
    seen: set[int] = set()
    for b in range(200):
        for label in range(5):
            members = codes[b][labels[b] == label]
            cls = members // 20
            assert (cls == cls[0]).all() and members.unique().numel() == 5  # one class, no repeat
            assert ((members % 20) < COUNTS[int(cls[0])]).all()  # never past its own images
        seen |= set(codes[b].tolist())
    every = {20 * c + i for c, n in enumerate(COUNTS) for i in range(n)}
    assert seen == every  # the largest class's last images are drawn too


def test_shape_check_names_the_smallest_class():
    with pytest.raises(DataError) as info:
        EpisodeSampler(ragged(), TaskShape(3, 3, 3))
    message = str(info.value)
    assert "6 images per class" in message and "smallest class" in message
    assert "(a) has 5" in message and "at most 5" in message
    EpisodeSampler(ragged(), TaskShape(5, 2, 3))  # 5 = the smallest class: served


def test_normalisation_is_applied_after_the_augmentation():
    images = torch.full((4, 3, 2, 2), 51, dtype=torch.uint8)  # 0.2 everywhere
    norm = ((0.1, 0.2, 0.3), (0.5, 0.25, 0.1))
    data = ClassImages.from_counts("n", "t", images, [2, 2], ["a", "b"], norm)
    seen = []

    def augment(x, generator):
        seen.append(x.clone())
        return x * 2  # 0.4

    batch = EpisodeSampler(data, TaskShape(2, 1, 1), augment=augment).sample(1)
    assert torch.allclose(seen[0], torch.full_like(seen[0], 0.2))  # the augmentation saw [0, 1]
    expected = torch.tensor([(0.4 - m) / s for m, s in zip(*norm)])
    assert torch.allclose(batch.support_x[0, 0, :, 0, 0], expected)
    plain = ClassImages.from_counts("n", "t", images, [2, 2], ["a", "b"])
    assert torch.allclose(
        EpisodeSampler(plain, TaskShape(2, 1, 1)).sample(1).query_x, seen[0][0, 0, 0]
    )


def _old_sample(images5d: torch.Tensor, shape: TaskShape, seed: int, n_tasks: int):
    """The sampler of a dense set as it was before classes could differ in size."""
    n, k, q = shape.n_way, shape.n_shot, shape.n_query
    g = torch.Generator().manual_seed(seed)
    classes, picks = [], []
    for _ in range(n_tasks):
        classes.append(torch.randperm(images5d.shape[0], generator=g)[:n])
        picks.append(torch.stack([torch.randperm(images5d.shape[1], generator=g)[: k + q]
                                  for _ in range(n)]))  # fmt: skip
    x = images5d[torch.stack(classes)[:, :, None], torch.stack(picks)].float().div_(255.0)
    return x[:, :, :k].reshape(n_tasks, n * k, *x.shape[3:]), x[:, :, k:].reshape(
        n_tasks, n * q, *x.shape[3:]
    )


@pytest.mark.parametrize("seed", [0, 1, 123])
def test_dense_tasks_are_bit_identical_to_the_sampler_before_ragged_classes(data_root, seed):
    """The shipped checkpoints' scores depend on the test tasks: a dense set must give exactly
    the tasks it gave before (real Omniglot test classes and EMNIST)."""
    for name, split in (("omniglot", "test"), ("cross_char", "val")):
        data = load_split(name, split, data_root)
        for shape in (TaskShape(5, 1, 15), TaskShape(20, 5, 5)):
            sampler = EpisodeSampler(data, shape, seed=seed)
            new = sampler.sample(4)
            old_support, old_query = _old_sample(data.dense_images(), shape, seed, 4)
            assert torch.equal(new.support_x, old_support) and torch.equal(new.query_x, old_query)
