"""`hypermaml bench` on a tiny configuration: it runs every method and writes valid JSON."""

from __future__ import annotations

import json

import pytest
import torch

from hypermaml.cli import main
from hypermaml.experiments.floor import conv4_layer_flops, floor_seconds, task_flops

TINY = ["--n-classes", "12", "--image-size", "16", "--train-episodes", "4", "--eval-tasks", "6",
        "--eval-batch", "4", "--threads", "1"]  # fmt: skip


def test_bench_times_every_method_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", *TINY, "--maml-steps", "1,2", "--maml-batching", "both",
                 "--in-process", "--json", str(out)])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    cases = [row["case"] for row in report["rows"]]
    assert cases == ["hypermaml", "maml-1 (loop)", "maml-1 (vmap)", "maml-2 (loop)",
                     "maml-2 (vmap)", "protonet"]  # fmt: skip
    for row in report["rows"]:
        assert row["device"] == "cpu" and row["threads"] == 1
        assert row["train_episodes_per_s"] > 0 and row["eval_tasks_per_s"] > 0
        assert row["eval_seconds"] == pytest.approx(6 / row["eval_tasks_per_s"])
        assert row["train_peak_mb"] > 0 and row["eval_peak_mb"] > 0
    assert report["settings"]["n_way"] == 5 and report["environment"]["torch"]
    table = capsys.readouterr().out
    assert "maml-2 (vmap)" in table and "eval tasks/s" in table
    rows = {row["case"]: row for row in report["rows"]}
    ratio = report["ratios"]["eval time hypermaml / maml-1 (loop)"]
    assert ratio == pytest.approx(rows["hypermaml"]["eval_seconds"]
                                  / rows["maml-1 (loop)"]["eval_seconds"])  # fmt: skip
    to_protonet = report["ratios"]["eval time hypermaml / protonet"]
    assert f"eval time hypermaml / protonet: {to_protonet:.2f}" in table
    gemm = report["reference_gemm_gflops"]
    assert len(gemm) == 2 and min(gemm) > 0
    # 16x16 images: conv FLOPs per image 2*9*64*(1*256 + 64*64 + 64*16 + 64*4)
    per_image = 2 * 9 * 64 * (256 + 64 * 64 + 64 * 16 + 64 * 4)
    for row in report["rows"]:
        floor_eval = 5 * 16 * per_image / (max(gemm) * 1e9)
        assert row["eval_floor_fraction"] == pytest.approx(floor_eval * row["eval_tasks_per_s"])


def test_bench_isolates_each_phase_in_a_fresh_process(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--methods", "protonet", "--phases", "eval",
                 "--json", str(out)]) == 0  # fmt: skip
    (row,) = json.loads(out.read_text())["rows"]
    assert row["case"] == "protonet" and row["train_episodes_per_s"] is None
    assert row["eval_tasks_per_s"] > 0


def test_bench_refuses_a_selection_of_no_method(capsys):
    assert main(["bench", *TINY, "--methods", "reptile"]) == 2
    assert "selects no method" in capsys.readouterr().err


def test_floor_counts_conv4_flops():
    # 28x28 Conv4: 0.9, 14.5, 3.6 and 0.7 MFLOP (sides 28, 14, 7, 3)
    layers = conv4_layer_flops(28)
    assert layers == [2 * 9 * 64 * 28 * 28, 2 * 9 * 64 * 64 * 196,
                      2 * 9 * 64 * 64 * 49, 2 * 9 * 64 * 64 * 9]  # fmt: skip
    assert task_flops(28, 80) == 80 * sum(layers)
    # training: forward + weight gradient + input gradient of layers 2-4
    assert task_flops(28, 85, training=True) == 85 * (2 * sum(layers) + sum(layers[1:]))
    assert floor_seconds(2e9, 100.0) == pytest.approx(0.02)


def test_bench_pins_the_kernels_in_its_fresh_processes():
    """``deterministic`` reaches each phase's process, and the parent's setting is untouched."""
    from hypermaml.engine import kernels
    from hypermaml.experiments import speed

    settings = speed.BenchSettings(n_classes=12, image_size=16, eval_tasks=6, eval_batch=4,
                                   threads=1, phases=("eval",), deterministic=True)  # fmt: skip
    rows, reference = speed.run_bench(speed.select_cases("protonet"), settings, log=None)
    extra = rows[0].extra
    assert extra["deterministic"] is True and extra["eval_kernels"]
    assert not any("timed" in name for name in extra["eval_kernels"].values())
    assert "kernels pinned (deterministic)" in speed.summary(rows, reference)
    assert not kernels.is_deterministic()
    in_process = speed.measure(speed.select_cases("protonet")[0], settings, "eval")
    assert in_process["extra"]["deterministic"] and not kernels.is_deterministic()


def test_bench_times_natural_image_encoders(tmp_path):
    """--dataset mini_imagenet: 3-channel images; the floor is counted for Conv4 and Conv4Pool
    only (the other encoders' convolutions are not modelled)."""
    out = tmp_path / "bench.json"
    for backbone, floor in (("conv4pool", True), ("resnet12", False)):
        assert main(["bench", "--dataset", "mini_imagenet", "--backbone", backbone,
                     "--n-classes", "6", "--image-size", "16", "--methods", "hypermaml",
                     "--phases", "eval", "--eval-tasks", "2", "--eval-batch", "2",
                     "--threads", "1", "--in-process", "--json", str(out)]) == 0  # fmt: skip
        report = json.loads(out.read_text())
        (row,) = report["rows"]
        assert row["extra"]["encoder"] == f"{backbone} on 3x16x16 images"
        assert (row["eval_floor_fraction"] is not None) == floor
        assert report["settings"]["backbone"] == backbone


def test_the_synthetic_split_has_the_natural_shape_without_holding_600_images_a_class():
    from hypermaml.experiments import speed

    data = speed.synthetic_split(speed.BenchSettings(dataset="mini_imagenet", n_classes=3))
    assert data.image_shape == (3, 84, 84) and data.images.dtype == torch.uint8
    assert data.n_classes == 3 and data.n_per_class == speed.SYNTHETIC_PER_CLASS
    assert speed.SHAPES["mini_imagenet"] == (64, 600, 3, 84, 84)
    assert speed.SHAPES["cub"][:1] == (100,) and speed.SHAPES["fc100"][2:] == (3, 32, 32)


def test_bench_refuses_a_dataset_without_a_shape():
    from hypermaml.errors import ConfigError
    from hypermaml.experiments import speed

    with pytest.raises(ConfigError, match="no shape for dataset 'folder'"):
        speed.BenchSettings(dataset="folder")
