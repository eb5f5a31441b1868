"""Episode sampling on a synthetic dataset whose pixels encode (class, image index)."""

from __future__ import annotations

import pytest
import torch

from hypermaml.data import ClassImages, DataError, EpisodeSampler, TaskShape

N_CLASSES, N_PER_CLASS = 7, 12


def coded_images(n_classes: int = N_CLASSES, n_per_class: int = N_PER_CLASS) -> ClassImages:
    """Every pixel of image i of class c holds the code c * n_per_class + i (< 256)."""
    codes = torch.arange(n_classes * n_per_class, dtype=torch.uint8)
    images = codes.reshape(n_classes, n_per_class, 1, 1, 1).expand(-1, -1, 1, 8, 8).contiguous()
    return ClassImages.dense("coded", "train", images, [f"c{i}" for i in range(n_classes)])


def decode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float images [..., 1, 8, 8] -> (class, index) tensors [...]."""
    code = (x * 255).round().long()
    flat = code.flatten(-3)
    assert (flat == flat[..., :1]).all(), "an image was altered"
    code = flat[..., 0]
    return code // N_PER_CLASS, code % N_PER_CLASS


@pytest.fixture
def data() -> ClassImages:
    return coded_images()


def test_shapes_and_dtypes(data):
    batch = EpisodeSampler(data, TaskShape(3, 2, 4), seed=0).sample(5)
    assert batch.support_x.shape == (5, 3 * 2, 1, 8, 8)
    assert batch.query_x.shape == (5, 3 * 4, 1, 8, 8)
    assert batch.support_y.shape == (5, 6) and batch.query_y.shape == (5, 12)
    assert batch.support_x.dtype == torch.float32 and batch.support_y.dtype == torch.long
    assert (batch.n_way, batch.n_shot, batch.n_tasks) == (3, 2, 5)


def test_values_are_floats_in_unit_interval_scaled_from_uint8(data):
    batch = EpisodeSampler(data, TaskShape(4, 1, 3), seed=1).sample(6)
    for x in (batch.support_x, batch.query_x):
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert torch.allclose(x * 255, (x * 255).round(), atol=1e-4)
    white = torch.full((3, 4, 1, 8, 8), 255, dtype=torch.uint8)
    full = ClassImages.dense("white", "t", white, list("abc"))
    assert (EpisodeSampler(full, TaskShape(2, 1, 1)).sample(1).support_x == 1.0).all()


def test_labels_are_class_major(data):
    batch = EpisodeSampler(data, TaskShape(4, 3, 2), seed=0).sample(3)
    expected_s = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    expected_q = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    assert (batch.support_y == expected_s).all()
    assert (batch.query_y == expected_q).all()


def test_task_content_is_consistent_with_labels(data):
    n, k, q = 4, 3, 5
    batch = EpisodeSampler(data, TaskShape(n, k, q), seed=3).sample(20)
    s_cls, s_idx = decode(batch.support_x)
    q_cls, q_idx = decode(batch.query_x)
    for b in range(20):
        # every image of one label comes from one dataset class, support and query alike
        per_label = [
            torch.cat([s_cls[b][batch.support_y[b] == c], q_cls[b][batch.query_y[b] == c]])
            for c in range(n)
        ]
        for members in per_label:
            assert members.numel() == k + q and (members == members[0]).all()
        # the N classes of a task are distinct
        classes = torch.stack([m[0] for m in per_label])
        assert classes.unique().numel() == n
        # no image twice in a task: support and query are disjoint and without repeats
        codes = torch.cat([s_cls[b] * N_PER_CLASS + s_idx[b], q_cls[b] * N_PER_CLASS + q_idx[b]])
        assert codes.unique().numel() == n * (k + q)


def test_labels_are_a_random_remapping_and_all_data_is_used(data):
    batch = EpisodeSampler(data, TaskShape(3, 1, 2), seed=0).sample(200)
    s_cls, s_idx = decode(batch.support_x)
    first = s_cls[:, 0]  # the class that got label 0 in each task
    assert (first != s_cls.min(1).values).any(), "label 0 is always the smallest class id"
    assert (s_cls[:, 1] < s_cls[:, 0]).any() and (s_cls[:, 1] > s_cls[:, 0]).any()
    assert set(s_cls.flatten().tolist()) == set(range(N_CLASSES))
    assert set(s_idx.flatten().tolist()) == set(range(N_PER_CLASS))


def test_same_seed_same_tasks_other_seed_other_tasks(data):
    def draw(seed):
        batch = EpisodeSampler(data, TaskShape(5, 2, 3), seed=seed).sample(4)
        return torch.cat([batch.support_x.flatten(), batch.query_x.flatten()])

    assert torch.equal(draw(11), draw(11))
    assert not torch.equal(draw(11), draw(12))


def test_successive_batches_differ(data):
    sampler = EpisodeSampler(data, TaskShape(3, 1, 1), seed=0)
    assert not torch.equal(sampler.sample(4).support_x, sampler.sample(4).support_x)


@pytest.mark.parametrize(("n_tasks", "batch_size", "sizes"), [
    (10, 4, [4, 4, 2]), (8, 8, [8]), (3, 8, [3]), (6, 1, [1] * 6),
])  # fmt: skip
def test_batches_yield_n_tasks(data, n_tasks, batch_size, sizes):
    batches = list(EpisodeSampler(data, TaskShape(2, 1, 1), seed=0).batches(n_tasks, batch_size))
    assert [b.n_tasks for b in batches] == sizes
    assert sum(b.query_y.shape[0] for b in batches) == n_tasks


def test_tasks_do_not_depend_on_the_batch_size(data):
    """The docstring promises tasks that depend only on the data, N, K, Q and the seed; the
    test protocol (evaluate(..., batch_size)) relies on it to score methods on identical tasks."""

    def tasks(batch_size):
        sampler = EpisodeSampler(data, TaskShape(3, 1, 2), seed=5)
        return torch.cat([b.support_x for b in sampler.batches(12, batch_size)])

    reference = tasks(4)
    for batch_size in (3, 12):
        assert torch.equal(tasks(batch_size), reference), (
            f"the 12 tasks drawn from seed 5 in batches of {batch_size} differ from those drawn "
            "in batches of 4"
        )


@pytest.mark.parametrize(
    ("n_way", "n_shot", "n_query", "must_name"),
    [
        (8, 1, 1, ["8", "7", "n_way"]),
        (3, 5, 8, ["13", "12", "n_shot + n_query"]),
        (3, 12, 1, ["13", "12", "n_shot + n_query"]),
        (0, 1, 1, ["n_way", ">= 1", "0"]),
        (3, 0, 1, ["n_shot", ">= 1", "0"]),
        (3, 1, 0, ["n_query", ">= 1", "0"]),
        (-2, 1, 1, ["n_way", ">= 1", "-2"]),
    ],
)
def test_impossible_requests_raise_data_error_naming_numbers_and_fix(
    data, n_way, n_shot, n_query, must_name
):
    with pytest.raises(DataError) as info:
        EpisodeSampler(data, TaskShape(n_way, n_shot, n_query))
    message = str(info.value)
    for text in must_name:
        assert text in message
    if n_way > N_CLASSES:
        assert "lower n_way to at most 7" in message
    if n_shot + n_query > N_PER_CLASS:
        assert "at most 12" in message


def test_largest_possible_request_is_served(data):
    batch = EpisodeSampler(data, TaskShape(N_CLASSES, 5, 7), seed=0).sample(2)
    cls, idx = decode(torch.cat([batch.support_x, batch.query_x], 1))
    for b in range(2):
        assert (cls[b] * N_PER_CLASS + idx[b]).unique().numel() == N_CLASSES * N_PER_CLASS
