"""A shipped model taught new classes through the API: the same logits as the benchmark path on
real EMNIST tasks, the caller's labels, any shots, and clear errors on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import hypermaml
from hypermaml.data import EpisodeSampler, TaskShape, load_split
from hypermaml.errors import DataError

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"
MODELS = ["cross_char_1s_hypermaml", "cross_char_1s_maml_frame", "omniglot_5w1s_protonet"]
NAMES = ["alpha", "beta", "gamma", "delta", "eps"]


@pytest.fixture(scope="module")
def emnist(data_root):
    return load_split("cross_char", "test", data_root)


def tasks(data, n: int, shot: int = 1, seed: int = 0):
    return EpisodeSampler(data, TaskShape(5, shot, 15), seed=seed).sample(n)


@pytest.mark.parametrize("name", MODELS)
def test_the_api_gives_the_benchmark_logits_for_the_same_task(name, emnist):
    model = hypermaml.load(SHIPPED / name)
    batch = tasks(emnist, 2)
    method = model.method
    with torch.no_grad():  # MAML's inner loop must still run: it turns gradients on itself
        for b in range(2):
            one = slice(b, b + 1)  # the benchmark path, one task a batch (as the API adapts)
            expected = method.predict(
                batch.query_x[one], method.adapt(batch.support_x[one], batch.support_y[one])
            )
            labels = [NAMES[i] for i in batch.support_y[b].tolist()]
            task = model.adapt(batch.support_x[b], labels)
            got = task.logits(batch.query_x[b], statistics="queries")
            assert torch.equal(got, expected[0])
            # EMNIST's own polarity (white ink on black) is detected and inverted
            inverted = task.logits(1 - batch.query_x[b], statistics="queries")
            assert torch.equal(inverted, expected[0])
            assert task.predict(batch.query_x[b], statistics="queries") == [
                NAMES[i] for i in expected[0].argmax(-1).tolist()]  # fmt: skip


def test_support_statistics_score_each_query_alone_and_well(emnist):
    model = hypermaml.load(SHIPPED / "cross_char_1s_hypermaml")
    batch = tasks(emnist, 10, seed=3)
    correct = []
    for b in range(10):
        task = model.adapt(batch.support_x[b], batch.support_y[b].tolist())
        logits = task.logits(batch.query_x[b])
        alone = task.logits(batch.query_x[b][[4]])
        assert torch.allclose(alone[0], logits[4], atol=1e-3)  # whatever it is scored with
        correct.append((logits.argmax(-1) == batch.query_y[b]).float().mean())
    assert float(torch.stack(correct).mean()) > 0.7  # chance: 0.2
    probs = task.predict_proba(batch.query_x[b][:3])
    assert probs.shape == (3, 5) and torch.allclose(probs.sum(-1), torch.ones(3))


def test_labels_are_the_callers_and_classes_take_the_rows_in_order_of_first_appearance(emnist):
    batch = tasks(emnist, 1, shot=3)
    x, y = batch.support_x[0], batch.support_y[0]  # classes in order: 0 0 0 1 1 1 ...
    names = [NAMES[i] for i in y.tolist()]
    query = batch.query_x[0]
    # the first image of each class first, the rest shuffled: the same classes on the same rows
    firsts = [3 * c for c in range(5)]
    rest = [i for i in range(15) if i not in firsts]
    rest = [rest[i] for i in torch.randperm(10, generator=torch.Generator().manual_seed(0))]
    for name in MODELS:
        model = hypermaml.load(SHIPPED / name)
        task = model.adapt(x, names)
        assert task.classes == NAMES and task.shots == [3] * 5
        shuffled = model.adapt(x[firsts + rest], [names[i] for i in firsts + rest])
        assert shuffled.classes == NAMES
        assert torch.allclose(shuffled.logits(query), task.logits(query), atol=1e-3)
    # ProtoNet does not depend on which row a class takes; HyperMAML's head does
    backwards = list(range(14, -1, -1))
    for name, invariant in (("omniglot_5w1s_protonet", True), ("cross_char_1s_hypermaml", False)):
        model = hypermaml.load(SHIPPED / name)
        task = model.adapt(x, names)
        other = model.adapt(x[backwards], [names[i] for i in backwards])
        assert other.classes == NAMES[::-1]
        same = torch.allclose(other.logits(query).flip(-1), task.logits(query), atol=1e-3)
        assert same == invariant, name


def test_uneven_shots_are_taken_and_averaged(emnist):
    model = hypermaml.load(SHIPPED / "cross_char_5s_hypermaml")
    batch = tasks(emnist, 1, shot=5)
    keep = [i for i, c in enumerate(batch.support_y[0].tolist()) if i % 5 <= c]  # 1..5 shots
    task = model.adapt(batch.support_x[0][keep], batch.support_y[0][keep].tolist())
    assert task.shots == [1, 2, 3, 4, 5]
    accuracy = (task.logits(batch.query_x[0]).argmax(-1) == batch.query_y[0]).float().mean()
    assert accuracy > 0.5


def test_universal_classifier_is_shown_beside_the_adapted_one(emnist):
    batch = tasks(emnist, 1)
    for name in MODELS:
        task = hypermaml.load(SHIPPED / name).adapt(batch.support_x[0], batch.support_y[0].tolist())
        universal = task.universal_proba(batch.query_x[0][:4])
        if name.endswith("protonet"):
            assert universal is None
        else:
            assert universal.shape == (4, 5)
            assert not torch.allclose(universal, task.predict_proba(batch.query_x[0][:4]))


def test_the_number_of_classes_a_head_was_trained_for_is_enforced(emnist):
    x = torch.rand(3, 1, 28, 28)
    for name in MODELS[:2]:
        with pytest.raises(DataError, match=r"exactly 5 classes .* 3 were given.*ProtoNet"):
            hypermaml.load(SHIPPED / name).adapt(x, ["a", "b", "c"])
    batch = tasks(emnist, 1)
    three = batch.support_y[0] < 3
    task = hypermaml.load(SHIPPED / "omniglot_5w1s_protonet").adapt(
        batch.support_x[0][three], batch.support_y[0][three].tolist())  # fmt: skip
    assert task.predict_proba(batch.query_x[0][:2]).shape == (2, 3)


@pytest.mark.parametrize(("images", "labels", "message"), [
    ([], [], "support set is empty"),
    (torch.rand(2, 1, 28, 28), ["a"], "2 support images but 1 labels"),
    (torch.rand(2, 1, 28, 28), ["a", "a"], "one class"),
    ([np.zeros((5, 5, 2))] * 5, NAMES, r"H x W x C with C of 1, 3 or 4"),
    ([np.full((9, 9), np.nan)] * 5, NAMES, "NaN"),
    ([object()] * 5, NAMES, "not an image"),
    (["no/such/file.png"] * 5, NAMES, "no such image file"),
    ([np.zeros((4, 4), dtype=np.int64)] * 5, NAMES, "pixels of type int64"),
])  # fmt: skip
def test_bad_support_sets_are_refused_with_the_reason(images, labels, message):
    model = hypermaml.load(SHIPPED / "cross_char_1s_hypermaml")
    with pytest.raises(DataError, match=message):
        model.adapt(images, labels)


def test_bad_queries_and_unreadable_files_are_refused(tmp_path):
    model = hypermaml.load(SHIPPED / "cross_char_1s_hypermaml")
    task = model.adapt(torch.rand(5, 1, 28, 28), NAMES)
    with pytest.raises(DataError, match="no query images"):
        task.predict([])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"broken\.png is not a readable image"):
        task.predict([bad])
    with pytest.raises(ValueError, match="statistics must be"):
        task.predict(torch.rand(1, 1, 28, 28), statistics="batch")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_adapt_and_predict_on_cuda_match_the_cpu(emnist):
    batch = tasks(emnist, 1)
    for name in MODELS:
        cpu = hypermaml.load(SHIPPED / name).adapt(batch.support_x[0], batch.support_y[0].tolist())
        gpu = hypermaml.load(SHIPPED / name, device="cuda").adapt(
            batch.support_x[0], batch.support_y[0].tolist()
        )
        assert torch.allclose(gpu.logits(batch.query_x[0]), cpu.logits(batch.query_x[0]),
                              atol=1e-3)  # fmt: skip
