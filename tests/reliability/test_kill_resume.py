"""Kill a tiny run at several points (between the renames of a checkpoint write included), resume
it, and compare its weights bit for bit with the run that was never interrupted.

Each run is a fresh process, as after a real kill: the kernel choice, the caches and the random
generators all start again, so only what the run folder holds carries over.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

TINY = [
    "--set", "train.epochs=3", "--set", "train.episodes_per_epoch=4", "--set", "train.meta_batch=2",
    "--set", "train.val_tasks=2", "--set", "train.device=cpu", "--set", "train.threads=1",
    "--set", "method.hn_width=32", "--set", "method.warmup_epochs=1",
    "--set", "method.switch_epochs=2",
]  # fmt: skip

KILLER = """
import os, signal, sys
from pathlib import Path
import hypermaml.checkpoint.format as fmt
from hypermaml.cli import main

target, n, when = sys.argv[1], int(sys.argv[2]), sys.argv[3]
count = 0

def kill_at(original):
    def wrapped(*args, **kwargs):
        global count
        count += 1
        if count == n and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        out = original(*args, **kwargs)
        if count == n and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return wrapped

if target == "rename":
    Path.rename = kill_at(Path.rename)
else:
    fmt.write_bytes_durable = kill_at(fmt.write_bytes_durable)
sys.exit(main(sys.argv[4:]))
"""


def run(args: list[str], data_root: Path, kill: tuple[str, int, str] | None = None) -> int:
    env = {**os.environ, "HYPERMAML_DATA": str(data_root), "OMP_NUM_THREADS": "1"}
    if kill is None:
        cmd = [sys.executable, "-m", "hypermaml", *args]
    else:
        cmd = [sys.executable, "-c", KILLER, *map(str, kill), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if kill is None:
        assert done.returncode == 0, done.stderr[-2000:]
    return done.returncode


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(folder / "model.safetensors"))


def metrics(run: Path) -> list[dict[str, str]]:
    """The rows of ``run/metrics.csv`` but their wall time."""
    with open(run / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


def assert_identical(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{a} and {b} differ in {key}"


CLASSIFY_TINY = [
    "--set", "data.train_subset=200", "--set", "model.arch=wrn_10_1", "--set", "model.hyper=layer",
    "--set", "model.frozen_seed=null", "--set", "optim.epochs=3", "--set", "optim.batch_size=50",
    "--set", "optim.milestones=[]", "--set", "run.threads=1", "--set", "run.eval_every=100",
    "--set", "run.device=cpu",
]  # fmt: skip
RUNS = {
    "train": (["train", "omniglot_5w1s_hypermaml", *TINY], ("last", "best")),
    "classify": (["classify", "classify_fmnist_wrn_16_2_compressed", *CLASSIFY_TINY],
                 ("last", "final")),
}  # fmt: skip
"""command -> (its arguments but --out, the checkpoints it leaves)."""


@pytest.fixture(scope="module")
def straight(data_root, tmp_path_factory) -> dict[str, Path]:
    """The uninterrupted run of each command."""
    runs = {}
    for command, (args, _) in RUNS.items():
        runs[command] = tmp_path_factory.mktemp(command) / "run"
        run([*args, "--out", str(runs[command]), "--quiet"], data_root)
    return runs


KILLS = {
    "train, writing the first checkpoint's files": ("train", [("write", 1, "after")]),
    "train, between the renames of a checkpoint": ("train", [("rename", 3, "after")]),
    "train, before a checkpoint's first rename": ("train", [("rename", 5, "before")]),
    "train, twice, each between renames": ("train", [("rename", 3, "after"),
                                                     ("rename", 2, "after")]),
    "classify, between the renames of a checkpoint": ("classify", [("rename", 3, "after")]),
}  # fmt: skip


@pytest.mark.parametrize(("command", "kills"), list(KILLS.values()), ids=list(KILLS))
def test_killed_and_resumed_run_is_bit_identical(command, kills, straight, data_root, tmp_path):
    args, checkpoints = RUNS[command]
    out = tmp_path / "run"
    start = [*args, "--out", str(out), "--quiet", "--resume-if-exists"]
    for kill in kills:
        assert run(start, data_root, kill) == -9, "the run was to be killed"
    run(start, data_root)  # as the Makefile does: start, or resume whatever is there
    for name in checkpoints:
        assert_identical(straight[command] / name, out / name)
    assert json.loads((out / "last/checkpoint.json").read_text())["epoch"] == 2
    assert metrics(out) == metrics(straight[command])
    assert [row["epoch"] for row in metrics(out)] == ["0", "1", "2"]
    left = sorted(p.name for p in out.iterdir() if ".tmp" in p.name or ".old" in p.name)
    assert left == [], "a finished write leaves no copies behind"
