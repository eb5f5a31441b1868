"""What a measurement was taken on: library versions and the machine."""

from __future__ import annotations

import multiprocessing
import platform

import torch

from ..engine.precision import matrix_units


def environment() -> dict:
    """What the numbers were measured on."""
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": multiprocessing.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16_units": matrix_units(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info
