"""FEAT's pre-trained mini-ImageNet encoders as this package's networks, through a checked table.

FEAT (Ye et al., "Few-shot learning via embedding adaptation with set-to-set functions",
repository Sha-Lab/FEAT) publishes encoders pre-trained as classifiers of the 64 mini-ImageNet
training classes; HyperMAML starts its mini-ImageNet runs from the same weights. Each file is a
pickle of ``{'params': state_dict}``, read here with ``torch.load(weights_only=True)`` (plain
tensors only: a file that would run code is refused). The key names follow FEAT's sources:

- ``con-pre.pth`` (``arch="conv4"``): ``model/networks/convnet.py``, ``ConvNet``: a Sequential
  ``encoder`` of four ``conv_block``s [Conv2d(3x3, padding 1, with bias) -> BatchNorm2d -> ReLU
  -> MaxPool2d(2)], 64 channels, then ``MaxPool2d(5)`` to a 64-d feature. The file holds the
  ConvNet's own names (``encoder.{b}.0.weight``, ``encoder.{b}.1.running_mean``, ...; FEAT's
  ``model/trainer/helpers.py`` prefixes them with ``encoder.`` when loading); the state of a FEAT
  model holding the ConvNet (``encoder.encoder.{b}...``) is read too.
- ``Res12-pre.pth`` (``arch="resnet12"``): ``model/networks/res12.py``, ``ResNet``: four
  ``layer{s}`` each of one ``BasicBlock`` [conv1/bn1, conv2/bn2, conv3/bn3 (3x3, no bias),
  LeakyReLU 0.1, residual ``downsample`` = Sequential(Conv2d 1x1, BatchNorm2d), MaxPool2d(2),
  DropBlock (no tensors)], widths 64-160-320-640, average pool to 640-d. The file is the state
  of FEAT's ``Classifier`` (``model/models/classifier.py``): the ResNet under ``encoder.``, and
  the 64-class head ``fc.weight``/``fc.bias``.

The head ``fc.*`` is dropped. Every other name must be in the table below, and every name of the
table in the file (except ``num_batches_tracked``, absent from files saved before PyTorch 0.4.1:
filled with 0); the tensors must have our network's shapes. Problems are reported together in
one CheckpointError.

Our networks (``build_network``: ``Conv4Net`` and ``ResNet12``, 3 x 84 x 84 input) have FEAT's
blocks, so the imported weights compute FEAT's function, with these differences of form:
- Conv4: our convolutions have no bias, since BatchNorm follows. FEAT's bias b is folded into the
  running mean (mean - b): BatchNorm(conv(x) + b) is then unchanged with running statistics, and
  with batch statistics b cancels anyway.
- Conv4: FEAT's 5x5 max-pool head is not one of our encoders (``conv4`` flattens the 64 x 5 x 5
  map to 1,600-d, ``conv4pool`` averages it); the map itself is FEAT's.
- ResNet-12: FEAT's DropBlock acts in training only (our ``resnet12_dropblock`` has it).
The same weights also fit ``conv4pool`` (Conv4 with an average pool) and ``resnet12_dropblock``
(``FAMILIES``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from ..checkpoint import CLASSIFIER, check_replaceable, write_checkpoint
from ..errors import CheckpointError
from .build import build_network
from .config import NetworkConfig
from .export import count_parameters
from .resnets import ResidualNetwork

IMAGE_SHAPE = (3, 84, 84)
TRAINING_CLASSES = 64
"""The mini-ImageNet training classes FEAT's encoders were pre-trained to classify."""
DROPPED = ("fc.weight", "fc.bias")
"""FEAT's 64-class head: not part of the encoder."""
BN_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
OPTIONAL = "num_batches_tracked"
RES12_WIDTHS = (64, 160, 320, 640)

NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # model/dataloader/mini_imagenet.py: ImageNet statistics for ConvNet ...
    "conv4": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # ... and mini-ImageNet's own for Res12
    "resnet12": (
        (120.39586422 / 255, 115.59361427 / 255, 104.54012653 / 255),
        (70.68188272 / 255, 68.27635443 / 255, 72.54505529 / 255),
    ),
}
"""Per-channel (mean, std) FEAT normalises images in [0, 1] with before each encoder."""


def _conv4_table() -> tuple[dict[str, str], dict[str, str]]:
    """(FEAT ConvNet name -> our Conv4Net name, FEAT conv bias -> running mean it folds into)."""
    table, folded = {}, {}
    for b in range(4):
        table[f"encoder.{b}.0.weight"] = f"convs.{b}.weight"
        folded[f"encoder.{b}.0.bias"] = f"norms.{b}.running_mean"
        for name in BN_TENSORS:
            table[f"encoder.{b}.1.{name}"] = f"norms.{b}.{name}"
    return table, folded


