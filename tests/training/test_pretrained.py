"""Starting a few-shot method from a classifier pre-trained on the training classes."""

from __future__ import annotations

import pytest
import torch

from hypermaml.classify import load_classifier, load_classify_config, train_classifier
from hypermaml.config import load_config
from hypermaml.errors import CheckpointError
from hypermaml.methods import build_method
from hypermaml.models import ModelConfig
from hypermaml.training.pretrained import load_pretrained_encoder

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("hyper", ["none", "stage"])
def test_pretrained_classifier_starts_the_encoder(data_root, tmp_path, hyper):
    cls_cfg = load_classify_config(None, [
        "data.dataset=cross_char", "data.train_subset=100", "model.arch=conv4",
        f"model.hyper={hyper}", "optim.epochs=1", "optim.batch_size=50", "run.threads=1",
        "run.device=cpu",
    ])  # fmt: skip
    train_classifier(cls_cfg, tmp_path / "pre", data_root, progress=False, tensorboard=False)
    cfg = load_config("configs/cross_char_1s_maml.yaml", [f"model.hyper={hyper}"])
    torch.manual_seed(1)
    method = build_method(cfg, (1, 28, 28)).eval()
    head_before = method.head.weight.clone()
    assert load_pretrained_encoder(method, tmp_path / "pre/final", cfg.model) > 0
    assert torch.equal(method.head.weight, head_before)  # the classifier is replaced
    # the encoder now computes the classifier's features (transductive BatchNorm on both)
    classifier = load_classifier(tmp_path / "pre/final")
    net = classifier.network
    assert classifier.meta["normalisation"] == {"mean": [0.0], "std": [1.0]}  # as methods feed
    net.train()  # batch statistics, as the transductive encoder uses
    x = torch.rand(1, 10, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(method.encoder(x)[0], net.features(x[0]),
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
    other = "layer" if hyper == "stage" else "stage"
    with pytest.raises(CheckpointError, match="pre-train the same network"):
        load_pretrained_encoder(method, tmp_path / "pre/final", ModelConfig("conv4", hyper=other))
