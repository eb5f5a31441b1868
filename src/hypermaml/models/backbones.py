"""The network names a config may give: ``model.backbone`` (few-shot) and ``model.arch``
(classifier) share them, so a classifier pre-trains exactly the encoder a method uses.

| name | network | embedding |
|---|---|---|
| ``conv4`` | 4 x [conv 3x3 (64), BN, ReLU, max-pool 2] | flattened: 64 at 28 px, 1,600 at 84 px |
| ``conv4pool`` | the same, then a global average pool | 64 |
| ``resnet10`` | CloserLook's ResNet-10 (7x7/2 stem, max-pool, 1 block per stage) | 512 |
| ``resnet12`` | the few-shot ResNet-12 (64-160-320-640, FEAT / MetaOptNet layout) | 640 |
| ``resnet12_dropblock`` | the same with FEAT's DropBlock (rate 0.1, block 5) in training | 640 |
| ``resnet18``, ``resnet34`` | CIFAR-style ResNets (3x3 stem, no max-pool) | 512 |
| ``wrn_D_K`` | wide ResNet of depth D = 6n + 4 and widen factor K | 64 K |
"""

from __future__ import annotations

import re

FIXED = ("conv4", "conv4pool", "resnet10", "resnet12", "resnet12_dropblock", "resnet18", "resnet34")
"""Every name but the wide ResNets'."""
NAMES = ", ".join(FIXED) + ", wrn_<depth>_<k> (depth = 6n + 4: wrn_16_2, wrn_28_4, ...)"
"""The names, as error messages list them."""
_WRN = re.compile(r"wrn[_-](\d+)[_-](\d+)")


def wrn_problem(depth: int, widen_factor: int) -> str | None:
    """What is wrong with WRN-``depth``-``widen_factor``, or None if it exists."""
    if depth < 10 or (depth - 4) % 6 != 0 or widen_factor < 1:
        return (
            f"WRN-{depth}-{widen_factor} does not exist: depth must be 6n + 4 with n >= 1"
            " (10, 16, 22, 28, 40, ...) and the widen factor a positive integer"
        )
    return None


def parse_wrn(name: str) -> tuple[int, int] | None:
    """(depth, widen factor) of a wide ResNet's name (``wrn_28_4``, ``WRN-28-4``), else None."""
    match = _WRN.fullmatch(name.lower())
    return (int(match[1]), int(match[2])) if match else None


def name_problem(name: str) -> str | None:
    """What is wrong with the network name ``name``, or None if the builders know it."""
    if name.lower() in FIXED:
        return None
    wrn = parse_wrn(name)
    if wrn is not None:
        return wrn_problem(*wrn)
    return f"unknown network {name!r}; choose one of {NAMES}"
