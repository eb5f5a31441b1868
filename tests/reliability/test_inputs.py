"""Bad input at the command line: each case ends, before any work, in one line that names the
file or flag and the fix, with exit status 2; an unexpected exception is reported as a bug."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hypermaml
from hypermaml.cli import main, run
from hypermaml.config import ConfigError
from hypermaml.engine.device import pick_device
from hypermaml.errors import HypermamlError

ROOT = Path(__file__).resolve().parents[2]
FEW_SHOT = str(ROOT / "checkpoints" / "omniglot_5w1s_hypermaml")
MAML = str(ROOT / "checkpoints" / "omniglot_5w1s_maml")
CLASSIFIER = str(ROOT / "checkpoints" / "pretrain_omniglot_conv4_plain")
TRAIN = ["train", "omniglot_5w1s_protonet", "--out", "{tmp}/run", "--quiet", "--set"]
CLASSIFY = ["classify", "classify_cifar10_wrn_10_4_plain", "--out", "{tmp}/run", "--set"]
HYPER = ["train", "omniglot_5w1s_hypermaml", "--out", "{tmp}/run", "--set"]


@pytest.fixture
def cli(tmp_path, capsys):
    """``cli(argv)``: run ``hypermaml ARGV`` in-process (``{tmp}`` in an argument stands for
    ``tmp_path``) -> (exit status, the lines written to stderr)."""

    def call(argv: list[str]) -> tuple[int, list[str]]:
        try:
            code = main([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
        except SystemExit as exc:  # argparse refuses a flag's value itself
            code = exc.code
        return code, capsys.readouterr().err.strip().splitlines()

    return call


COUNTS = [
    ([*TRAIN, "train.val_every=0"], "train.val_every=0 is out of range: it must be >= 1"),
    ([*TRAIN, "train.meta_batch=0"], "train.meta_batch=0 is out of range: it must be >= 1"),
    ([*TRAIN, "train.meta_batch=-1"], "train.meta_batch=-1 is out of range: it must be >= 1"),
    ([*TRAIN, "train.epochs=0"], "train.epochs=0 is out of range: it must be >= 1"),
    ([*TRAIN, "train.epochs=-3"], "train.epochs=-3 is out of range: it must be >= 1"),
    ([*TRAIN, "train.episodes_per_epoch=0"], "train.episodes_per_epoch=0"),
    ([*TRAIN, "train.val_tasks=0"], "train.val_tasks=0"),
    ([*TRAIN, "train.episodes_per_epoch=3"], "train.episodes_per_epoch=3 is fewer than one meta"),
    ([*TRAIN, "train.threads=0"], "train.threads=0 is out of range: it must be >= 1 (or null"),
    ([*TRAIN, "train.lr=0"], "train.lr=0.0 is out of range: it must be > 0"),
    ([*TRAIN, "train.gamma=-0.5"], "train.gamma=-0.5 is out of range: it must be > 0"),
    ([*TRAIN, "train.milestones=[5, 0]"], "train.milestones[1]=0 is out of range"),
    ([*TRAIN, "data.n_way=0"], "data.n_way=0 is out of range: it must be >= 1"),
    ([*TRAIN, "data.n_shot=-1"], "data.n_shot=-1"),
    ([*TRAIN, "data.n_query_test=0"], "data.n_query_test=0"),
    ([*TRAIN, "data.train_zoom=0.5"], "data.train_zoom=0.5 is out of range: it must be >= 1"),
    ([*HYPER, "method.hn_depth=0"], "method.hn_depth=0 is out of range: it must be >= 1"),
    ([*HYPER, "method.warmup_epochs=-1"], "method.warmup_epochs=-1 is out of range: it must be"),
    ([*HYPER, "method.warmup_inner_lr=0"], "method.warmup_inner_lr=0.0"),
    ([*TRAIN, "method.name=maml", "--set", "method.inner_steps=0"], "method.inner_steps=0"),
    ([*TRAIN, "method.name=maml", "--set", "method.inner_steps_test=-1"],
     "method.inner_steps_test=-1 is out of range: it must be >= 0"),
    ([*CLASSIFY, "optim.epochs=0"], "optim.epochs=0 is out of range: it must be >= 1"),
    ([*CLASSIFY, "optim.batch_size=0"], "optim.batch_size=0"),
    ([*CLASSIFY, "optim.lr=-0.1"], "optim.lr=-0.1 is out of range: it must be > 0"),
    ([*CLASSIFY, "run.eval_every=0"], "run.eval_every=0"),
    ([*CLASSIFY, "run.threads=-2"], "run.threads=-2"),
    ([*CLASSIFY, "data.train_subset=0"], "data.train_subset=0"),
]  # fmt: skip

DEVICES = [
    (["train", "omniglot_5w1s_protonet", "--out", "{tmp}/run", "--device", "tpu"],
     "train.device='tpu': not a device hypermaml runs on; use auto, cpu, cuda, cuda:N or mps"),
    ([*TRAIN, "train.device=cpu:0"], "train.device='cpu:0': not a device"),
    ([*CLASSIFY, "run.device=xla"], "run.device='xla': not a device"),
    (["eval", FEW_SHOT, "--device", "tpu"], "device 'tpu': not a device hypermaml runs on"),
    (["eval", FEW_SHOT, "--device", "cuda:99"], "device 'cuda:99'"),
    (["analyze", "updates", FEW_SHOT, "--device", "meta"], "device 'meta': not a device"),
]  # fmt: skip

EVAL_FLAGS = [
    (["eval", CLASSIFIER, "--n-way", "3"], "--n-way apply to few-shot checkpoints only"),
    (["eval", CLASSIFIER, "--n-way", "0"], "argument --n-way: 0 is out of range"),
    (["eval", CLASSIFIER, "--n-shot", "5", "--n-query", "5"], "--n-shot, --n-query apply to"),
    (["eval", CLASSIFIER, "--dataset", "omniglot"], "--dataset apply to few-shot"),
    (["eval", CLASSIFIER, "--split", "test"], "--split apply to few-shot"),
    (["eval", CLASSIFIER, "--tasks", "5"], "--tasks apply to few-shot"),
    (["eval", CLASSIFIER, "--seed", "0"], "--seed apply to few-shot"),
    (["eval", FEW_SHOT, "--n-way", "0"], "argument --n-way: 0 is out of range; give 1 or more"),
    (["eval", FEW_SHOT, "--n-shot", "-1"], "argument --n-shot: -1 is out of range; give 1 or"),
    (["eval", FEW_SHOT, "--n-query", "0"], "argument --n-query: 0 is out of range; give 1 or"),
    (["eval", FEW_SHOT, "--tasks", "0"], "argument --tasks: 0 is out of range; give 1 or more"),
    (["analyze", "updates", FEW_SHOT, "--tasks", "-4"], "argument --tasks: -4 is out of range"),
    (["analyze", "updates", MAML, "--maml-steps", "-1"], "argument --maml-steps: -1 is out of"),
    (["bench", "adapt", "--hypermaml", FEW_SHOT, "--repeats", "0"], "argument --repeats: 0"),
    (["bench", "adapt", "--maml", MAML, "--steps", "1,-2"], "argument --steps"),
    (["bench", "--eval-tasks", "0"], "argument --eval-tasks: 0 is out of range"),
    (["bench", "--phases", "trian"], "argument --phases: 'trian': give train, eval"),
]  # fmt: skip

OUTPUTS = [
    (["eval", FEW_SHOT, "--json", "{tmp}"], "--json {tmp} is a folder; name a file"),
    (["analyze", "updates", FEW_SHOT, "--json", "{tmp}"], "--json {tmp} is a folder"),
    (["bench", "adapt", "--hypermaml", FEW_SHOT, "--json", "{tmp}"], "--json {tmp} is a folder"),
    (["bench", "adapt", "--hypermaml", FEW_SHOT, "--plot", "{tmp}"], "--plot {tmp} is a folder"),
    (["eval", FEW_SHOT, "--json", "{tmp}/file.txt/r.json"], "{tmp}/file.txt is a file, not a"),
    (["analyze", "curves", "{tmp}/run", "--out", "{tmp}"], "--out {tmp} is a folder"),
]  # fmt: skip

CURVES = [
    (["analyze", "curves", "{tmp}/nowhere", "--out", "{tmp}/c.png"],
     "{tmp}/nowhere does not exist; pass a run folder: a run folder (the --out of hypermaml"),
    (["analyze", "curves", "{tmp}/file.txt", "--out", "{tmp}/c.png"], "{tmp}/file.txt is a file"),
    (["analyze", "curves", "{tmp}/empty", "--out", "{tmp}/c.png"],
     "{tmp}/empty holds no metrics.csv; pass a run folder"),
    (["analyze", "curves", "{tmp}/blank", "--out", "{tmp}/c.png"],
     "blank/metrics.csv has no epoch and val_accuracy columns (it is empty)"),
    (["analyze", "curves", "{tmp}/classifier", "--out", "{tmp}/c.png"],
     "its columns are epoch, test_accuracy"),
    (["analyze", "curves", "{tmp}/garbled", "--out", "{tmp}/c.png"],
     "garbled/metrics.csv line 3 is garbled"),
]  # fmt: skip


@pytest.fixture
def folders(tmp_path):
    """Things that are not run folders: a file, an empty folder, metrics.csv files that are
    empty, of a classifier run, or garbled."""
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    for name, text in [("blank", ""), ("classifier", "epoch,test_accuracy\n0,50\n"),
                       ("garbled", "epoch,val_accuracy\n0,50.0\n1,fifty\n")]:  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.csv").write_text(text)
    return tmp_path


@pytest.mark.parametrize(("argv", "fragment"), COUNTS + DEVICES + EVAL_FLAGS + OUTPUTS + CURVES)
def test_bad_input_is_one_line_naming_the_problem(argv, fragment, cli, folders):
    code, err = cli(argv)
    command = " ".join(argv[:2]) if argv[0] == "analyze" else argv[0]
    assert code == 2, err
    assert err[-1].startswith(f"hypermaml {command}: error: "), err
    assert fragment.replace("{tmp}", str(folders)) in err[-1]
    assert not (folders / "run").exists()  # refused before the work started
    if "argument" not in fragment:  # argparse prints its usage first; our errors are one line
        assert len(err) == 1, err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into any folder")  # fmt: skip
@pytest.mark.parametrize(
    "argv",
    [["eval", FEW_SHOT, "--json", "{tmp}/locked/r.json"],
     ["eval", FEW_SHOT, "--json", "{tmp}/locked/new/r.json"],
     ["analyze", "curves", "{tmp}/run", "--out", "{tmp}/locked/c.png"]],
)  # fmt: skip
def test_an_unwritable_folder_is_refused_before_the_work(argv, cli, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err = cli(argv)
    finally:
        locked.chmod(0o700)
    assert code == 2 and len(err) == 1
    assert f"cannot write into {locked}; choose another path" in err[0]


def test_a_config_stored_for_cuda_still_loads_on_any_machine():
    """The config checks a device name's spelling; whether the machine has it is asked only when
    the device is picked."""
    from hypermaml.config import load_config

    assert load_config(None, ["train.device=cuda:1"]).train.device == "cuda:1"


@pytest.mark.parametrize("name", ["tpu", "cpu:0", "CUDA", "cuda:x", "", "meta", "xla", "mps:0"])
def test_pick_device_refuses_what_is_no_device(name):
    with pytest.raises(ConfigError, match="not a device hypermaml runs on; use auto, cpu"):
        pick_device(name)


def test_pick_device_takes_the_cpu_and_auto():
    assert pick_device("cpu").type == "cpu"
    assert pick_device(None).type == pick_device("auto").type


def test_an_unexpected_exception_is_reported_as_a_bug(monkeypatch, cli):
    def broken(args):
        raise RuntimeError("something inside went wrong")

    monkeypatch.setattr(run, "cmd_configs", broken)
    code, err = cli(["configs"])
    assert code == 1
    assert err[0].startswith("Traceback") and "RuntimeError" in "\n".join(err)
    assert err[-1] == (
        "hypermaml configs: internal error: RuntimeError: something inside went wrong; this is "
        "a bug in hypermaml; please report it with the traceback above"
    )


def test_a_failed_file_operation_names_the_path_and_the_fix(monkeypatch, cli):
    def denied(args):
        raise PermissionError(13, "Permission denied", "/data/omniglot/images.zip")

    monkeypatch.setattr(run, "cmd_configs", denied)
    code, err = cli(["configs"])
    assert code == 2
    assert err == [
        "hypermaml configs: error: cannot read or write /data/omniglot/images.zip: Permission "
        "denied; choose a path you may write, or change the permissions"
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["train", "omniglot_5w1s_protonet", "--out", "runs/a"],
      "hypermaml train: interrupted; `hypermaml train --resume --out runs/a` continues"),
     (["eval", FEW_SHOT], "hypermaml eval: interrupted; run the command again")],
)  # fmt: skip
def test_an_interrupt_says_how_to_go_on(argv, expected, monkeypatch, cli):
    def stop(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "cmd_train", stop)
    monkeypatch.setattr(run, "cmd_eval", stop)
    code, err = cli(argv)
    assert code == 130
    assert len(err) == 1 and err[0].startswith(expected)
    assert ("--resume" in err[0]) == (argv[0] == "train")


@pytest.mark.parametrize(("path", "flag"), [(FEW_SHOT, "n_way"), (CLASSIFIER, "n_way"),
                                            (FEW_SHOT, "n_query")])  # fmt: skip
def test_the_library_refuses_zero_counts_too(path, flag):
    with pytest.raises(HypermamlError, match="n-way|n-query"):
        hypermaml.evaluate_checkpoint(path, **{flag: 0})
