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

Deterministic mode (``set_deterministic``, ``deterministic``): the timing differs from process to
process, so two runs with the same seed can pick different kernels and compute different bits.
With the mode on, ``pinned_kernel``'s rule picks instead, from the shapes, the thread count, the
kernels this build has and whether oneDNN has AVX-512 here; never from a clock. Every kernel it
picks gives the same bits on every call and in every process at a fixed thread count (oneDNN's
weight gradient changes with the thread count); ``tests/reliability/test_determinism_kernels.py``
checks two processes. The rule, from the autotuner's picks in fresh processes (Conv4 on 28x28
grey and 84x84 RGB images, 5 to 600 images, 1 and 2 threads) and medians of interleaved timings:

- with AVX-512, oneDNN is fastest for nearly every product (1.05-5x); GEMM only for a few
  images at 3x3 (the weight gradient, and the forward on two threads), by 20-30 us;
- with oneDNN limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2`` on the same machine; as on the AVX2
  machine of docs/performance.md), NNPACK's Winograd forward beats it 1.1-1.8x for 64 input
  channels from 10x10 to 42x42 on one thread (a tie for 80 images at 42x42), and loses at 7x7
  and below and at 3 input channels. On two threads it wins some of those shapes and loses
  others by up to 1.9x (and its thread pool is sized once, at its first call);
- hence forward and input gradient: NNPACK for C_in >= 32, H * W >= 100 and one thread where
  oneDNN lacks AVX-512, else oneDNN, else GEMM; weight gradient: GEMM for at most 64 output
  pixels, else oneDNN. Its cost against autotuning: docs/performance.md, "Cost of determinism".

The backward is made of differentiable convolutions, so ``conv3x3`` can be differentiated to
any order (second-order MAML). Off the CPU, and inside ``torch.func`` transforms, it is plain
``F.conv2d``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F

Kernel = Callable[..., torch.Tensor]
_ONE = [1, 1]


def _onednn_forward(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, padding: int = 1
) -> torch.Tensor:
    return torch.mkldnn_convolution(x, w, b, [padding, padding], _ONE, _ONE, 1)


def _nnpack_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return torch._nnpack_spatial_convolution(x.contiguous(), w, b, _ONE)


def _gemm_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.aten._slow_conv2d_forward(x, w, [3, 3], b, _ONE, _ONE)


def _default_weight_grad(grad, x, w, mask):  # noqa: ANN001, ANN202
    bias_sizes = [w.shape[0]] if mask[2] else None
    return torch.ops.aten.convolution_backward(
        grad, x, w, bias_sizes, _ONE, _ONE, _ONE, False, [0, 0], 1, mask
    )


def _gemm_weight_grad(grad, x, w, mask):  # noqa: ANN001, ANN202
    grad, x = grad.contiguous(), x.contiguous()  # an NCHW kernel; it refuses channels_last
    return torch.ops.aten._slow_conv2d_backward.output_mask(grad, x, w, [3, 3], _ONE, _ONE, mask)


def _available_kernels() -> dict[str, dict[str, Kernel]]:
    """The float32 CPU kernels of each product, called directly (no global switch is touched,
    so threads may run convolutions concurrently). ``convolution_backward`` is oneDNN's weight
    gradient whenever oneDNN is enabled, as it is by default."""
    forward: dict[str, Kernel] = {"gemm": _gemm_forward}
    if torch.backends.mkldnn.is_available():
        forward["onednn"] = _onednn_forward
    if torch._nnpack_available():  # also initialises NNPACK, which its kernel needs
        forward["nnpack"] = _nnpack_forward
    return {
        "forward": forward,
        "weight_grad": {"onednn": _default_weight_grad, "gemm": _gemm_weight_grad},
    }


_KERNELS = _available_kernels()
_choice: dict[tuple, str] = {}
"""Autotuned choices, by ``_key``."""
_pinned: dict[tuple, str] = {}
"""The rule's choices made so far, by ``_key`` (a record for ``chosen_kernels``)."""
_tuning = threading.Lock()
_deterministic = False
#: None: autotune or the rule; a kernel name ("onednn", "nnpack", "gemm"): that kernel wherever
#: it exists (tests, and to compare kernels)
forced_kernel: str | None = None


