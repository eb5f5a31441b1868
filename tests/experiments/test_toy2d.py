"""The 2-D toy of Figure 1/3: task geometry and labels, the linear views, and the outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hypermaml.experiments.toy2d import (
    ELLIPSES,
    METHOD_SPECS,
    build_toy_method,
    ellipse_params,
    linear_view,
    run_demo,
    sample_ellipses,
    sample_tasks,
    task_accuracy,
    toy_tasks,
    train_method,
)
from hypermaml.methods import MAML, HyperMAML


def spec(name: str):
    return next(s for s in METHOD_SPECS if s.name == name)


def test_four_tasks_pair_the_horizontal_and_the_vertical_ellipses_in_both_orders():
    tasks = toy_tasks()
    assert len(tasks) == 4
    pairs = [tuple(ELLIPSES[i] for i in t.ellipses) for t in tasks]
    assert pairs == [("top", "bottom"), ("bottom", "top"), ("left", "right"), ("right", "left")]
    assert len({t.name for t in tasks}) == 4


def test_horizontal_ellipses_are_long_along_x_and_vertical_ones_along_y():
    points = sample_ellipses(torch.arange(4), 5000, torch.Generator().manual_seed(0))  # [4, n, 2]
    var = points.var(1)  # [4, 2]
    mean = points.mean(1)
    for i, name in enumerate(ELLIPSES):
        long_axis = 0 if name in ("top", "bottom") else 1
        assert var[i, long_axis] > 100 * var[i, 1 - long_axis], name
    assert mean[0, 1] > 0.5 and mean[1, 1] < -0.5  # top above, bottom below the origin
    assert mean[2, 0] < -0.5 and mean[3, 0] > 0.5  # left and right of it
    assert mean[:2, 0].abs().max() < 0.3 and mean[2:, 1].abs().max() < 0.3
    centres, _ = ellipse_params()
    torch.testing.assert_close(mean, centres, atol=0.3, rtol=0)


def test_task_batch_layout_is_class_major():
    batch = sample_tasks([0, 1, 2, 3, 0], 7, 3, torch.Generator().manual_seed(1))
    assert batch.support_x.shape == (5, 14, 2) and batch.query_x.shape == (5, 6, 2)
    assert batch.support_x.dtype == torch.float32 and batch.support_y.dtype == torch.long
    assert (batch.n_way, batch.n_shot, batch.n_tasks) == (2, 7, 5)
    expected = torch.tensor([0] * 7 + [1] * 7)
    assert torch.equal(batch.support_y, expected.expand(5, -1))
    assert torch.equal(batch.query_y, torch.tensor([0] * 3 + [1] * 3).expand(5, -1))


def test_same_seed_gives_the_same_points_and_another_seed_does_not():
    def draw(seed: int):
        return sample_tasks([0, 2, 3], 5, 4, torch.Generator().manual_seed(seed))

    a, b, c = draw(3), draw(3), draw(4)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.support_x, c.support_x)


def test_the_two_orders_of_a_pair_swap_the_labels():
    batch = sample_tasks([0, 1, 2, 3], 20, 20, torch.Generator().manual_seed(2))
    x = torch.cat([batch.support_x, batch.query_x], 1)  # [4, 80, 2]
    sign = 1 - 2 * torch.cat([batch.support_y, batch.query_y], 1).float()  # label 0 -> +1
    y_coord, x_coord = x[..., 1], x[..., 0]
    assert (sign[0] * y_coord[0] > 0).all()  # top|bottom: label 0 above the origin
    assert (sign[1] * y_coord[1] < 0).all()  # bottom|top: label 0 below
    assert (sign[2] * x_coord[2] < 0).all()  # left|right: label 0 on the left
    assert (sign[3] * x_coord[3] > 0).all()  # right|left: label 0 on the right


@pytest.mark.parametrize("name", ["MAML-5", "HyperMAML"])
def test_linear_view_reproduces_the_methods_own_logits(name, single_thread):
    torch.manual_seed(0)
    method = build_toy_method(spec(name))
    assert isinstance(method, MAML if name.startswith("MAML") else HyperMAML)
    batch = sample_tasks(range(4), 10, 5, torch.Generator().manual_seed(0))
    view = linear_view(method, batch)
    with torch.no_grad():
        logits = method.predict(batch.query_x, method.adapt(batch.support_x, batch.support_y))
    margin = torch.einsum("bmd,bd->bm", batch.query_x, view.adapted_w) + view.adapted_b[:, None]
    torch.testing.assert_close(margin, logits[..., 1] - logits[..., 0], atol=1e-4, rtol=1e-4)
    assert view.universal_w.shape == (2,) and view.adapted_w.shape == (4, 2)
    assert not torch.allclose(view.adapted_w, view.universal_w.expand(4, -1))


def _accuracy(method, seed: int = 5, episodes: int = 3) -> torch.Tensor:
    """Mean query accuracy [4] over a few fresh episodes of the four tasks."""
    g = torch.Generator().manual_seed(seed)
    batches = [sample_tasks(range(4), 100, 500, g) for _ in range(episodes)]
    return torch.stack([task_accuracy(method, b) for b in batches]).mean(0)


def test_hypermaml_solves_all_four_tasks_with_one_generated_update(single_thread):
    method, losses = train_method(spec("HyperMAML"), seed=0)
    assert sum(losses[-100:]) / 100 < 0.5 * sum(losses[:100]) / 100
    accuracy = _accuracy(method)
    assert (accuracy > 0.9).all(), accuracy


def test_maml_with_one_step_fails_some_task(single_thread):
    method, _ = train_method(spec("MAML-1"), seed=0)
    accuracy = _accuracy(method)
    assert accuracy.min() < 0.9, accuracy


def test_run_demo_writes_the_table_and_the_figure(tmp_path: Path, single_thread, capsys):
    accuracy = run_demo(tmp_path, seed=0, iterations=20)
    names = [t.name for t in toy_tasks()]
    assert list(accuracy) == ["MAML-1", "MAML-5", "HyperMAML"]
    for row in accuracy.values():
        assert list(row) == names and all(0.0 <= a <= 1.0 for a in row.values())
    report = json.loads((tmp_path / "toy2d_accuracy.json").read_text())
    assert report["accuracy"] == accuracy and report["seed"] == 0
    assert report["iterations"] == {"MAML-1": 20, "MAML-5": 20, "HyperMAML": 20}
    png = (tmp_path / "toy2d.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert "HyperMAML" in capsys.readouterr().out
