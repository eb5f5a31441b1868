"""Several processes (torchrun, gloo, on this CPU) take exactly the single-process steps: the
same tasks in every step, the meta-gradients summed over ranks, evaluations sharded and
gathered, one writer, and a run that moves between world sizes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hypermaml.config import ExperimentConfig
from hypermaml.data import EpisodeSampler, TaskShape
from hypermaml.data.episodes import task_seed
from hypermaml.engine.distributed import World, _buckets
from hypermaml.errors import ConfigError
from hypermaml.methods import build_method
from hypermaml.training.start import check_shareable, check_world
from tests.conftest import make_class_images

ROOT = Path(__file__).resolve().parents[2]


def torchrun(*args: str, nproc: int = 2, timeout: int = 240) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc-per-node N ARGS`` from the
    repository root, one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", *args]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_two_processes_take_the_single_process_steps_and_evaluate_exactly(tmp_path):
    """HyperMAML in MAML's warm-up (no hypernetwork gradient on any rank), half-way through the
    switch and after it, second-order MAML and ProtoNet: three Adam steps on meta-batches of 3
    tasks shared 1 + 2 give the single-process weights to 1e-6 (float64, so rounding does not
    hide a wrong weighting); a sharded evaluation gives the same per-task accuracies."""
    out = tmp_path / "report.json"
    torchrun("tests/training/distributed_worker.py", str(out))
    report = json.loads(out.read_text())
    assert report["world_size"] == 2 and report["shares"] == [1]
    for case in ("hypermaml_warmup", "hypermaml_switch", "hypermaml", "maml_second_order",
                 "protonet"):  # fmt: skip
        assert report[case]["moved"] > 1e-3, case  # the steps did move the weights
        assert report[case]["max_diff"] < 1e-6, (case, report[case])
    assert report["eval"]["sharded"] == report["eval"]["single"]
    # classify's loop on a network without BatchNorm: the batches shared 25 + 25 (the last 5 + 5)
    classify = report["classify"]
    assert classify["max_diff"] < 1e-6
    for key, value in classify["single_metrics"].items():
        assert classify["metrics"][key] == pytest.approx(value, rel=1e-6), key


def _config(**train) -> ExperimentConfig:
    raw = {
        "data": {"dataset": "omniglot", "n_way": 5, "n_shot": 1, "n_query": 3, "n_query_test": 3},
        "method": {"name": "hypermaml", "hn_depth": 2, "hn_width": 32, "warmup_epochs": 1,
                   "switch_epochs": 1},
        "train": {"epochs": 3, "episodes_per_epoch": 8, "meta_batch": 4, "val_tasks": 6,
                  "threads": 1, **train},
    }  # fmt: skip
    return ExperimentConfig.from_dict(raw)


def _write(cfg: ExperimentConfig, path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def _rows(run: Path) -> list[list[float]]:
    lines = (run / "metrics.csv").read_text().splitlines()[1:]
    return [[float(v) for v in line.split(",")[1:3]] for line in lines]


def test_a_killed_torchrun_run_resumes_on_one_process(data_root, tmp_path):
    """``torchrun -m hypermaml train`` on 2 processes, killed (SIGKILL to the whole launch) once
    rank 0 has written an epoch, continues on one process and ends where an uninterrupted
    single-process run ends; ``torchrun -m hypermaml eval`` then gives the single-process score
    and prints it once."""
    from hypermaml.api import evaluate_checkpoint
    from hypermaml.training import train

    cfg = _config(epochs=4, episodes_per_epoch=32)
    cfg.method.warmup_epochs = 10  # MAML's phase throughout: see the float32 note below
    config = _write(cfg, tmp_path / "run.yaml")
    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", "-m", "hypermaml", "train", str(config), "--out", str(two),
               "--quiet", "--data-dir", str(data_root)]  # fmt: skip
    launch = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not ((two / "metrics.csv").is_file() and _rows(two)):
            assert launch.poll() is None and time.monotonic() < deadline, "no epoch was written"
            time.sleep(0.05)
    finally:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.wait()
    assert 1 <= len(_rows(two)) < 4  # killed mid-run

    one = tmp_path / "one"
    train(cfg, one, data_root, progress=False, tensorboard=False)
    train(cfg, two, data_root, resume=True, progress=False, tensorboard=False)
    assert len(_rows(two)) == 4
    # float32: the two runs' gradients differ in rounding (the 2-process one is summed in
    # another order). Adam's first steps on a fresh hypernetwork are about lr * sign(gradient),
    # so a gradient element at rounding level flips between runs and the difference grows: the
    # run stays in MAML's warm-up, whose steps agree; exactness is the float64 test's above.
    for (loss, accuracy), (loss_1, accuracy_1) in zip(_rows(two), _rows(one)):
        assert loss == pytest.approx(loss_1, rel=2e-3)  # another seed: 2-8%
        assert accuracy == pytest.approx(accuracy_1, abs=0.5)  # a rounding may flip a query
    a, b = load_file(two / "last/model.safetensors"), load_file(one / "last/model.safetensors")
    # the trajectories part by rounding (1.6% of the last conv layer's norm after these 32
    # steps), far less than a restart or other tasks would part them
    for name in ("encoder.convs.3.weight", "encoder.norms.3.weight", "head.weight"):
        assert (a[name] - b[name]).norm() < 5e-2 * b[name].norm(), name

    report = tmp_path / "eval.json"
    done = torchrun("-m", "hypermaml", "eval", str(two / "last"), "--split", "val", "--tasks",
                    "12", "--data-dir", str(data_root), "--json", str(report))  # fmt: skip
    assert done.stdout.count("hypermaml on omniglot/val") == 1  # the other rank prints nothing
    single = evaluate_checkpoint(two / "last", "val", tasks=12, data_dir=data_root)
    assert json.loads(report.read_text())["accuracy"] == single.accuracy


def test_the_keyed_stream_gives_a_step_the_same_tasks_however_it_is_shared():
    data = make_class_images(n_classes=8, n_per_class=12, size=16)
    sampler = EpisodeSampler(data, TaskShape(3, 2, 4), seed=7)
    whole = sampler.sample_keyed(5, range(4))
    shares = [sampler.sample_keyed(5, World(r, 3).share(4)) for r in range(3)]
    assert [len(World(r, 3).share(4)) for r in range(3)] == [1, 1, 2]
    for field in ("support_x", "support_y", "query_x", "query_y"):
        joined = torch.cat([getattr(s, field) for s in shares])
        assert torch.equal(joined, getattr(whole, field)), field
    other_step = sampler.sample_keyed(6, range(4))
    assert not torch.equal(other_step.support_x, whole.support_x)
    assert len({task_seed(0, s, i) for s in range(50) for i in range(50)}) == 2500


def test_buckets_keep_order_and_split_at_the_size_limit(monkeypatch):
    import hypermaml.engine.distributed as distributed

    monkeypatch.setattr(distributed, "BUCKET_BYTES", 100)
    tensors = [
        torch.zeros(10),
        torch.zeros(10),
        torch.zeros(30),
        torch.zeros(2, dtype=torch.float64),
    ]
    groups = _buckets(tensors)
    assert [len(g) for g in groups] == [2, 1, 1]  # 80 bytes, then 120 alone, then another dtype
    assert [t for g in groups for t in g] == tensors


def test_configs_several_processes_cannot_share_are_refused():
    two = World(0, 2)
    with pytest.raises(ConfigError, match="task_stream=keyed"):
        check_world(_config(task_stream="sequential"), two)
    with pytest.raises(ConfigError, match="launch at most 4"):
        check_world(_config(), World(0, 8))
    check_world(_config(), two)  # keyed, 4 tasks for 2 ranks: fine
    raw = _config().to_dict()
    raw["model"]["bn"] = "eval"  # running statistics, which each rank would update alone
    method = build_method(ExperimentConfig.from_dict(raw), (1, 28, 28))
    with pytest.raises(ConfigError, match="running BatchNorm statistics"):
        check_shareable(method, two)


def test_a_one_process_command_under_torchrun_is_refused(monkeypatch, tmp_path, capsys):
    from hypermaml.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it, before any group is joined
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    assert "runs on one process; launch it without torchrun" in capsys.readouterr().err
    assert main(["bench", "adapt", "--untrained", "--maml", "x", "--hypermaml", "y"]) == 2
    assert "bench adapt runs on one process" in capsys.readouterr().err


def test_torchrun_classify_trains_on_two_processes_and_writes_once(data_root, tmp_path):
    """``torchrun -m hypermaml classify``: a hyper WRN on 1,000 Fashion-MNIST images, two
    epochs; the main process alone writes the run and prints, and the network learns."""
    out = tmp_path / "run"
    done = torchrun("-m", "hypermaml", "classify", "classify_fmnist_wrn_16_2_hyper2", "--out",
                    str(out), "--quiet", "--data-dir", str(data_root),
                    "--set", "data.train_subset=1000", "--set", "model.arch=wrn_10_1",
                    "--set", "data.augment=false", "--set", "optim.lr=0.05",
                    "--set", "optim.epochs=2", "--set", "optim.batch_size=50",
                    "--set", "optim.milestones=[]", "--set", "run.threads=1")  # fmt: skip
    assert done.stdout.count("test accuracy") == 1
    assert len((out / "metrics.csv").read_text().splitlines()) == 3  # a header and 2 epochs
    final = json.loads((out / "final" / "checkpoint.json").read_text())
    assert final["metrics"]["test_accuracy"] > 40  # 10 classes: chance is 10%