def _onednn_has_avx512() -> bool:
    """Whether oneDNN runs its AVX-512 kernels here: ATen's CPU capability is AVX512 and
    ``ONEDNN_MAX_CPU_ISA`` does not cap oneDNN below it."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    below = cap != "ALL" and not cap.startswith(("AVX512", "AVX10", "AMX"))
    return torch.backends.cpu.get_cpu_capability() == "AVX512" and not below


#: NNPACK's Winograd kernels beat oneDNN's direct ones only where oneDNN runs AVX2 kernels (a
#: fact of the machine and the environment, fixed for the process)
_NNPACK_FAVOURED = (
    torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") and not _onednn_has_avx512()
)


def set_deterministic(enabled: bool) -> None:
    """Pin the kernel choice to ``pinned_kernel``'s rule (True) or time the kernels (False, the
    default): with the rule, processes with the same thread count compute the same bits."""
    global _deterministic
    _deterministic = bool(enabled)


def is_deterministic() -> bool:
    """Whether kernels are chosen by ``pinned_kernel``'s rule rather than timed."""
    return _deterministic


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """``set_deterministic(enabled)`` inside the block; the previous setting afterwards."""
    before = _deterministic
    set_deterministic(enabled)
    try:
        yield
    finally:
        set_deterministic(before)


def pinned_kernel(product: str, x_shape: Sequence[int], threads: int) -> str:
    """The kernel of deterministic mode for ``product`` (``forward``, the input gradient
    included, or ``weight_grad``) on input x [n, C_in, H, W] with ``threads`` threads.

    forward: NNPACK where oneDNN has no AVX-512 kernels, on one thread, for C_in >= 32 and
    H * W >= 100; else oneDNN; else GEMM. weight_grad: GEMM for at most 64 output pixels (n * H
    * W); else oneDNN (PyTorch's own weight gradient, oneDNN's whenever it is enabled).
    """
    n, c_in, height, width = x_shape
    if product == "weight_grad":
        return "gemm" if n * height * width <= 64 else "onednn"
    available = _KERNELS["forward"]
    if (
        "nnpack" in available and _NNPACK_FAVOURED and threads == 1
        and c_in >= 32 and height * width >= 100
    ):  # fmt: skip
        return "nnpack"
    return "onednn" if "onednn" in available else "gemm"


def chosen_kernels() -> dict[str, str]:
    """The kernel chosen for each product and shape so far, for a run's log: keys such as
    ``"forward 160x64x14x14->64 channels_last t1"`` (input shape, output channels, layout,
    threads), values the kernel, with ``" (timed)"`` after an autotuned one. A shape met in both
    modes shows the rule's kernel."""
    record = {_describe(key): f"{name} (timed)" for key, name in list(_choice.items())}
    record.update({_describe(key): name for key, name in list(_pinned.items())})
    return record


def _describe(key: tuple) -> str:
    product, a_shape, b_shape, (a_strides, _), _, threads = key
    c_out = b_shape[0] if product == "forward" else b_shape[1]
    if a_strides[1] == 1 and a_shape[1] > 1:
        layout = "channels_last"
    elif a_strides[1] == a_shape[2] * a_shape[3]:
        layout = "contiguous"
    else:
        layout = "strided"
    return f"{product} {'x'.join(map(str, a_shape))}->{c_out} {layout} t{threads}"


def _key(product: str, a: torch.Tensor, b: torch.Tensor) -> tuple:
    layout = (tuple(a.stride()), tuple(b.stride()))
    return (product, tuple(a.shape), tuple(b.shape), layout, a.dtype, torch.get_num_threads())


def _pick(product: str, a: torch.Tensor, b: torch.Tensor, run: Callable[[Kernel], object]) -> str:
    """The kernel for (product, shapes): ``forced_kernel``, else the rule in deterministic
    mode, else the one timed fastest on first use."""
    if forced_kernel is not None:
        return forced_kernel
    key = _key(product, a, b)
    if _deterministic:
        if key not in _pinned:
            _pinned[key] = pinned_kernel(product, key[1], key[5])
        return _pinned[key]
    if key not in _choice:
        _choice.setdefault(key, _timed_fastest(product, run))
    return _choice[key]


def _timed_fastest(product: str, run: Callable[[Kernel], object]) -> str:
    """Each candidate run once to warm up and three times timed; the fastest single run wins
    (the least disturbed one)."""
    with _tuning, torch.no_grad():  # one timing at a time, even with several threads
        times = {}
        for name, kernel in _KERNELS[product].items():
            run(kernel)
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                run(kernel)
                runs.append(time.perf_counter() - start)
            times[name] = min(runs)
    return min(times, key=times.__getitem__)


