"""Shared fixtures: the real data folder (skipped when absent) and small synthetic datasets."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest
import torch

from hypermaml.data import ClassImages

SKIP_REASON = "real data not found: set HYPERMAML_DATA to the folder holding omniglot/ and emnist/"


def _real_data_root() -> Path | None:
    env = os.environ.get("HYPERMAML_DATA")
    if not env:
        return None
    root = Path(env).expanduser()
    return root if (root / "omniglot").is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data folder ($HYPERMAML_DATA); the test is skipped when it is not there."""
    root = _real_data_root()
    if root is None:
        pytest.skip(SKIP_REASON)
    return root


def make_class_images(
    n_classes: int = 6, n_per_class: int = 10, size: int = 8, channels: int = 1, seed: int = 0
) -> ClassImages:
    """Random uint8 images [n_classes, n_per_class, channels, size, size] with a class signal."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (n_classes, n_per_class, channels, size, size), generator=g)
    base = torch.randint(0, 256, (n_classes, 1, channels, size, size), generator=g)
    images = ((noise + 3 * base) // 4).to(torch.uint8)
    return ClassImages("synthetic", "test", images, [f"class{i}" for i in range(n_classes)])


def files_under(path: Path) -> list[Path]:
    """Every file below ``path``, sorted."""
    return sorted(p for p in path.rglob("*") if p.is_file())


@pytest.fixture
def tiny_images() -> ClassImages:
    """6 classes x 10 images of 1x16x16, uint8 (enough for 16x16 Conv4 models)."""
    return make_class_images(n_classes=6, n_per_class=10, size=16)


@pytest.fixture
def single_thread():
    """One intra-op thread: tiny tensors gain nothing from more, and on a busy 2-core machine
    OpenMP threads waiting on each other slow small double-precision convolutions 10-50x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def offline(monkeypatch):
    """Every download fails, as on a machine without network."""
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


@pytest.fixture
def cache_folder(monkeypatch, tmp_path) -> Path:
    """A fresh, empty ``$HYPERMAML_CACHE`` for the test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("HYPERMAML_CACHE", str(folder))
    return folder
