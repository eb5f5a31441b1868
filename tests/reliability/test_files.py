"""Checkpoints and run folders against corrupt, planted, foreign and concurrent files."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import hypermaml
from hypermaml.checkpoint import (
    FORMAT_VERSION,
    latest_complete,
    load_train_state,
    read_meta,
    write_checkpoint,
)
from hypermaml.checkpoint.state import decode, encode
from hypermaml.cli import main
from hypermaml.config import load_config
from hypermaml.errors import CheckpointError, HypermamlError
from hypermaml.methods import build_method, load_method, save_method
from hypermaml.migrate import upgrade
from hypermaml.outputs import MARKER, OutputError, claim_folder
from hypermaml.runs import RunFolder, run_checkpoint

REPO = Path(__file__).resolve().parents[2]


def protonet_checkpoint(path: Path, state: dict | None = None, epoch: int = 0) -> Path:
    """A small real few-shot checkpoint (ProtoNet on 28x28 grey images)."""
    cfg = load_config(None, ["method={name: protonet}"])
    torch.manual_seed(epoch)
    method = build_method(cfg, (1, 28, 28))
    save_method(path, method, cfg, (1, 28, 28), epoch, {"val_accuracy": 50.0}, state)
    return path


class Payload:
    """A pickle that, when unpickled, creates a file: what a crafted run folder would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


# --- nothing executes from a data or run file ---------------------------------------------


def test_a_planted_pickle_in_a_run_folder_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    last = protonet_checkpoint(tmp_path / "run" / "last", {"epoch": 0, "seconds": 1.0})
    with open(last / "train_state.pt", "wb") as fh:  # format 1's name for the state
        pickle.dump({"epoch": Payload(marker)}, fh, protocol=2)
    path, meta = read_meta(last)
    assert load_train_state(path, meta) == {"epoch": 0, "seconds": 1.0}
    assert not marker.exists()


def test_upgrade_refuses_a_pickled_state_with_a_payload(tmp_path):
    marker = tmp_path / "pwned"
    last = protonet_checkpoint(tmp_path / "last")
    meta = json.loads((last / "checkpoint.json").read_text())
    meta["format_version"] = 1
    del meta["sha256"]
    (last / "checkpoint.json").write_text(json.dumps(meta))
    with open(last / "train_state.pt", "wb") as fh:
        pickle.dump({"epoch": Payload(marker)}, fh, protocol=2)
    with pytest.raises(CheckpointError, match="cannot be read as plain data"):
        upgrade(last)
    assert not marker.exists()


def test_the_state_format_builds_plain_data_only():
    state = {"optimizer": {"state": {0: {"step": torch.tensor(3.0)}}}, "rng": (3, (1, 2), None)}
    tensors, tree = encode(state)
    assert json.loads(json.dumps(tree)) == tree
    back = decode(tensors, tree)
    assert back["rng"] == (3, (1, 2), None) and torch.equal(back["optimizer"]["state"][0]["step"],
                                                            torch.tensor(3.0))  # fmt: skip
    with pytest.raises(TypeError, match="cannot store a Payload"):
        encode({"x": Payload(Path("unused"))})
    with pytest.raises(ValueError, match="do not fit"):
        decode({}, {"$tensor": "7"})


# --- verified on load ------------------------------------------------------------------------


def test_flipped_bits_in_the_weights_are_refused(tmp_path):
    ckpt = protonet_checkpoint(tmp_path / "ckpt")
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-3] ^= 0x10  # one bit of a weight: the file stays readable
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_method(ckpt)


def test_a_truncated_training_state_is_refused(tmp_path):
    last = protonet_checkpoint(tmp_path / "last", {"epoch": 0, "x": torch.ones(100)})
    file = last / "train_state.safetensors"
    file.write_bytes(file.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_train_state(*read_meta(last))


def test_a_stored_config_lacking_a_section_is_refused(tmp_path):
    ckpt = protonet_checkpoint(tmp_path / "ckpt")
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    del meta["config"]["data"]
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="missing data"):
        load_method(ckpt)


