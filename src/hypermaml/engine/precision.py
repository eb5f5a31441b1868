"""Mixed precision: the forward and backward passes in bfloat16 or float16 (``torch.autocast``),
the weights, the optimiser and the meta-loss in float32.

autocast is per thread: the training step and the evaluation enter ``Precision.autocast()``
inside each task worker. float16 needs a gradient scaler (``torch.amp.GradScaler``): the
meta-loss is multiplied before the backward pass and the gradients divided before the step,
which is skipped when they overflowed. MAML's inner-loop gradients are taken of the unscaled
support loss: they are part of the forward pass. Under autocast the encoders take PyTorch's own
convolutions (``engine.kernels`` and ``fused_block`` are float32 paths); on a CPU with AMX or
AVX512-BF16, oneDNN runs the bfloat16 ones on those units.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """The arithmetic of one run on ``device``: ``fp32``, ``bf16`` or ``fp16``."""

    def __init__(self, name: str, device: torch.device) -> None:
        if name not in DTYPES:
            raise ValueError(f"precision {name!r}: use one of {', '.join(DTYPES)}")
        self.name, self.device = name, device
        self.dtype = DTYPES[name]
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of a forward (and backward) pass in this precision (in this thread)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to differentiate: multiplied by the scaler's factor under fp16."""
        return loss if self.scaler is None else self.scaler.scale(loss)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimiser step on gradients of ``scale(loss)``: unscaled, and skipped when they
        overflowed, under fp16."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state (its factor and growth tracker), for a resume; empty without one."""
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def matrix_units() -> str:
    """The CPU's bfloat16 matrix units as this machine reports them: ``AMX``, ``AVX512-BF16``
    or ``none`` (Linux's /proc/cpuinfo flags; ``unknown`` elsewhere)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    if "amx_bf16" in flags:
        return "AMX"
    return "AVX512-BF16" if "avx512_bf16" in flags else "none"
