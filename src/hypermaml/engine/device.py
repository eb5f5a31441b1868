"""Which device a run computes on."""

from __future__ import annotations

import torch

from ..errors import ConfigError


def pick_device(name: str | None = "auto") -> torch.device:
    """``auto`` (or None): CUDA when available, else the CPU; otherwise the device named
    (``cpu``, ``cuda``, ``cuda:1``), refused with the fix when CUDA is asked for but absent."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(
            f"device {name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available; use cpu")
    return device