def test_an_old_format_is_refused_until_upgraded(tmp_path, capsys):
    ckpt = protonet_checkpoint(tmp_path / "ckpt")
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["format_version"] = 1
    del meta["sha256"], meta["config"]["train"]["deterministic"]
    del meta["config"]["data"]["train_zoom"]
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="hypermaml upgrade"):
        load_method(ckpt)
    assert main(["upgrade", str(ckpt)]) == 0
    line = capsys.readouterr().out.strip()
    assert "train.deterministic=False" in line and "data.train_zoom=1.0" in line
    loaded = load_method(ckpt)
    assert loaded.config.train.deterministic is False
    assert loaded.meta["format_version"] == FORMAT_VERSION


def test_a_format_4_checkpoint_is_upgraded_with_the_ways_it_trained_on(tmp_path, capsys):
    ckpt = protonet_checkpoint(tmp_path / "ckpt")
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["format_version"] = 4
    del meta["config"]["data"]["train_n_way"]
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="hypermaml upgrade"):
        load_method(ckpt)
    assert main(["upgrade", str(ckpt)]) == 0
    line = capsys.readouterr().out
    assert f"format 4 -> {FORMAT_VERSION}" in line and "data.train_n_way=None" in line
    assert load_method(ckpt).config.data.train_n_way is None


def test_a_format_5_checkpoint_is_upgraded_with_the_stream_and_precision_it_trained_with(
    tmp_path, capsys
):
    """Format 5 drew training tasks from one generator, in float32: a resume after the upgrade
    continues that stream (``train.task_stream: sequential``), never the keyed default."""
    ckpt = protonet_checkpoint(tmp_path / "ckpt")
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["format_version"] = 5
    del meta["config"]["train"]["task_stream"], meta["config"]["train"]["precision"]
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    assert main(["upgrade", str(ckpt)]) == 0
    line = capsys.readouterr().out
    assert "train.task_stream='sequential'" in line and "train.precision='fp32'" in line
    train = load_method(ckpt).config.train
    assert (train.task_stream, train.precision) == ("sequential", "fp32")


def test_upgrade_never_fills_a_field_format_1_always_had(tmp_path):
    ckpt = protonet_checkpoint(tmp_path / "ckpt")
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    meta["format_version"] = 1
    del meta["config"]["data"]["dataset"]
    (ckpt / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="lacks data.dataset"):
        upgrade(ckpt)


def test_every_shipped_checkpoint_is_of_the_current_format():
    for meta_file in sorted((REPO / "checkpoints").glob("*/checkpoint.json")):
        path, meta = read_meta(meta_file.parent)
        assert set(meta["sha256"]) == {"model.safetensors"}, path


# --- interrupted writes ----------------------------------------------------------------------


def test_a_complete_copy_is_found_whatever_its_name(tmp_path):
    run = tmp_path / "run"
    protonet_checkpoint(run / "last", {"epoch": 3}, epoch=3)
    (run / "last").rename(run / "last.old-1-aaaaaa")  # killed between the renames
    protonet_checkpoint(run / "tmp", {"epoch": 4}, epoch=4)
    (run / "tmp").rename(run / "last.tmp-1-bbbbbb")
    assert run_checkpoint(run) == run / "last.tmp-1-bbbbbb"
    (run / "last.tmp-1-bbbbbb" / "checkpoint.json").unlink()  # cut short: not complete
    assert run_checkpoint(run) == run / "last.old-1-aaaaaa"


def test_a_run_whose_checkpoints_are_all_corrupt_is_never_restarted(tmp_path):
    run = tmp_path / "run"
    protonet_checkpoint(run / "last", {"epoch": 3})
    (run / "last" / "train_state.json").write_text("{}")
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        run_checkpoint(run)
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        with RunFolder.open(run, "train", None):
            pass


def test_a_write_replaces_only_once_complete_and_tidies_its_copies(tmp_path):
    path = tmp_path / "run" / "last"
    protonet_checkpoint(path, {"epoch": 0})
    (tmp_path / "run" / "last.tmp-9-cccccc").mkdir()  # left by a killed writer
    write_checkpoint(path, {"w": torch.ones(2)}, {"method": "protonet", "image_shape": [1, 28, 28],
                     "config": {}, "epoch": 1})  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["last"]
    assert latest_complete(tmp_path / "run", "last") == path


