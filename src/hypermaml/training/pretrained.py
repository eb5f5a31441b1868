"""Start a few-shot method from an encoder pre-trained as a classifier (``hypermaml classify``).

The HyperResNets paper meta-trains from a network pre-trained on the training classes, with its
classifier replaced: the encoder's weights come from the classifier, the method's own head (and
hypernetwork, for HyperMAML) start fresh. Running BatchNorm statistics are dropped when the
encoder normalises transductively. The plain fast ``Conv4`` takes the weights of a plain
``conv4`` classifier: its convolution biases (before BatchNorm, so without effect) keep their
values and per-step BatchNorm parameters all start from the classifier's
(``models.encoder.Encoder.load_network``).
"""

from __future__ import annotations

from pathlib import Path

from ..classify.checkpoint import load_classifier
from ..errors import CheckpointError
from ..methods import Method
from ..models.config import ModelConfig


def load_pretrained_encoder(method: Method, path: str | Path, model: ModelConfig) -> int:
    """Copy the encoder weights of classifier checkpoint ``path`` into ``method``; returns the
    number of tensors copied. The classifier must be the network of the method's ``model``
    config (the same architecture and hyper mode)."""
    ckpt = load_classifier(path)
    arch, hyper = ckpt.config.model.arch, ckpt.config.model.hyper
    if (_name(arch), hyper) != (_name(model.backbone), model.hyper):
        raise CheckpointError(
            f"{path} is a {arch} (hyper {hyper}) classifier; this config's encoder is "
            f"{model.backbone} (hyper {model.hyper}): pre-train the same network"
        )
    try:
        return method.encoder.load_network(ckpt.network.state_dict())
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def _name(network: str) -> str:
    """A network's name as compared: ``WRN-16-4`` is ``wrn_16_4``; ``resnet12_dropblock`` is
    ``resnet12`` (DropBlock holds no weights)."""
    return network.lower().replace("-", "_").removesuffix("_dropblock")
