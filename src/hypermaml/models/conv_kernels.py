"""3x3 convolutions (stride 1, padding 1) with the fastest CPU kernel for each product.

PyTorch picks one CPU kernel for a convolution's forward and backward together: oneDNN when it
is enabled, else NNPACK or its own im2col + GEMM kernel. For Conv4's shapes the fastest kernel
differs per product: on the machine of docs/performance.md NNPACK computes the 64 -> 64 forward
and input gradient at 14x14 about 1.6x as fast as oneDNN, while oneDNN wins the 64 -> 64
weight gradients and everything at 7x7 and below. ``conv3x3``
therefore runs its three products (output, input gradient, weight and bias gradient)
separately, each with the kernel timed fastest for its shapes on first use (as
``torch.backends.cudnn.benchmark`` does on GPUs).

A convolution of a one-channel image (Conv4's first layer on grey images) takes another route:
the nine shifted copies of the padded image are stacked as channels and a 1x1 convolution (a
matrix product with the 9 x C filter matrix) maps them to the output, directly in channels_last.
The 3x3 kernels treat a one-channel channels_last tensor as NCHW and return NCHW output, whose
conversion alone cost more than the convolution; the 1x1 route's forward and weight gradient
take about 40% of their time at 28x28.

The backward is made of differentiable convolutions, so ``conv3x3`` can be differentiated to
any order (second-order MAML). Off the CPU, and inside ``torch.func`` transforms, it is plain
``F.conv2d``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

#: the kernels tried for each product: True = oneDNN, False = PyTorch's own (NNPACK or GEMM)
_KERNELS = (True, False)
_choice: dict[tuple, bool] = {}
#: None: autotune; True/False: always that kernel (tests, and to compare kernels)
forced_kernel: bool | None = None


@contextmanager
def _kernel(onednn: bool) -> Iterator[None]:
    """Route CPU convolutions to oneDNN (True) or to the im2col + GEMM kernel (False)."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = onednn
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def _key(product: str, a: torch.Tensor, b: torch.Tensor) -> tuple:
    layout = (tuple(a.stride()), tuple(b.stride()))
    return (product, tuple(a.shape), tuple(b.shape), layout, a.dtype, torch.get_num_threads())


def _run(product: str, a: torch.Tensor, b: torch.Tensor, fn: Callable[[], object]):
    """Run ``fn`` under the kernel chosen for (product, shapes); time the kernels once first."""
    if forced_kernel is not None:
        with _kernel(forced_kernel):
            return fn()
    key = _key(product, a, b)
    if key not in _choice:
        with torch.no_grad():
            times = {}
            for kernel in _KERNELS:
                with _kernel(kernel):
                    fn()  # warm-up: primitive creation, first-touch of buffers
                    runs = []
                    for _ in range(3):
                        start = time.perf_counter()
                        fn()
                        runs.append(time.perf_counter() - start)
                # the fastest run: the least disturbed by other work on the machine
                times[kernel] = min(runs)
        _choice[key] = min(times, key=times.__getitem__)
    with _kernel(_choice[key]):
        return fn()


def _forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, fmt: torch.memory_format
) -> torch.Tensor:
    """The convolution, returned in memory format ``fmt`` whichever kernel ran (NNPACK returns
    NCHW for channels_last input, and pooling and BatchNorm are several times slower on NCHW)."""
    return _run(
        "forward", x, weight,
        lambda: F.conv2d(x, weight, bias, padding=1).contiguous(memory_format=fmt),
    )  # fmt: skip


class _Conv3x3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, fmt):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x, weight)
        ctx.has_bias, ctx.fmt = bias is not None, fmt
        return _forward(x, weight, bias, fmt)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # the input gradient of a 3x3 'same' convolution is the convolution of the output
            # gradient with the filters transposed over channels and flipped in space
            flipped = weight.transpose(0, 1).flip(2, 3)
            grad_x = conv3x3(grad, flipped, None, ctx.fmt)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            bias_sizes = [weight.shape[0]] if ctx.has_bias else None
            mask = [False, True, ctx.has_bias and ctx.needs_input_grad[2]]

            def weight_grad():  # noqa: ANN202
                return torch.ops.aten.convolution_backward(
                    grad, x, weight, bias_sizes, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask
                )

            _, grad_w, grad_b = _run("weight_grad", x, grad, weight_grad)
        return grad_x, grad_w, grad_b, None


def is_functorch_wrapped(x: torch.Tensor) -> bool:
    """Whether ``x`` is seen through a torch.func transform (``vmap``, ``grad``)."""
    return torch._C._functorch.is_functorch_wrapped_tensor(x)


def shifted_copies(x: torch.Tensor) -> torch.Tensor:
    """The 3x3 neighbourhoods of a one-channel image as channels: [n, 1, H, W] -> [n, 9, H, W]
    (channels_last); channel ``3 * i + j`` is the zero-padded image shifted by (i - 1, j - 1)."""
    _, _, height, width = x.shape
    padded = F.pad(x[:, 0], (1, 1, 1, 1))
    copies = [padded[:, i : i + height, j : j + width] for i in range(3) for j in range(3)]
    return torch.stack(copies, -1).permute(0, 3, 1, 2)


def _one_channel(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, fmt: torch.memory_format
) -> torch.Tensor:
    """The 3x3 convolution of one-channel ``x`` as a 1x1 convolution of its shifted copies."""
    with _kernel(True):  # oneDNN's 1x1 kernel: about 7x PyTorch's own here
        y = F.conv2d(shifted_copies(x), weight.reshape(weight.shape[0], 9, 1, 1), bias)
    return y.contiguous(memory_format=fmt)


def conv3x3(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for x [n, C_in, H, W], weight [C, C_in, 3, 3],
    with the output (and the input gradient) in ``memory_format``."""
    if x.device.type != "cpu" or is_functorch_wrapped(x):
        return F.conv2d(x, weight, bias, padding=1)
    if x.shape[1] == 1:
        return _one_channel(x, weight, bias, memory_format)
    if not torch.is_grad_enabled() or not (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        return _forward(x, weight, bias, memory_format)
    return _Conv3x3.apply(x, weight, bias, memory_format)
