"""Optional dependencies: imported only by the commands that need them.

The core install (``pip install hypermaml``) trains, evaluates and exports. Plots need
``hypermaml[plots]`` (matplotlib), TensorBoard logs ``hypermaml[tensorboard]``, the training
augmentation of natural images (``data.train_aug``) ``hypermaml[images]`` (kornia), ONNX
export ``hypermaml[onnx]`` (onnx, onnxscript, onnxruntime), the page ``hypermaml[serve]``
(fastapi, uvicorn, python-multipart, httpx);
``hypermaml[all]`` brings every extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

EXTRAS = {"matplotlib": "plots", "tensorboard": "tensorboard", "kornia": "images",
          "onnx": "onnx", "onnxscript": "onnx", "onnxruntime": "onnx", "fastapi": "serve",
          "uvicorn": "serve", "python_multipart": "serve", "httpx": "serve"}  # fmt: skip
"""Top-level module -> the extra that installs it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. ``matplotlib.pyplot``) or raise a MissingExtraError naming the
    extra to install; ``purpose`` says what it is needed for."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = EXTRAS.get(top, "all")
        raise MissingExtraError(
            f"{purpose} needs {top}, which is not installed: pip install 'hypermaml[{extra}]'"
        ) from exc