# --- folders hypermaml did not create --------------------------------------------------------


def test_a_foreign_folder_is_refused_and_force_never_overwrites(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not created by hypermaml.*--force"):
        claim_folder(out, "train", writes=("best", "metrics.csv"))
    (out / "best").mkdir()
    with pytest.raises(OutputError, match="already holds best"):
        claim_folder(out, "train", force=True, writes=("best", "metrics.csv"))
    (out / "best").rmdir()
    claim_folder(out, "train", force=True, writes=("best", "metrics.csv"))
    assert (out / "notes.txt").read_text() == "keep me" and (out / MARKER).is_file()


def test_an_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        claim_folder(tmp_path / "file", "train")


def test_export_never_replaces_a_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    claim_folder(run, "classify")
    (run / "metrics.csv").write_text("epoch\n")
    ckpt = REPO / "checkpoints" / "pretrain_omniglot_conv4_hyper1"
    assert main(["export", str(ckpt), "--out", str(run)]) == 2
    assert "never replaces" in capsys.readouterr().err
    assert (run / "metrics.csv").is_file()


def test_export_replaces_an_earlier_export_only_with_force(tmp_path, capsys, data_root):
    ckpt = REPO / "checkpoints" / "pretrain_omniglot_conv4_hyper1"
    out = tmp_path / "plain"
    assert main(["export", str(ckpt), "--out", str(out), "--data-dir", str(data_root)]) == 0
    assert main(["export", str(ckpt), "--out", str(out), "--data-dir", str(data_root)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["export", str(ckpt), "--out", str(out), "--force",
                 "--data-dir", str(data_root)]) == 0  # fmt: skip
    assert hypermaml.load(out).kind == "classifier"


# --- one writer at a time --------------------------------------------------------------------

HOLD = """
import sys, time
from hypermaml.outputs import claim_folder, locked
path = claim_folder(sys.argv[1], "train")
with locked(path, "train"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=f"another process .*pid {holder.pid}"):
            with RunFolder.open(run, "train", None):
                pass
    finally:
        holder.kill()
        holder.wait()
    with RunFolder.open(run, "train", None) as folder:  # the OS released the killed one's lock
        assert folder.checkpoint is None


def test_resume_without_a_run_is_an_error_and_a_new_run_refuses_an_old_one(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(HypermamlError, match="holds no run to resume"):
        with RunFolder.open(run, "train", True):
            pass
    protonet_checkpoint(run / "last", {"epoch": 0})
    with pytest.raises(HypermamlError, match="already holds a run"):
        with RunFolder.open(run, "train", False):
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_an_unwritable_out_is_one_line(tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        assert main(["train", "omniglot_5w1s_protonet", "--out", str(parent / "run")]) == 2
    finally:
        parent.chmod(0o700)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(parent / "run") in err


def test_an_out_below_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", "omniglot_5w1s_protonet", "--out", str(tmp_path / "file" / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "file" in err


def test_a_format_1_run_is_upgraded_then_resumes_with_its_state(tmp_path):
    run = tmp_path / "run"
    optimizer = {"state": {0: {"step": torch.tensor(9.0)}}, "param_groups": []}
    state = {"epoch": 4, "numpy_rng": np.random.get_state(), "torch_rng": torch.get_rng_state(),
             "optimizer": optimizer}  # fmt: skip
    last = protonet_checkpoint(run / "last", epoch=4)
    torch.save(state, last / "train_state.pt")  # how format 1 stored it
    meta = json.loads((last / "checkpoint.json").read_text())
    meta["format_version"] = 1
    del meta["sha256"], meta["config"]["train"]["deterministic"]
    (last / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="hypermaml upgrade"):
        run_checkpoint(run)
    (line,) = upgrade(run)
    assert "training state converted" in line and not (last / "train_state.pt").exists()
    assert run_checkpoint(run) == last
    back = load_train_state(*read_meta(last))
    assert back["epoch"] == 4 and torch.equal(back["torch_rng"], state["torch_rng"])
    assert np.array_equal(back["numpy_rng"][1], state["numpy_rng"][1])
    assert back["optimizer"]["state"][0]["step"].item() == 9.0
