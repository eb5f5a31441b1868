"""Supervised training of plain and hyper ResNets on real Fashion-MNIST (``hypermaml classify``):
learning, exact resume, SWA, export, compression, bad input."""

from __future__ import annotations

import pytest
import safetensors.torch
import torch

from hypermaml.checkpoint import read_meta
from hypermaml.classify import export_checkpoint, load_classifier, train_classifier
from hypermaml.classify.config import ClassifyConfig, load_classify_config
from hypermaml.cli import main
from hypermaml.errors import CheckpointError, TrainingError
from hypermaml.methods import load_method
from hypermaml.models import build_network


@pytest.fixture(autouse=True)
def small_test_split(monkeypatch):
    """Score on the first 2,000 test images: these tests check behaviour, not accuracy, and the
    full 10,000 would take most of their time."""
    import hypermaml.classify.export as export
    import hypermaml.classify.score as score
    import hypermaml.classify.train as train
    from hypermaml.data import LabelledImages, load_classification

    def load(name, split, root=None):
        data = load_classification(name, split, root)
        if split != "test":
            return data
        return LabelledImages(data.name, split, data.images[:2000], data.labels[:2000],
                              data.class_names)  # fmt: skip

    for module in (train, score, export):
        monkeypatch.setattr(module, "load_classification", load)


def tiny(**overrides) -> ClassifyConfig:
    """WRN-10-1 on 200 Fashion-MNIST images, one thread, constant learning rate."""
    base = {
        "data.dataset": "fashion_mnist",
        "data.train_subset": 200,
        "model.arch": "wrn_10_1",
        "model.hyper": "layer",
        "optim.epochs": 2,
        "optim.batch_size": 50,
        "optim.lr": 0.05,
        "optim.milestones": "[]",
        "run.threads": 1,
        "run.eval_every": 100,
        "run.device": "cpu",
    }
    base.update(overrides)
    return load_classify_config(None, [f"{k}={v}" for k, v in base.items()])


def run(cfg: ClassifyConfig, path, data_root, resume: bool = False):
    return train_classifier(cfg, path, data_root, resume=resume, progress=False,
                            tensorboard=False)  # fmt: skip


def weights(path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path / "model.safetensors"))


@pytest.mark.slow
def test_short_training_beats_chance_by_a_wide_margin(data_root, tmp_path):
    overrides = {"data.train_subset": 2000, "data.augment": "false", "optim.epochs": 3,
                 "optim.batch_size": 32}  # fmt: skip
    cfg = tiny(**overrides)
    result = run(cfg, tmp_path / "run", data_root)
    assert result.test_accuracy > 50.0, f"{result.test_accuracy:.1f}% is too close to 10%"


def test_resume_continues_exactly(data_root, tmp_path):
    run(tiny(), tmp_path / "straight", data_root)
    run(tiny(**{"optim.epochs": 1}), tmp_path / "split", data_root)
    run(tiny(), tmp_path / "split", data_root, resume=True)
    straight, split = weights(tmp_path / "straight/final"), weights(tmp_path / "split/final")
    assert straight.keys() == split.keys()
    for key in straight:
        assert torch.equal(straight[key], split[key]), key


def test_swa_averages_the_epochs_and_recomputes_batchnorm(data_root, tmp_path):
    # SWA at the run's own constant learning rate leaves the trajectory unchanged, so the
    # average of epochs 1 and 2 is the mean of the two plain runs' final parameters.
    run(tiny(), tmp_path / "two", data_root)
    run(tiny(**{"optim.epochs": 3}), tmp_path / "three", data_root)
    swa = tiny(**{"optim.epochs": 3, "swa.start_epoch": 1, "swa.lr": 0.05})
    result = run(swa, tmp_path / "swa", data_root)
    two, three = weights(tmp_path / "two/final"), weights(tmp_path / "three/final")
    swa_ckpt = load_classifier(tmp_path / "swa/final")
    model, meta = swa_ckpt.network, swa_ckpt.meta
    averaged = model.state_dict()
    for name, _ in model.named_parameters():
        torch.testing.assert_close(averaged[name], (two[name] + three[name]) / 2)
    assert "embedding" in " ".join(n for n, _ in model.named_parameters())
    bn = [n for n in averaged if n.endswith("running_var")]
    assert bn and not torch.equal(averaged[bn[0]], three[bn[0]])  # recomputed for the average
    assert meta["metrics"]["swa"] is True
    assert result.test_accuracy == meta["metrics"]["test_accuracy"]


