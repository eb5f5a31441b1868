"""The accuracy of a classifier on labelled images, and of a checkpoint on its test images."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.augment import batches
from ..data.classification import LabelledImages, load_classification
from ..errors import ConfigError
from .checkpoint import load_classifier

EVAL_BATCH = 500

FEW_SHOT_PRETRAINING = ("omniglot", "cross_char")
"""Datasets of few-shot training classes: their "test" images are held-out images of the
training classes (``data/classification.py``)."""


@torch.no_grad()
def accuracy(
    model: nn.Module, data: LabelledImages, mean: torch.Tensor, std: torch.Tensor,
    device: torch.device,
) -> float:  # fmt: skip
    """Percent of ``data`` that ``model`` (in eval mode for the call) classifies correctly."""
    was_training = model.training
    model.eval()
    correct = 0
    for x, y in batches(data, EVAL_BATCH, mean, std, shuffle=False, augment=False):
        correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    model.train(was_training)
    return 100.0 * correct / len(data.labels)


@dataclass
class ClassifierScore:
    """A classifier checkpoint's accuracy on its test (or held-out) images."""

    accuracy: float
    """Percent."""
    n_images: int
    dataset: str
    arch: str
    hyper: str
    train_params: int
    """Trained parameters."""
    test_params: int
    """Parameters after export to a plain network."""
    checkpoint: str

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        where = f"{self.dataset}/test"
        if self.dataset in FEW_SHOT_PRETRAINING:
            where = f"held-out images of the {self.dataset} training classes"
        return (
            f"{self.arch} (hyper {self.hyper}) on {where}: {self.accuracy:.2f}% of "
            f"{self.n_images:,} images"
        )


def score_classifier(
    path: str | Path, data_root: str | Path | None = None, device: torch.device | str = "cpu"
) -> ClassifierScore:
    """Test-set accuracy of the classifier checkpoint at ``path``, with what it was."""
    ckpt = load_classifier(path, device)
    if ckpt.meta.get("num_classes") == 0:
        origin = ckpt.meta.get("imported_from", {}).get("source", "another library")
        raise ConfigError(
            f"{path} is an encoder imported from {origin}, without a classification head: it "
            f"has nothing to score by itself. Start a few-shot run from it (hypermaml train "
            f"CONFIG --init {path}) and evaluate that run's checkpoint"
        )
    cfg = ckpt.config
    test = load_classification(cfg.data.dataset, "test", data_root)
    mean, std = ckpt.normalisation
    score = accuracy(ckpt.network, test, mean, std, torch.device(device))
    params = ckpt.meta["parameters"]
    return ClassifierScore(score, len(test.labels), cfg.data.dataset, cfg.model.arch,
                           cfg.model.hyper, params["train"], params["test"],
                           str(ckpt.path))  # fmt: skip
