"""The EMNIST subset of the Omniglot->EMNIST reference setup: 62 classes x 200 images, 28x28.

The images are stored white ink on black; they are inverted (255 - x) to match Omniglot.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .files import RemoteFile, fetch

EMNIST_SUBSET = RemoteFile(
    "emnist/emnist_closerlook_62x200.zip",
    "https://github.com/NanqingD/DAOSL/raw/master/data/emnist.zip",
    None,  # the source publishes no checksum: the content check below verifies it
)
N_CLASSES = 62
N_PER_CLASS = 200


def load_emnist_subset(root: Path) -> torch.Tensor:
    """uint8 [62, 200, 28, 28], dark ink on a light background, class ids in ByClass order."""
    from PIL import Image

    path = fetch(EMNIST_SUBSET, root)
    images = np.zeros((N_CLASSES, N_PER_CLASS, 28, 28), dtype=np.uint8)
    seen = np.zeros((N_CLASSES, N_PER_CLASS), dtype=bool)
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith(".png"):
                    continue
                cls, idx = int(name.split("/")[-2]), int(name.split("/")[-1][:-4])
                if not (0 <= cls < N_CLASSES and 0 <= idx < N_PER_CLASS):
                    raise ValueError(f"unexpected entry {name}")
                with Image.open(io.BytesIO(zf.read(name))) as img:
                    images[cls, idx] = 255 - np.asarray(img.convert("L"), dtype=np.uint8)
                seen[cls, idx] = True
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable EMNIST subset zip ({exc}); delete it") from exc
    if not seen.all():
        raise DataError(
            f"{path} holds {int(seen.sum())} of the {N_CLASSES * N_PER_CLASS} EMNIST images "
            f"(62 classes x 200): replace it with the file from {EMNIST_SUBSET.url}"
        )
    return torch.from_numpy(images)
