"""hypermaml analyze curves: validation curves, later training stages after their start."""

from __future__ import annotations

import json

import pytest

from hypermaml.cli import main
from hypermaml.errors import CheckpointError
from hypermaml.experiments.curves import read_curve


def write_run(folder, rows, started_from=None):
    """A run folder with metrics.csv (epoch, val) rows and a last/checkpoint.json."""
    folder.mkdir(parents=True)
    lines = ["epoch,train_loss,val_accuracy"]
    lines += [f"{e},0.5,{'' if v is None else v}" for e, v in rows]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    meta = {"format": "hypermaml-checkpoint", "epoch": rows[-1][0]}
    if started_from is not None:
        meta["started_from"] = started_from
    (folder / "last").mkdir()
    (folder / "last" / "checkpoint.json").write_text(json.dumps(meta))


def test_a_stage_continues_the_epochs_of_every_stage_before_it(tmp_path):
    write_run(tmp_path / "one", [(0, None), (1, 50.0), (2, None), (3, 60.0)])
    stage2 = {"path": "one/best", "epoch": 3}
    write_run(tmp_path / "two", [(0, 70.0), (1, 72.5)], started_from=stage2)
    stage3 = {"path": "two/best", "epoch": 1, "started_from": stage2}
    write_run(tmp_path / "three", [(0, 80.0)], started_from=stage3)

    one = read_curve(tmp_path / "one")
    assert (one.epochs, one.accuracy, one.offset) == ([1, 3], [50.0, 60.0], 0)
    two = read_curve(tmp_path / "two", "second")
    assert (two.label, two.epochs, two.accuracy, two.offset) == ("second", [4, 5], [70.0, 72.5], 4)
    three = read_curve(tmp_path / "three")
    assert (three.epochs, three.offset) == ([6], 6)  # 4 epochs of stage 1 + 2 of stage 2


def test_cli_prints_each_best_and_draws_the_figure(tmp_path, capsys):
    write_run(tmp_path / "one", [(0, 40.0), (1, 55.0), (2, 52.0)])
    out = tmp_path / "fig" / "curves.png"
    assert main(["analyze", "curves", str(tmp_path / "one"), "--out", str(out),
                 "--labels", "first"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "first: best 55.00% at epoch 1, last 52.00% at epoch 2" in text
    assert out.is_file() and out.read_bytes()[:4] == b"\x89PNG"


def test_a_folder_without_metrics_is_refused_with_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no metrics.csv; pass a run folder"):
        read_curve(tmp_path / "empty")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no epoch and val_accuracy columns (it is empty)"),
        ("epoch,test_accuracy\n0,51.5\n", "its columns are epoch, test_accuracy"),
        ("epoch,val_accuracy\n0,50\nx,51\n", "line 3 is garbled"),
    ],
)
def test_an_empty_or_garbled_metrics_file_is_refused_naming_it(tmp_path, text, message):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text(text)
    with pytest.raises(CheckpointError) as info:
        read_curve(tmp_path / "run")
    assert str(tmp_path / "run" / "metrics.csv") in str(info.value)
    assert message in str(info.value) and "a run folder (the --out of hypermaml train)" in str(
        info.value
    )


def test_a_path_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist; pass a run folder"):
        read_curve(tmp_path / "nowhere")
