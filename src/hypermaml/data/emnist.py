"""The EMNIST subset of the Omniglot->EMNIST reference setup: 62 classes x 200 images, 28x28.

The images are stored white ink on black; they are inverted (255 - x) to match Omniglot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .archives import zip_pngs
from .files import RemoteFile, fetch, replace_hint

EMNIST_SUBSET = RemoteFile(
    "emnist/emnist_closerlook_62x200.zip",
    "https://github.com/NanqingD/DAOSL/raw/master/data/emnist.zip",
    None,  # the source publishes no checksum: the content check below verifies it
)
N_CLASSES = 62
N_PER_CLASS = 200
IMAGE_SIZE = 28


def _class_and_index(name: str, archive: Path, fix: str) -> tuple[int, int]:
    """(class, index) of the member ``emnist/<class>/<index>.png``."""
    try:
        cls, idx = int(name.split("/")[-2]), int(name.split("/")[-1][:-4])
    except (ValueError, IndexError) as exc:
        raise DataError(
            f"member {name} of {archive} is not named <class>/<index>.png; {fix}"
        ) from exc
    if not (0 <= cls < N_CLASSES and 0 <= idx < N_PER_CLASS):
        raise DataError(
            f"member {name} of {archive} is outside the {N_CLASSES} classes x {N_PER_CLASS} "
            f"images of the subset; {fix}"
        )
    return cls, idx


def load_emnist_subset(root: Path) -> torch.Tensor:
    """uint8 [62, 200, 28, 28], dark ink on a light background, class ids in ByClass order."""
    path = fetch(EMNIST_SUBSET, root)
    fix = replace_hint(path, EMNIST_SUBSET)
    images = np.zeros((N_CLASSES, N_PER_CLASS, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    seen = np.zeros((N_CLASSES, N_PER_CLASS), dtype=bool)
    for name, pixels in zip_pngs(path, fix, shape=(IMAGE_SIZE, IMAGE_SIZE)):
        cls, idx = _class_and_index(name, path, fix)
        if seen[cls, idx]:
            raise DataError(f"{path} holds image {idx} of class {cls} twice; {fix}")
        images[cls, idx] = 255 - pixels
        seen[cls, idx] = True
    if not seen.all():
        raise DataError(
            f"{path} holds {int(seen.sum())} of the {N_CLASSES * N_PER_CLASS} EMNIST images "
            f"({N_CLASSES} classes x {N_PER_CLASS}); {fix}"
        )
    return torch.from_numpy(images)