def _res12_table() -> dict[str, str]:
    """FEAT ResNet (res12.py) name -> our ResNet12 name."""
    table = {}
    for s in range(len(RES12_WIDTHS)):
        feat, ours = f"layer{s + 1}.0", f"stages.{s}"
        for j in (1, 2, 3):
            table[f"{feat}.conv{j}.weight"] = f"{ours}.conv{j}.weight"
            for name in BN_TENSORS:
                table[f"{feat}.bn{j}.{name}"] = f"{ours}.bn{j}.{name}"
        table[f"{feat}.downsample.0.weight"] = f"{ours}.shortcut.0.weight"
        for name in BN_TENSORS:
            table[f"{feat}.downsample.1.{name}"] = f"{ours}.shortcut.1.{name}"
    return table


FAMILIES = {"conv4": "conv4", "conv4pool": "conv4", "resnet12": "resnet12",
            "resnet12_dropblock": "resnet12"}  # fmt: skip
"""The networks FEAT's weights fit, and the file each takes: ``conv4pool`` (our Conv4 with an
average pool) takes FEAT's Conv4 weights, ``resnet12_dropblock`` (DropBlock holds no tensors)
FEAT's ResNet-12 weights."""


def feat_family(arch: str) -> str:
    """``conv4`` or ``resnet12``: the FEAT encoder whose weights network ``arch`` takes."""
    if arch not in FAMILIES:
        raise CheckpointError(
            f"FEAT's weights fit {', '.join(FAMILIES)}, not {arch!r}: con-pre.pth is a conv4, "
            f"Res12-pre.pth a resnet12"
        )
    return FAMILIES[arch]


def feat_key_table(arch: str) -> tuple[dict[str, str], dict[str, str]]:
    """(FEAT network name -> our network name, FEAT conv bias -> our running mean to fold it
    into); names relative to FEAT's ConvNet / ResNet module and to our ``build_network``."""
    if feat_family(arch) == "conv4":
        return _conv4_table()
    return _res12_table(), {}


def _file_prefix(arch: str, keys: list[str]) -> str:
    """The prefix of FEAT's network names in a file: ``encoder.`` for a FEAT model's state (the
    ResNet-12 file; a ConvNet inside a FEAT model), none for con-pre.pth (the ConvNet's own)."""
    if feat_family(arch) == "resnet12" or any(k.startswith("encoder.encoder.") for k in keys):
        return "encoder."
    return ""