def test_export_gives_a_plain_network_with_the_same_outputs(data_root, tmp_path):
    run(tiny(**{"model.hyper": "stage", "optim.epochs": 1}), tmp_path / "run", data_root)
    report = export_checkpoint(tmp_path / "run/final", tmp_path / "plain", data_root)
    assert report.max_abs_diff < 1e-5
    assert report.test_params < report.train_params
    plain = load_classifier(tmp_path / "plain")
    assert plain.config.model.hyper == "none"
    assert sum(p.numel() for p in plain.network.parameters()) == report.test_params
    assert plain.meta["exported_from"].endswith("final")


def test_compressed_network_saves_no_embeddings_and_reloads_exactly(data_root, tmp_path):
    cfg = tiny(**{"model.hyper": "stage", "model.frozen_seed": 7, "optim.epochs": 1})
    result = run(cfg, tmp_path / "run", data_root)
    stored = weights(tmp_path / "run/final")
    assert not any("embedding" in key for key in stored)
    assert any(key.startswith("hypernets.") for key in stored)
    ckpt = load_classifier(tmp_path / "run/final")
    assert ckpt.meta["parameters"]["train"] == sum(p.numel() for p in ckpt.network.parameters())
    assert ckpt.meta["metrics"]["test_accuracy"] == result.test_accuracy
    assert main(["eval", str(tmp_path / "run/final"), "--json", str(tmp_path / "r.json")]) == 0
    assert f'"accuracy": {result.test_accuracy}' in (tmp_path / "r.json").read_text()


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_epoch(data_root, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    import hypermaml.classify.train as classify

    real = classify.generated_weight_penalty
    calls = {"n": 0}

    def poisoned(model):
        calls["n"] += 1
        value = real(model)
        return value * float("nan") if calls["n"] > 4 else value  # epoch 0 has 4 steps

    monkeypatch.setattr(classify, "generated_weight_penalty", poisoned)
    with pytest.raises(TrainingError, match="epoch 1.*--resume"):
        run(tiny(), tmp_path / "run", data_root)
    assert read_meta(tmp_path / "run/last")[1]["epoch"] == 0


def test_existing_run_and_other_config_are_refused(data_root, tmp_path):
    run(tiny(**{"optim.epochs": 1}), tmp_path / "run", data_root)
    with pytest.raises(TrainingError, match="--resume"):
        run(tiny(), tmp_path / "run", data_root)
    with pytest.raises(CheckpointError, match="another config"):
        run(tiny(**{"optim.lr": 0.01}), tmp_path / "run", data_root, resume=True)


def test_few_shot_and_classifier_checkpoints_are_not_confused(data_root, tmp_path, capsys):
    run(tiny(**{"optim.epochs": 1}), tmp_path / "run", data_root)
    with pytest.raises(CheckpointError, match="hypermaml classify"):
        load_method(tmp_path / "run/final")
    assert main(["classify", "omniglot_5w1s_protonet", "--out", str(tmp_path / "fs")]) == 2
    assert "few-shot run, not a classifier; use hypermaml train" in capsys.readouterr().err
    # hypermaml train continues either kind of run
    args = ["--resume", "--out", str(tmp_path / "run"), "--set", "optim.epochs=2", "--quiet"]
    assert main(["train", *args]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert read_meta(tmp_path / "run/last")[1]["epoch"] == 1
    with pytest.raises(CheckpointError, match="not a classifier"):
        load_classifier("checkpoints/omniglot_5w1s_protonet")


def test_bad_swa_start_and_subset_are_refused(data_root, tmp_path):
    with pytest.raises(ValueError, match="swa.start_epoch"):
        run(tiny(**{"swa.start_epoch": 5}), tmp_path / "a", data_root)
    with pytest.raises(ValueError, match="train_subset"):
        run(tiny(**{"data.train_subset": 10**6}), tmp_path / "b", data_root)


@pytest.mark.parametrize("hyper_decay", [0.0, 1e-2])
def test_weight_decay_reaches_embeddings_and_hypernetworks_only_when_asked(hyper_decay):
    """With zero gradients one SGD step only decays: plain parameters by lr × weight_decay,
    embeddings and hypernetworks by lr × hyper_weight_decay (none by default)."""
    from hypermaml.classify.train import _optimizer
    from hypermaml.models.hyperconv import parameter_groups

    cfg = tiny(**{"optim.weight_decay": 1e-3, "optim.hyper_weight_decay": hyper_decay})
    torch.manual_seed(0)
    model = build_network(cfg.model, 1, 10, 28)
    optimizer = _optimizer(model, cfg)
    groups = parameter_groups(model)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    lr = cfg.optim.lr
    assert groups.hyper and groups.plain
    for params, decay in ((groups.plain, 1e-3), (groups.hyper, hyper_decay)):
        for p in params:
            torch.testing.assert_close(p.detach(), before[id(p)] * (1 - lr * decay))