def _call(product: str, a: torch.Tensor, b: torch.Tensor, *args: object):  # noqa: ANN202
    """Run ``product`` (``forward``: args x, w, b; ``weight_grad``: grad, x, w, mask) on the
    chosen kernel; float32 only, other dtypes take PyTorch's own choice."""
    kernels = _KERNELS[product]
    if a.dtype != torch.float32:
        name = None
    else:
        name = _pick(product, a, b, lambda kernel: kernel(*args))
    if name not in kernels:
        return F.conv2d(*args, padding=1) if product == "forward" else _default_weight_grad(*args)
    return kernels[name](*args)


def _forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, fmt: torch.memory_format
) -> torch.Tensor:
    """The convolution, returned in memory format ``fmt`` whichever kernel ran (NNPACK returns
    NCHW for channels_last input, and pooling and BatchNorm are several times slower on NCHW)."""
    return _call("forward", x, weight, x, weight, bias).contiguous(memory_format=fmt)


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
            mask = [False, True, ctx.has_bias and ctx.needs_input_grad[2]]
            _, grad_w, grad_b = _call("weight_grad", x, grad, grad, x, weight, mask)
        return grad_x, grad_w, grad_b, None


_PORTABLE = threading.local()


@contextmanager
def portable() -> Iterator[None]:
    """Run the encoders on their portable paths (plain operators, BatchNorm statistics in
    float64) in this thread: what an exported graph computes, to compare against it."""
    before = getattr(_PORTABLE, "on", False)
    _PORTABLE.on = True
    try:
        yield
    finally:
        _PORTABLE.on = before


def is_exporting() -> bool:
    """Whether the encoders must take their portable paths: under a graph export
    (``torch.export``, ``torch.onnx.export``), where only plain operators may run, or
    ``portable()``."""
    if getattr(_PORTABLE, "on", False) or torch.onnx.is_in_onnx_export():
        return True
    exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(exporting is not None and exporting())


def is_functorch_wrapped(x: torch.Tensor) -> bool:
    """Whether ``x`` is seen through a torch.func transform (``vmap``, ``grad``)."""
    return torch._C._functorch.is_functorch_wrapped_tensor(x)


def shifted_copies(x: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """The 3x3 neighbourhoods of a one-channel image as channels: [n, 1, H, W] -> [n, 9, H, W]
    (channels_last); channel ``3 * i + j`` is the zero-padded image shifted by (i - 1, j - 1),
    minus ``offsets`` [n] (one value per image, padding included) when given."""
    _, _, height, width = x.shape
    padded = F.pad(x[:, 0], (1, 1, 1, 1))
    if offsets is not None:
        padded = padded - offsets[:, None, None]
    copies = [padded[:, i : i + height, j : j + width] for i in range(3) for j in range(3)]
    return torch.stack(copies, -1).permute(0, 3, 1, 2)


def one_channel_conv(
    copies: torch.Tensor, filters: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """The 1x1 convolution of ``shifted_copies`` [n, 9, H, W] with filters [C, 9, 1, 1]: the 3x3
    convolution of the one-channel image, [n, C, H, W] in channels_last."""
    onednn = "onednn" in _KERNELS["forward"]
    if copies.device.type == "cpu" and copies.dtype == torch.float32 and onednn:
        # oneDNN's 1x1 kernel: 7x PyTorch's own here
        return _onednn_forward(copies, filters, bias, padding=0)
    return F.conv2d(copies, filters, bias).contiguous(memory_format=torch.channels_last)


def autocasting(x: torch.Tensor) -> bool:
    """Whether autocast (mixed precision) is on for ``x``'s device in this thread: the engine's
    float32 kernels then step aside for PyTorch's own (false on devices autocast does not know,
    such as ``meta``)."""
    try:
        return torch.is_autocast_enabled(x.device.type)
    except RuntimeError:
        return False


def conv3x3(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for x [n, C_in, H, W], weight [C, C_in, 3, 3],
    with the output (and the input gradient) in ``memory_format``."""
    if x.device.type != "cpu" or is_functorch_wrapped(x) or autocasting(x):
        return F.conv2d(x, weight, bias, padding=1)
    if x.shape[1] == 1:
        filters = weight.reshape(weight.shape[0], 9, 1, 1)
        y = one_channel_conv(shifted_copies(x), filters, bias)
        return y.contiguous(memory_format=memory_format)
    if not torch.is_grad_enabled() or not (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        return _forward(x, weight, bias, memory_format)
    return _Conv3x3.apply(x, weight, bias, memory_format)
