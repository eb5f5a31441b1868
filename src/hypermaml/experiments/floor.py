"""The arithmetic floor of Conv4 few-shot work, from a matrix product timed on the same machine.

A shared or virtual machine does not run at one speed: the same code can be twice as fast on
one day as on another. Speed figures are therefore reported with a reference taken in the same
run (the rate of a large float32 matrix product) and as a fraction of the floor it implies: the
convolutions' floating-point operations done at that rate. Winograd and FFT convolutions need
fewer operations than they are counted for here, so a fraction above 1 is possible.
"""

from __future__ import annotations

import time

import torch


def gemm_gflops(device: torch.device | str = "cpu", size: int = 2048, repeats: int = 5) -> float:
    """The best rate, in GFLOP/s, of a ``size`` x ``size`` float32 matrix product with the
    current thread count (on the CPU) or on the given CUDA device."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first run warms up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def conv4_layer_flops(
    image_size: int, in_channels: int = 1, width: int = 64, blocks: int = 4
) -> list[float]:
    """Forward FLOPs (2 per multiply-add) of each 3x3 convolution of Conv4 for one image; each
    block halves the side (max-pool 2, floor)."""
    flops, channels, side = [], in_channels, image_size
    for _ in range(blocks):
        flops.append(2.0 * channels * width * 9 * side * side)
        channels, side = width, side // 2
    return flops


def task_flops(image_size: int, images: int, in_channels: int = 1, training: bool = False) -> float:
    """Convolution FLOPs of one task of ``images`` images: the forward pass, and in training
    also the weight gradient (as much again) and the input gradient of every layer but the
    first (the images need none)."""
    layers = conv4_layer_flops(image_size, in_channels)
    per_image = sum(layers)
    if training:
        per_image += sum(layers) + sum(layers[1:])
    return images * per_image


def floor_seconds(flops: float, gflops: float) -> float:
    """Seconds for ``flops`` at ``gflops`` GFLOP/s."""
    return flops / (gflops * 1e9)
