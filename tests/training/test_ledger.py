"""Every evaluation of a run's checkpoint is recorded in the run, and the ledger lists each run
with its budget, its validation figure, its test figure and how often its test split was scored."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from hypermaml.cli import main
from hypermaml.errors import CheckpointError
from hypermaml.runs import ledger

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"
TINY = ["--set", "train.epochs=2", "--set", "train.episodes_per_epoch=4", "--set",
        "train.meta_batch=2", "--set", "train.val_tasks=2", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_root) -> Path:
    folder = tmp_path_factory.mktemp("ledger") / "protonet_seed3"
    assert main(["train", str(CONFIGS / "omniglot_5w1s_protonet.yaml"), "--out", str(folder),
                 "--data-dir", str(data_root), "--set", "train.seed=3", *TINY]) == 0  # fmt: skip
    return folder


def _eval(checkpoint: Path, data_root: Path, *args: str) -> dict:
    out = checkpoint.parent.parent / f"score-{len(list(checkpoint.parent.parent.iterdir()))}.json"
    assert main(["eval", str(checkpoint), "--tasks", "3", "--data-dir", str(data_root),
                 "--json", str(out), *args]) == 0  # fmt: skip
    return json.loads(out.read_text())


def test_evaluations_are_recorded_and_counted_in_the_ledger(run, data_root, tmp_path):
    first = _eval(run / "best", data_root)
    _eval(run / "best", data_root, "--split", "val")
    second = _eval(run / "best", data_root, "--seed", "5")
    lines = ledger.read_evaluations(run)
    assert [(e["split"], e["seed"], e["checkpoint_name"]) for e in lines[-3:]] == [
        ("test", 0, "best"), ("val", 0, "best"), ("test", 5, "best")]  # fmt: skip
    assert lines[-3]["accuracy"] == first["accuracy"] and lines[-1]["time"].endswith("Z")

    row = ledger.ledger_row(run)
    meta = json.loads((run / "best" / "checkpoint.json").read_text())
    assert (row.run, row.method, row.dataset, row.n_way, row.n_shot, row.seed) == (
        "protonet_seed3", "protonet", "omniglot", 5, 1, 3)  # fmt: skip
    assert (row.epochs, row.episodes, row.started_from) == (2, 8, "")
    assert row.val_accuracy == round(meta["metrics"]["val_accuracy"], 2)
    assert row.test_evaluations == sum(e["split"] == "test" for e in lines)
    assert row.test_accuracy == round(second["accuracy"], 2) and row.test_tasks == 3


def test_the_row_keeps_the_test_figure_of_its_own_task_shape(run, data_root):
    own = _eval(run / "best", data_root)
    _eval(run / "best", data_root, "--n-way", "20")  # the same model on 20-way tasks
    row = ledger.ledger_row(run)
    assert (row.n_way, row.test_accuracy) == (5, round(own["accuracy"], 2))


def test_the_ledger_updates_a_listed_run_and_never_drops_one(run, data_root, tmp_path):
    other = tmp_path / "copy_of_run"
    shutil.copytree(run, other)
    file = tmp_path / "ledger.csv"
    assert main(["analyze", "ledger", str(run), "--out", str(file)]) == 0
    before = ledger.ledger_row(run).test_evaluations
    _eval(run / "best", data_root)
    assert main(["analyze", "ledger", str(run), str(other), "--out", str(file)]) == 0
    assert main(["analyze", "ledger", str(other), "--out", str(file)]) == 0
    with file.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["protonet_seed3", "copy_of_run"]
    assert int(rows[0]["test_evaluations"]) == before + 1


def test_a_shipped_checkpoint_outside_a_run_records_nothing():
    shipped = SHIPPED / "omniglot_5w1s_protonet"
    files = sorted(p.name for p in shipped.iterdir())
    assert ledger.run_folder_of(shipped) is None
    assert ledger.record_evaluation(shipped, {"split": "test", "accuracy": 1.0}) is None
    assert sorted(p.name for p in shipped.iterdir()) == files


def test_a_garbled_record_and_a_foreign_ledger_are_named(run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    with (broken / ledger.EVALUATIONS).open("a") as f:
        f.write("{not json\n")
    with pytest.raises(CheckpointError, match=r"evaluations.jsonl line \d+ is garbled"):
        ledger.read_evaluations(broken)
    foreign = tmp_path / "other.csv"
    foreign.write_text("name,score\nx,1\n")
    with pytest.raises(CheckpointError, match="not a ledger"):
        ledger.update_ledger(foreign, [ledger.ledger_row(run)])
