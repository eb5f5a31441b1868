"""``train`` and ``eval`` end to end on every natural-image dataset, each on a generated fixture in
its real on-disk layout (tiny images, a few tasks: this checks the path, not the accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hypermaml.data.cifar_fewshot as cifar_fewshot
import hypermaml.data.mini_imagenet as mini_imagenet
from hypermaml.cli import main
from tests.data.image_fixtures import make_cub, make_packed_mini, mini_subset
from tests.data.test_folder import make_mixed
from tests.data.test_natural import _fake_cifar100

TINY = ["--set", "train.epochs=1", "--set", "train.episodes_per_epoch=2", "--set",
        "train.meta_batch=1", "--set", "train.val_tasks=2", "--set", "data.n_query=1", "--set",
        "data.n_query_test=1", "--set", "train.device=cpu", "--set", "train.threads=1"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A data folder with a CUB tree, a packed mini-ImageNet folder and a folder of photos."""
    root = tmp_path_factory.mktemp("data")
    make_cub(root)
    make_packed_mini(root, mini_subset(2))
    make_mixed(root / "photos")
    return root


@pytest.fixture(autouse=True)
def _fixture_places(monkeypatch, tmp_path):
    monkeypatch.setenv("HYPERMAML_CACHE", str(tmp_path / "cache"))
    subset = mini_subset(2)
    monkeypatch.setattr(mini_imagenet, "mini_imagenet_files", lambda split: subset[split])


RUNS = {
    "cub, HyperMAML with the photo augmentation": ["cub_1s_hypermaml", "--set",
                                                   "method.warmup_epochs=0", "--set",
                                                   "method.switch_epochs=0"],
    "mini-ImageNet, MAML": ["mini_imagenet_1s_maml", "--set", "method.inner_steps=1"],
    "mini-ImageNet -> CUB, ProtoNet": ["mini_to_cub_1s_protonet"],
    "a folder of photos, ProtoNet at 32 px": [
        "cub_1s_protonet", "--set", "data.dataset=folder", "--set", "data.folder.root=photos",
        "--set", "data.folder.size=32", "--set", "data.n_way=2", "--set",
        "data.folder.fractions=[0.34, 0.33, 0.33]",
    ],
}  # fmt: skip


CIFAR_RUNS = {
    "FC100, HyperMAML": ["cub_1s_hypermaml", "--set", "data.dataset=fc100", "--set",
                         "method.warmup_epochs=0", "--set", "method.switch_epochs=0"],
    "CIFAR-FS, MAML": ["mini_imagenet_1s_maml", "--set", "data.dataset=cifar_fs", "--set",
                       "method.inner_steps=1"],
    "FC100 -> mini-ImageNet, MAML over Hyper-WRN-16-4 (1)": [
        "fc100_to_mini_1s_maml_wrn_16_4_hyper1", "--set", "method.inner_steps=1"],
}  # fmt: skip


@pytest.mark.parametrize("args", list(CIFAR_RUNS.values()), ids=list(CIFAR_RUNS))
def test_train_and_eval_run_end_to_end_on_cifar100_splits(args, data, tmp_path, capsys,
                                                          monkeypatch):  # fmt: skip
    """CIFAR-100's images are a generated stand-in (6 a class) read through the few-shot
    splits; FC100 -> mini-ImageNet validates and tests on the packed mini-ImageNet fixture."""
    images, labels, names = _fake_cifar100(6)
    monkeypatch.setattr(cifar_fewshot, "load_cifar", lambda *_: (images, labels, names))
    monkeypatch.setattr(cifar_fewshot, "IMAGES_PER_CLASS", 6)
    _train_and_eval(args, data, tmp_path, capsys)


@pytest.mark.parametrize("args", list(RUNS.values()), ids=list(RUNS))
def test_train_and_eval_run_end_to_end(args, data, tmp_path, capsys):
    _train_and_eval(args, data, tmp_path, capsys)


def _train_and_eval(args: list[str], data: Path, tmp_path: Path, capsys) -> None:
    """``train`` a few episodes with ``args``, then ``eval`` the best checkpoint on 3 tasks."""
    out = tmp_path / "run"
    code = main(["train", *args, *TINY, "--out", str(out), "--quiet", "--data-dir", str(data)])
    assert code == 0, capsys.readouterr().err
    report = tmp_path / "test.json"
    code = main(["eval", str(out / "best"), "--tasks", "3", "--data-dir", str(data),
                 "--json", str(report)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    score = json.loads(report.read_text())
    assert 0 <= score["accuracy"] <= 100 and score["n_tasks"] == 3
