"""Conv4's block for inference without autograd: conv -> transductive BatchNorm -> max-pool -> ReLU.

On a CPU the block is bound by memory traffic, not arithmetic: at 28x28 the conv output of one
task's 80 images is 16 MB, and the plain sequence writes it once and reads it three times
(BatchNorm statistics, normalisation, max-pool). This block computes the same function while
each small chunk of conv output is still in cache, so the full-resolution activations are
never written to memory:

1. BatchNorm with batch statistics is, per channel c, ``y -> s_c * y + t_c`` with
   ``s_c = w_c / sigma_c``. For ``s_c >= 0`` it commutes with max-pooling. Channels with
   ``w_c < 0`` are flipped by negating their conv filter and bias (then ``s_c = |w_c| / sigma_c``
   on the flipped output), so every channel commutes: ``pool(BN(y)) = BN(pool(y'))``.
2. Per image, the sum and the sum of squares of each channel are taken from the chunk in cache;
   each group's mean and variance are combined from them in float64.
3. The chunk is max-pooled; normalisation and ReLU then run on the 4x smaller pooled tensor.

On one-channel (grey) input the first block does better still (``_one_channel_block``): the
statistics are known before any conv output exists, so BatchNorm folds into the filters.

It matches the autograd path to float rounding (tests/engine/test_fused_block.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .kernels import conv3x3, one_channel_conv, shifted_copies

#: bytes of conv output per chunk on the CPU (16 images of 64 x 28 x 28 floats): small enough to
#: stay in cache, large enough that per-call overheads stay small.
CPU_CHUNK_BYTES = 16 * 64 * 28 * 28 * 4


def _max_pool2_nhwc(y: torch.Tensor, out: torch.Tensor) -> None:
    """2x2 max-pool (stride 2, floor) of NHWC ``y`` [n, H, W, C] into NHWC ``out``."""
    n, h, w, c = y.shape
    ho, wo = h // 2, w // 2
    v = y[:, : 2 * ho, : 2 * wo].reshape(n, ho, 2, wo, 2, c)
    cols = torch.maximum(v[:, :, :, :, 0], v[:, :, :, :, 1])  # [n, ho, 2, wo, C]
    torch.maximum(cols[:, :, 0], cols[:, :, 1], out=out)


def conv_bn_pool_relu_inference(
    h: torch.Tensor,
    conv_weight: torch.Tensor,
    conv_bias: torch.Tensor,
    bn_weight: torch.Tensor,
    bn_bias: torch.Tensor,
    groups: int,
    eps: float,
) -> torch.Tensor:
    """``relu(max_pool2d(BN(conv(h)), 2))`` with per-group batch statistics, no autograd.

    h: [G * n, C_in, H, W] (any memory format); conv_weight [C, C_in, 3, 3] (padding 1);
    conv_bias, bn_weight, bn_bias: [C]. Groups are consecutive blocks of n images.
    Returns [G * n, C, H // 2, W // 2] in channels_last.
    """
    if torch.is_grad_enabled():
        raise RuntimeError("conv_bn_pool_relu_inference has no backward; call it under no_grad")
    if h.shape[1] == 1:
        return _one_channel_block(h, conv_weight, conv_bias, bn_weight, bn_bias, groups, eps)
    total, _, height, width = h.shape
    channels = conv_weight.shape[0]
    sign = torch.where(bn_weight < 0, -1.0, 1.0).to(conv_weight.dtype)
    weight = conv_weight * sign[:, None, None, None]
    bias = conv_bias * sign
    h = h.contiguous(memory_format=torch.channels_last)
    image_bytes = channels * height * width * h.element_size()
    chunk = max(1, CPU_CHUNK_BYTES // image_bytes) if h.device.type == "cpu" else total
    sums = h.new_empty(2, total, channels)
    pooled = h.new_empty(total, height // 2, width // 2, channels)  # NHWC
    for i in range(0, total, chunk):
        y = conv3x3(h[i : i + chunk], weight, bias, torch.channels_last).permute(0, 2, 3, 1)  # NHWC
        torch.sum(y, (1, 2), out=sums[0, i : i + chunk])
        torch.sum(y * y, (1, 2), out=sums[1, i : i + chunk])
        _max_pool2_nhwc(y, pooled[i : i + chunk])
    count = total // groups * height * width  # values per channel in one group
    moments = sums.double().view(2, groups, -1, channels).sum(2) / count
    mean, var = moments[0], (moments[1] - moments[0] ** 2).clamp_min(0)  # [G, C]
    scale = bn_weight.abs().double() * torch.rsqrt(var + eps)
    shift = bn_bias.double() - mean * scale
    out = pooled.view(groups, -1, channels)
    out = torch.addcmul(shift[:, None].to(out.dtype), out, scale[:, None].to(out.dtype))
    return F.relu_(out).view(total, height // 2, width // 2, channels).permute(0, 3, 1, 2)


def _one_channel_block(
    h: torch.Tensor,
    conv_weight: torch.Tensor,
    conv_bias: torch.Tensor,
    bn_weight: torch.Tensor,
    bn_bias: torch.Tensor,
    groups: int,
    eps: float,
) -> torch.Tensor:
    """The block on one-channel input, with BatchNorm folded into the filters.

    Channel c of the conv output at a pixel is ``w_c . p + b_c``, with p the pixel's nine
    neighbourhood values (``shifted_copies``). Over a group its mean is ``w_c . mu + b_c`` and its
    variance ``w_c^T Sigma w_c``, where mu and Sigma are the mean and covariance of p over the
    group's pixels, so BatchNorm is an affine map of each filter: ``BN(conv(p)) =
    (s * w) . (p - mu) + beta`` with ``s = gamma / sigma``. Each chunk then runs conv -> max-pool
    -> ReLU in cache and nothing else touches the full-resolution output. The neighbourhoods are
    taken of the image minus the group's mean pixel (which the formula does not see), so the
    9 x 9 float32 product that gives Sigma does not lose digits to a large mean.
    Shapes as ``conv_bn_pool_relu_inference``.
    """
    total, _, height, width = h.shape
    channels, n = conv_weight.shape[0], total // groups
    offsets = h.reshape(groups, -1).mean(1)  # [G]: each group's mean pixel
    w = conv_weight.reshape(channels, 9).double()
    pooled = h.new_empty(total, height // 2, width // 2, channels)  # NHWC
    chunk = max(1, CPU_CHUNK_BYTES // (channels * height * width * h.element_size()))
    chunk = chunk if h.device.type == "cpu" else n
    for g in range(groups):
        start, stop = g * n, (g + 1) * n
        copies = shifted_copies(h[start:stop], offsets[g].expand(n))  # [n, 9, H, W], NHWC
        p = copies.permute(0, 2, 3, 1).reshape(-1, 9)  # [n * H * W, 9]
        mu = p.mean(0).double()  # torch sums float32 pairwise: no digits lost over the pixels
        sigma = (p.T @ p).double() / p.shape[0] - torch.outer(mu, mu)
        var = ((w @ sigma) * w).sum(1).clamp_min(0)
        scale = bn_weight.double() * torch.rsqrt(var + eps)
        weight = (scale[:, None] * w).to(h.dtype).view(channels, 9, 1, 1)
        bias = (bn_bias.double() - scale * (w @ mu)).to(h.dtype)
        for i in range(start, stop, chunk):
            j = min(i + chunk, stop)
            y = one_channel_conv(copies[i - start : j - start], weight, bias)
            y = y.permute(0, 2, 3, 1)  # NHWC
            _max_pool2_nhwc(y, pooled[i:j])
            F.relu_(pooled[i:j])
    return pooled.permute(0, 3, 1, 2)


def one_channel_block(
    h: torch.Tensor,
    conv_weight: torch.Tensor,
    conv_bias: torch.Tensor,
    bn_weight: torch.Tensor,
    bn_bias: torch.Tensor,
    groups: int,
    eps: float,
) -> torch.Tensor:
    """The differentiable twin of ``_one_channel_block`` for training: the same folding of
    BatchNorm into each group's filters, built from differentiable operations (so first and
    second derivatives flow through the moments), with no full-resolution BatchNorm or
    concatenation in the forward or backward pass. h [G * n, 1, H, W] -> [G * n, C, H/2, W/2]."""
    total, _, height, width = h.shape
    channels, n = conv_weight.shape[0], total // groups
    w = conv_weight.reshape(channels, 9)
    outputs = []
    for g in range(groups):
        x = h[g * n : (g + 1) * n]
        with torch.no_grad():
            offset = x.mean()  # any constant: the formula does not see it; it keeps digits
        copies = shifted_copies(x, offset.expand(n))  # [n, 9, H, W], channels_last
        p = copies.permute(0, 2, 3, 1).reshape(-1, 9)  # [n * H * W, 9]
        mu = p.mean(0)
        sigma = p.T @ p / p.shape[0] - torch.outer(mu, mu)
        var = ((w @ sigma) * w).sum(1)
        scale = bn_weight * torch.rsqrt(var + eps)
        mean = w @ mu + conv_bias  # of the conv output, less the offset's contribution
        bias = bn_bias + scale * (conv_bias - mean)
        y = one_channel_conv(copies, (scale[:, None] * w).view(channels, 9, 1, 1), bias)
        outputs.append(F.relu(F.max_pool2d(y, 2)))
    return outputs[0] if groups == 1 else torch.cat(outputs)
