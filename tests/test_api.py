"""The library's verbs (``hypermaml.load``, ``evaluate_checkpoint``, ``train``): what the
commands do, in one call, for both kinds of checkpoint and config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch

import hypermaml
from hypermaml.cli import main
from hypermaml.config import SHIPPED_CONFIGS, read_raw

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"
TINY = ["train.epochs=1", "train.episodes_per_epoch=4", "train.meta_batch=2", "train.val_tasks=2"]


def test_load_rebuilds_either_kind_of_checkpoint():
    few_shot = hypermaml.load(SHIPPED / "cross_char_1s_hypermaml")
    assert few_shot.kind == "few_shot" and isinstance(few_shot.method, hypermaml.HyperMAML)
    assert few_shot.model is few_shot.method and not few_shot.method.training
    assert few_shot.config.data.dataset == "cross_char"
    classifier = hypermaml.load(SHIPPED / "pretrain_cross_char_conv4_hyper1")
    assert classifier.kind == "classifier" and classifier.model is classifier.network
    assert classifier.config.model.hyper == "stage"
    logits = classifier.network(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, classifier.meta["num_classes"])


@pytest.mark.parametrize(
    ("name", "old_prefix"),
    [("omniglot_5w1s_maml", "net.head."), ("omniglot_5w1s_hypermaml", "classifier.")],
)
def test_weights_written_under_the_old_names_load_under_the_new_ones(name, old_prefix):
    """Shipped files name MAML's parts ``net.encoder`` / ``net.head`` and HyperMAML's head
    ``classifier``; every method now says ``encoder`` and ``head``."""
    stored = safetensors.torch.load_file(str(SHIPPED / name / "model.safetensors"))
    assert any(key.startswith(old_prefix) for key in stored)
    method = hypermaml.load(SHIPPED / name).method
    assert torch.equal(method.head.weight, stored[old_prefix + "weight"])
    assert not any(key.startswith(("net.", "classifier.")) for key in method.state_dict())


def test_two_lines_score_a_checkpoint_as_the_command_does(data_root, tmp_path):
    score = hypermaml.evaluate_checkpoint(SHIPPED / "omniglot_5w1s_protonet", tasks=12,
                                          data_dir=data_root)  # fmt: skip
    assert isinstance(score, hypermaml.FewShotScore) and score.n_tasks == 12
    assert f"{score.accuracy:.2f} ± {score.ci95:.2f}%" in score.describe()
    out = tmp_path / "eval.json"
    args = ["eval", str(SHIPPED / "omniglot_5w1s_protonet"), "--tasks", "12", "--json", str(out)]
    assert main([*args, "--data-dir", str(data_root)]) == 0
    assert json.loads(out.read_text())["accuracy"] == score.accuracy
    assert score.to_dict()["n_way"] == 5 and "task_accuracies" not in score.to_dict()


def test_a_classifier_is_scored_on_its_images_and_refuses_task_options(data_root):
    path = SHIPPED / "pretrain_cross_char_conv4_plain"
    with pytest.raises(hypermaml.ConfigError, match="--n-way.*few-shot checkpoints only"):
        hypermaml.evaluate_checkpoint(path, n_way=3, data_dir=data_root)
    score = hypermaml.evaluate_checkpoint(path, data_dir=data_root)
    assert isinstance(score, hypermaml.ClassifierScore)
    assert score.accuracy == pytest.approx(82.40, abs=0.01)
    assert "held-out images of the cross_char training classes" in score.describe()


def test_train_takes_a_shipped_config_by_name(data_root, tmp_path):
    cfg = hypermaml.load_run_config("omniglot_5w1s_protonet", TINY)
    assert isinstance(cfg, hypermaml.ExperimentConfig) and cfg.train.epochs == 1
    result = hypermaml.train(cfg, tmp_path / "run", data_root, progress=False)
    assert result.epochs_run == 1
    assert hypermaml.load(tmp_path / "run").path == tmp_path / "run" / "best"
    resumed = hypermaml.load_run_config(None, ["train.epochs=2"], resume_from=tmp_path / "run")
    assert resumed.method.name == "protonet" and resumed.train.epochs == 2


def test_every_shipped_config_is_recognised_by_kind():
    for entry in SHIPPED_CONFIGS.iterdir():
        kind = hypermaml.config_kind(read_raw(entry))
        assert kind == ("classifier" if entry.name.startswith("classify_") else "few_shot")
        assert type(hypermaml.load_run_config(entry)).__name__ == (
            "ClassifyConfig" if kind == "classifier" else "ExperimentConfig"
        )


def test_device_override_reaches_the_right_section():
    few_shot = hypermaml.load_run_config("omniglot_5w1s_maml", device="cpu")
    classifier = hypermaml.load_run_config("classify_fmnist_wrn_16_2_plain", device="cpu")
    assert few_shot.train.device == "cpu" and classifier.run.device == "cpu"
    with pytest.raises(hypermaml.ConfigError, match="CUDA is not available|not a device"):
        hypermaml.load(SHIPPED / "omniglot_5w1s_maml", device="cuda:7" if not
                       torch.cuda.is_available() else "tpu")  # fmt: skip