@dataclass
class FeatImport:
    """What an import of a FEAT file did."""

    arch: str
    file: str
    sha256: str
    tensors: int
    """Tensors of our network filled from the file."""
    prefix: str
    """The prefix FEAT's network names had in the file."""
    dropped: list[str] = field(default_factory=list)
    """File keys left out: FEAT's classifier head."""
    folded: list[str] = field(default_factory=list)
    """FEAT convolution biases folded into the following BatchNorm's running mean."""
    filled: list[str] = field(default_factory=list)
    """Our tensors the file lacked and that were set to 0 (``num_batches_tracked``)."""
    normalisation: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_feat_file(file: str | Path) -> dict[str, torch.Tensor]:
    """The ``params`` state dict of a FEAT file, loaded as plain tensors (``weights_only``)."""
    try:
        payload = torch.load(Path(file), map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointError(
            f"{file} cannot be read ({exc.strerror or exc}); pass FEAT's con-pre.pth or "
            f"Res12-pre.pth"
        ) from exc
    except Exception as exc:  # weights_only refuses any pickle that is not plain tensors
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"{file} was refused: it is not a file of plain tensors that torch.load(weights_only"
            f"=True) reads ({reason}); pass FEAT's published con-pre.pth or Res12-pre.pth"
        ) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("params"), Mapping):
        found = sorted(map(str, payload))[:5] if isinstance(payload, dict) else type(payload)
        raise CheckpointError(
            f"{file} is not a FEAT weight file: FEAT stores {{'params': state_dict}}, this holds "
            f"{found}"
        )
    params = dict(payload["params"])
    bad = [str(k) for k, v in params.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(f"{file}: 'params' holds entries that are not tensors: {bad[:5]}")
    return params


def feat_network(arch: str) -> ResidualNetwork:
    """Our network of FEAT's encoder ``arch``, without a head, for 3 x 84 x 84 images."""
    feat_key_table(arch)  # refuses an unknown arch
    channels, size, _ = IMAGE_SHAPE
    return build_network(NetworkConfig(arch=arch), channels, 0, size)


def _split_keys(
    params: Mapping[str, torch.Tensor], prefix: str, known: set[str]
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """(FEAT network name -> tensor for the keys of the table, dropped keys, unknown keys)."""
    feat, dropped, unknown = {}, [], []
    for key, value in params.items():
        name = key[len(prefix) :] if key.startswith(prefix) else None
        if key in DROPPED:
            dropped.append(key)
        elif name in known:
            feat[name] = value
        else:
            unknown.append(key)
    return feat, dropped, sorted(unknown)


def _shape_problem(name: str, value: torch.Tensor, ours: str, target: torch.Tensor) -> str | None:
    if tuple(value.shape) == tuple(target.shape):
        return None
    return f"{name} is {tuple(value.shape)}, our {ours} {tuple(target.shape)}"


def convert_feat_state(
    params: Mapping[str, torch.Tensor], arch: str, source: str = "the file"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """FEAT's ``params`` -> (state dict of ``feat_network(arch)``, what was done: ``prefix``,
    ``dropped``, ``folded``, ``filled``). Raises one CheckpointError that lists every unknown
    key, missing key and shape mismatch of ``source``."""
    table, folded_into = feat_key_table(arch)
    target = feat_network(arch).state_dict()
    prefix = _file_prefix(arch, list(params))
    feat, dropped, unknown = _split_keys(params, prefix, {*table, *folded_into})
    wanted = {**table, **folded_into}
    missing = [prefix + k for k in wanted if k not in feat and not k.endswith(OPTIONAL)]
    checked = [_shape_problem(prefix + n, feat[n], ours, target[ours])
               for n, ours in wanted.items() if n in feat]  # fmt: skip
    shapes = [problem for problem in checked if problem]
    if unknown or missing or shapes:
        found = {"unknown keys": unknown, "missing keys": missing, "shape mismatches": shapes}
        listed = "; ".join(f"{what}: {', '.join(keys)}" for what, keys in found.items() if keys)
        file = "con-pre.pth" if feat_family(arch) == "conv4" else "Res12-pre.pth"
        raise CheckpointError(
            f"{source} does not fit FEAT's {arch} encoder ({listed}); pass FEAT's {file} with "
            f"arch {arch} (con-pre.pth is conv4, Res12-pre.pth resnet12)"
        )
    state = {ours: feat[name].to(target[ours].dtype).clone() for name, ours in table.items()
             if name in feat}  # fmt: skip
    for name, ours in folded_into.items():  # BN(conv(x) + b) with mean m == BN(conv(x)), mean m - b
        state[ours] = state[ours] - feat[name].to(state[ours].dtype)
    filled = sorted(k for k in target if k not in state and k.endswith(OPTIONAL))
    state.update({k: torch.zeros_like(target[k]) for k in filled})
    if set(state) != set(target):  # the table itself is wrong: a bug, not a bad file
        raise RuntimeError(f"FEAT's {arch} table misses {sorted(set(target) - set(state))}")
    folded = [prefix + name for name in folded_into]
    return state, {"prefix": prefix, "dropped": dropped, "folded": folded, "filled": filled}


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_feat(file: str | Path, arch: str) -> tuple[dict[str, torch.Tensor], FeatImport]:
    """FEAT's pre-trained encoder in ``file`` (``con-pre.pth`` for ``arch="conv4"``,
    ``Res12-pre.pth`` for ``"resnet12"``) -> (the state dict of ``feat_network(arch)``, the
    report). Raises CheckpointError for a file that is not plain tensors or does not fit."""
    file = Path(file)
    state, done = convert_feat_state(read_feat_file(file), arch, str(file))
    mean, std = NORMALISATION[feat_family(arch)]
    report = FeatImport(
        arch, str(file), _sha256(file), len(state) - len(done["filled"]), done["prefix"],
        done["dropped"], done["folded"], done["filled"], {"mean": list(mean), "std": list(std)},
    )  # fmt: skip
    return state, report


class ClassifierConfig(Protocol):
    """What ``write_feat_checkpoint`` reads of a ``classify.config.ClassifyConfig``."""

    model: NetworkConfig

    def to_dict(self) -> dict[str, Any]: ...


def feat_checkpoint_meta(
    config: ClassifierConfig, network: ResidualNetwork, report: FeatImport
) -> dict[str, Any]:
    """The ``checkpoint.json`` entries of an imported encoder: a classifier checkpoint without a
    head (``num_classes`` 0) that records the file it came from."""
    train_params, test_params = count_parameters(network)
    return {"method": CLASSIFIER, "image_shape": list(IMAGE_SHAPE), "num_classes": 0,
            "epoch": None, "metrics": {},
            "parameters": {"train": train_params, "test": test_params},
            "normalisation": report.normalisation, "config": config.to_dict(),
            "imported_from": {"source": "FEAT (Sha-Lab/FEAT)", **report.to_dict(),
                              "file": Path(report.file).name,
                              "pretrained_classes": TRAINING_CLASSES}}  # fmt: skip


def write_feat_checkpoint(
    file: str | Path, arch: str, out: str | Path, config: ClassifierConfig, force: bool = False
) -> FeatImport:
    """Import FEAT's ``file`` (``import_feat``) and write it to the new folder ``out`` (or over
    an earlier import, with ``force``) as a classifier checkpoint that ``hypermaml train CONFIG
    --init OUT`` starts a method's encoder from. ``config``: the complete ``ClassifyConfig`` to
    store (model.arch ``arch``, plain; data.dataset ``mini_imagenet``). The network has no
    head: FEAT's is dropped."""
    check_replaceable(Path(out), force, "imported_from", "import")
    model = config.model
    if (model.arch, model.hyper) != (arch, "none"):
        raise CheckpointError(
            f"the config describes a {model.arch} (hyper {model.hyper}) network; FEAT's weights "
            f"are a plain {arch}: set model.arch={arch} and model.hyper=none"
        )
    state, report = import_feat(file, arch)
    network = feat_network(arch)
    network.load_state_dict(state)
    write_checkpoint(Path(out), network.state_dict(), feat_checkpoint_meta(config, network, report))
    return report
