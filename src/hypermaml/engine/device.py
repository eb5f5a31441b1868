"""Which device a run computes on."""

from __future__ import annotations

import re

import torch

from ..errors import ConfigError

DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"
"""The device names hypermaml takes, for messages."""
_DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")


def device_name_problem(name: str) -> str | None:
    """What is wrong with the device name ``name`` (its spelling only; whether this machine has
    the device is ``pick_device``'s question), or None when it is one hypermaml takes."""
    if isinstance(name, str) and _DEVICE_NAME.fullmatch(name):
        return None
    return f"not a device hypermaml runs on; use {DEVICE_NAMES}"


def pick_device(name: str | None = "auto") -> torch.device:
    """``auto`` (or None): CUDA when available, else the CPU; otherwise the device named
    (``cpu``, ``cuda``, ``cuda:1``, ``mps``), refused with the fix when the name is not one of
    those or this machine lacks the device."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if problem := device_name_problem(name):
        raise ConfigError(f"device {name!r}: {problem}")
    device = torch.device(name)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} was asked for but MPS is not available; use cpu")
    if device.type == "cuda":
        _check_cuda(name, device)
    return device


def _check_cuda(name: str, device: torch.device) -> None:
    """Refuse a CUDA device this machine lacks, naming the ones it has."""
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available; use cpu")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(
            f"device {name!r}: this machine has {count} CUDA device(s), cuda:0 to "
            f"cuda:{count - 1}; use one of those, or cuda"
        )
