"""The inner-loop movement of the weights each layer uses (HyperResNets, Figure 4) on tiny MAML
models: zero without inner steps, positive after one, and the norms of ``adapt``'s output."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hypermaml.config import DataConfig, ExperimentConfig, MAMLConfig, ProtoNetConfig
from hypermaml.data import EpisodeSampler, TaskShape
from hypermaml.errors import ConfigError
from hypermaml.experiments.movement import (
    MovementTable,
    analyze_movement,
    batch_movement,
    checkpoint_movement,
    comparison_rows,
    format_comparison,
    inner_loop_movement,
    plot_movement,
    weight_sources,
)
from hypermaml.methods import MAML, build_method, save_method
from hypermaml.models import Conv4, GroupedEncoder
from hypermaml.models.conv4net import Conv4Net

N_WAY = 3
SHAPE = TaskShape(N_WAY, 1, 2)
CONVS = [f"convs.{i}" for i in range(4)]


def plain_maml(steps: int = 1) -> MAML:
    torch.manual_seed(0)
    return MAML(Conv4(1, 16, width=8), N_WAY, MAMLConfig(inner_steps=steps, inner_lr=0.5))


def hyper_maml(hyper: str = "stage", adapt: str = "embeddings", steps: int = 1) -> MAML:
    torch.manual_seed(0)
    net = Conv4Net(in_channels=1, image_size=16, hyper=hyper, width=8)
    cfg = MAMLConfig(inner_steps=steps, inner_lr=0.5, adapt=adapt)
    return MAML(GroupedEncoder(net), N_WAY, cfg)


def support(tiny_images, n_tasks: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    batch = EpisodeSampler(tiny_images, SHAPE, seed=0).sample(n_tasks)
    return batch.support_x, batch.support_y


def with_test_steps(method: MAML, steps: int) -> MAML:
    method.cfg = replace(method.cfg, inner_steps_test=steps)
    return method.eval()


def test_the_layers_are_named_alike_in_plain_and_hyper_encoders():
    plain = [(s.name, s.kind) for s in weight_sources(plain_maml())]
    hyper = [(s.name, s.kind) for s in weight_sources(hyper_maml())]
    assert plain == [*((c, "plain") for c in CONVS), ("head", "head")]
    assert hyper == [("convs.0", "plain"), *((c, "generated") for c in CONVS[1:]), ("head", "head")]


@pytest.mark.parametrize("make", [plain_maml, hyper_maml], ids=["plain", "hyper"])
def test_no_inner_step_moves_nothing(tiny_images, make, single_thread):
    rows = inner_loop_movement(with_test_steps(make(), 0), tiny_images, SHAPE, n_tasks=4)
    assert [row.mean for row in rows] == [0.0] * 5


@pytest.mark.parametrize("make", [plain_maml, hyper_maml], ids=["plain", "hyper"])
def test_one_inner_step_moves_every_adapted_layer(tiny_images, make, single_thread):
    rows = inner_loop_movement(with_test_steps(make(), 1), tiny_images, SHAPE, n_tasks=4)
    for row in rows:
        assert (row.mean > 0) == row.adapted, row
        assert row.weight_norm > 0
    adapted = {row.name for row in rows if row.adapted}
    hyper = any(row.kind == "generated" for row in rows)
    assert adapted == ({*CONVS[1:], "head"} if hyper else {*CONVS, "head"})


@torch.no_grad()
def test_plain_movement_is_the_norm_of_adapts_change(tiny_images, single_thread):
    method = with_test_steps(plain_maml(), 1)
    sx, sy = support(tiny_images)
    moved = batch_movement(method, sx, sy, weight_sources(method))
    adapted = method.adapt(sx, sy)
    for i, conv in enumerate(method.encoder.convs):
        by_hand = [(adapted[f"encoder.convs.{i}.weight"][b] - conv.weight).norm().item()
                   for b in range(3)]  # fmt: skip
        assert moved[f"convs.{i}"] == pytest.approx(by_hand, rel=1e-6)
    by_hand = [(adapted["head.weight"][b] - method.head.weight).norm().item() for b in range(3)]
    assert moved["head"] == pytest.approx(by_hand, rel=1e-6)


@torch.no_grad()
@pytest.mark.parametrize("hyper,adapt", [("stage", "embeddings"), ("layer", "all")])
def test_generated_movement_regenerates_the_weights(tiny_images, hyper, adapt, single_thread):
    """W = conv2d(E, H): with the embeddings (and, for adapt all, the hypernetworks) after the
    inner loop against those before it."""
    method = with_test_steps(hyper_maml(hyper, adapt), 1)
    sx, sy = support(tiny_images)
    moved = batch_movement(method, sx, sy, weight_sources(method))
    adapted = method.adapt(sx, sy)
    net = method.encoder.net
    for i in (1, 2, 3):
        prefix = f"encoder.net.convs.{i}"
        hyper_name = "encoder.net.hypernets.stage1" if hyper == "stage" else f"{prefix}.hypernet"
        before = F.conv2d(net.convs[i].embedding, net.convs[i].hypernet.weight, padding=1)
        by_hand = []
        for b in range(3):
            after = F.conv2d(adapted[f"{prefix}.embedding"][b],
                             adapted[f"{hyper_name}.weight"][b], padding=1)  # fmt: skip
            by_hand.append((after - before).norm().item())
        assert moved[f"convs.{i}"] == pytest.approx(by_hand, rel=1e-5)
        assert min(by_hand) > 0


def test_the_mean_is_over_the_seeded_tasks(tiny_images, single_thread):
    method = with_test_steps(plain_maml(), 1)
    rows = inner_loop_movement(method, tiny_images, SHAPE, n_tasks=5, seed=3, batch_size=2)
    batch = EpisodeSampler(tiny_images, SHAPE, seed=3).sample(5)
    moved = batch_movement(method, batch.support_x, batch.support_y, weight_sources(method))
    assert rows[2].mean == pytest.approx(sum(moved["convs.2"]) / 5, rel=1e-6)


def _table(name: str, hyper: str, means: list[float]) -> MovementTable:
    from hypermaml.experiments.movement import LayerMovement

    kind = "plain" if hyper == "none" else "generated"
    layers = [LayerMovement(c, kind, [8, 8, 3, 3], m > 0, m, 0.0, 2.0)
              for c, m in zip(CONVS, means)]  # fmt: skip
    return MovementTable(name, hyper, "all", 1, 10, 0.1, layers)


def test_comparison_and_figure(tmp_path):
    tables = [_table("plain", "none", [0.1, 0.2, 0.3, 0.4]), _table("hyper", "stage", [0, 1, 1, 2])]
    rows = comparison_rows(tables)
    assert rows[0]["ratio_1"] == 0 and rows[3]["ratio_1"] == pytest.approx(5.0)
    assert rows[3]["relative_0"] == pytest.approx(0.2)
    assert "convs.3" in format_comparison(tables)
    plot_movement(tables, tmp_path / "movement.png")
    assert (tmp_path / "movement.png").stat().st_size > 0


def test_a_method_other_than_maml_is_refused(tmp_path):
    cfg = ExperimentConfig(data=DataConfig(dataset="omniglot"), method=ProtoNetConfig())
    save_method(tmp_path / "protonet", build_method(cfg, (1, 28, 28)), cfg, (1, 28, 28), 0, {})
    with pytest.raises(ConfigError, match="MAML's"):
        checkpoint_movement(tmp_path / "protonet")


SHIPPED = Path(__file__).parents[2] / "checkpoints"


def test_the_shipped_pair_on_real_tasks(data_root, tmp_path, single_thread):
    """The plain and HyperConv4 MAML checkpoints on a few Omniglot -> EMNIST test tasks."""
    from hypermaml.migrate import upgrade

    paths = []
    for name in ("cross_char_1s_maml_pretrained", "cross_char_1s_maml_hyperconv4"):
        if not (SHIPPED / name).is_dir():
            pytest.skip(f"checkpoints/{name} is not in this checkout")
        shutil.copytree(SHIPPED / name, tmp_path / name)
        upgrade(tmp_path / name)  # a copy in the current format; the shipped one is untouched
        paths.append(tmp_path / name)
    report = analyze_movement(paths, n_tasks=8, data_root=data_root, device="cpu",
                              plot=tmp_path / "fig.png", log=None)  # fmt: skip
    plain, hyper = report["tables"]
    assert [row["adapted"] for row in hyper["layers"]] == [False, True, True, True, True]
    assert all(row["mean"] > 0 for row in plain["layers"])
    assert (tmp_path / "fig.png").is_file()
