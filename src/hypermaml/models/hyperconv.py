"""Hyper-convolutions: convolutions whose weights a one-layer convolutional hypernetwork generates.

A layer with C_in input and C_out output channels and a k x k kernel owns an embedding
E [C_out, d, k, k] (d = C_in by default); a hypernetwork H [C_in, d, k, k] turns it into the
layer's weight (the HyperResNets paper, section 3):

    W = conv2d(E, H, padding=k // 2)  # E as C_out images of d channels -> [C_out, C_in, k, k]

H is bias-free unless ``bias=True`` (the "with bias" ablation of the paper's Table 1). A
hypernetwork may be shared by several layers with the same C_in (variant 1) or belong to one
layer (variant 2). A shared one is registered once, by the model that owns it (a ``hypernets``
ModuleDict), and each layer keeps a plain reference, so ``state_dict`` holds every tensor under
one name (``safetensors.torch.save_file`` refuses shared tensors).

Initialisation (He variance for the generated weights). With zero padding, kernel position p of
W sums n_p = #{a : 0 <= p + a - k//2 < k} taps along each axis, d * n_p * n_q terms in all. The
mean of n_p * n_q over the k^2 positions is s^2 / k^2 with s = sum_p n_p = k^2 - (k//2)(k//2 + 1)
(s = 7 for k = 3). With zero-mean independent E and H,

    mean over positions of Var(W) = Var(E) * Var(H) * d * s^2 / k^2,

so we draw E ~ N(0, 2 / (C_in k^2)) (He, exactly a plain conv's init when d = C_in) and
H ~ N(0, k^2 / (d s^2)) (variance-preserving over the padded taps); their product gives the He
variance 2 / (C_in k^2) on average (centre taps more, corner taps less: n_p n_q k^2 / s^2 times).
Var(H) depends on H's shape alone, so the rule holds for every layer sharing it.

Compression (the HyperResNets paper, section 5.3): with ``frozen_seed`` the embedding is not a
parameter but a non-persistent buffer drawn, with the same distribution, from a
``torch.Generator`` seeded by (seed, layer index); it is not saved and is regenerated exactly on
construction.
"""

import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


def padded_taps(kernel_size: int) -> int:
    """s: the sum over kernel positions p of n_p, the taps a zero-padded conv sums along an axis."""
    half = kernel_size // 2
    return kernel_size * kernel_size - half * (half + 1)


def embedding_seed(seed: int, layer_index: int) -> int:
    """A 63-bit generator seed for layer ``layer_index`` of a network compressed with ``seed``."""
    digest = hashlib.sha256(f"hyperconv-embedding:{seed}:{layer_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class HyperNetwork(nn.Module):
    """A one-layer convolutional hypernetwork: weight [C_in, d, k, k], bias [C_in] if ``bias``.

    ``forward``: embedding [C_out, d, k, k] -> generated weight [C_out, C_in, k, k]."""

    def __init__(
        self, in_channels: int, embed_dim: int, kernel_size: int, bias: bool = False
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a 'same' hypernetwork), got {kernel_size}")
        self.in_channels, self.embed_dim, self.kernel_size = in_channels, embed_dim, kernel_size
        self.weight = nn.Parameter(torch.empty(in_channels, embed_dim, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(in_channels)) if bias else None
        std = kernel_size / (padded_taps(kernel_size) * math.sqrt(embed_dim))
        nn.init.normal_(self.weight, 0.0, std)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """[C_out, d, k, k] -> [C_out, C_in, k, k]."""
        return F.conv2d(embedding, self.weight, self.bias, padding=self.kernel_size // 2)

    def extra_repr(self) -> str:
        c, d, k = self.in_channels, self.embed_dim, self.kernel_size
        return f"in_channels={c}, embed_dim={d}, kernel_size={k}, bias={self.bias is not None}"


class HyperConv2d(nn.Module):
    """A bias-free conv with a generated weight; ``forward``: [B, C_in, H, W] -> [B, C_out, h, w].

    ``hypernet``: a shared HyperNetwork (registered by its owner, referenced here) or None for a
    hypernetwork of this layer's own (registered as the child ``hypernet``; ``bias`` applies to
    it). ``frozen_seed``: draw the embedding from (``frozen_seed``, ``layer_index``) and freeze it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        hypernet: HyperNetwork | None = None,
        embed_dim: int | None = None,
        bias: bool = False,
        frozen_seed: int | None = None,
        layer_index: int = 0,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.owns_hypernet = hypernet is None
        if hypernet is None:
            self.hypernet = HyperNetwork(in_channels, embed_dim or in_channels, kernel_size, bias)
        else:
            expected = (in_channels, embed_dim or hypernet.embed_dim, kernel_size)
            if (hypernet.in_channels, hypernet.embed_dim, hypernet.kernel_size) != expected:
                raise ValueError(
                    f"a shared hypernetwork of {hypernet.extra_repr()} cannot generate weights for"
                    f" a conv with {in_channels} input channels, embed_dim {expected[1]}, kernel"
                    f" {kernel_size}: share one only among layers of the same C_in, d and k"
                )
            # a plain reference, not a child: the owner registers the shared hypernetwork once
            object.__setattr__(self, "hypernet", hypernet)
        d = self.hypernet.embed_dim
        shape = (out_channels, d, kernel_size, kernel_size)
        std = math.sqrt(2.0 / (in_channels * kernel_size * kernel_size))
        self.frozen_seed, self.layer_index = frozen_seed, layer_index
        if frozen_seed is None:
            self.embedding = nn.Parameter(torch.empty(shape))
            nn.init.normal_(self.embedding, 0.0, std)
        else:
            frozen = torch.empty(shape)  # on the default device (meta when only counting)
            if frozen.device.type != "meta":
                g = torch.Generator().manual_seed(embedding_seed(frozen_seed, layer_index))
                frozen.copy_(torch.randn(shape, generator=g, device="cpu") * std)
            self.register_buffer("embedding", frozen, persistent=False)

    _memo: dict[str, torch.Tensor] | None = None

    @property
    def weight(self) -> torch.Tensor:
        """The generated weight [C_out, C_in, k, k], recomputed (with autograd) on every access,
        or once per ``generate_once`` block."""
        if self._memo is None:
            return self.hypernet(self.embedding)
        if "weight" not in self._memo:
            self._memo["weight"] = self.hypernet(self.embedding)
        return self._memo["weight"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, None, self.stride, self.padding)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size},"
            f" stride={self.stride}, padding={self.padding}, shared={not self.owns_hypernet}"
        )
        if self.frozen_seed is not None:
            text += f", frozen_seed={self.frozen_seed}, layer_index={self.layer_index}"
        return text


def hyper_layers(model: nn.Module) -> list[HyperConv2d]:
    """Every HyperConv2d of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, HyperConv2d)]


@contextmanager
def generate_once(model: nn.Module) -> Iterator[None]:
    """Within the block every HyperConv2d of ``model`` generates its weight once: a training
    step's forward pass and ``generated_weight_penalty`` then share the generated tensors (and
    their backward) instead of generating every weight twice."""
    layers = hyper_layers(model)
    for layer in layers:
        layer._memo = {}
    try:
        yield
    finally:
        for layer in layers:
            layer._memo = None


def generated_weight_penalty(model: nn.Module) -> torch.Tensor:
    """Sum over the HyperConv2d layers of ||W||^2 of their generated weights (a scalar; 0 when
    there are none). The coefficient (6.25e-5 in the paper) is the trainer's to apply."""
    layers = hyper_layers(model)
    if not layers:
        p = next(model.parameters(), None)
        return torch.zeros((), device=None if p is None else p.device)
    return torch.stack([layer.weight.pow(2).sum() for layer in layers]).sum()


class ParameterGroups(NamedTuple):
    """``hyper``: embeddings and hypernetworks (regularised through ``generated_weight_penalty``);
    ``plain``: every other trainable parameter (ordinary weight decay)."""

    hyper: list[nn.Parameter]
    plain: list[nn.Parameter]


def parameter_groups(model: nn.Module) -> ParameterGroups:
    """Split the trainable parameters of ``model``, each once, shared hypernetworks included."""
    registered = {id(p) for p in model.parameters()}
    hyper_ids: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, HyperNetwork):
            hyper_ids.update(id(p) for p in module.parameters())
        elif isinstance(module, HyperConv2d):
            shared = [id(p) for p in module.hypernet.parameters()]
            if not registered.issuperset(shared):
                raise ValueError(
                    f"the shared hypernetwork of layer {name!r} is not registered in the model, so"
                    " no optimizer would train it: register it once in the model (a ``hypernets``"
                    " ModuleDict), as the networks of resnets.py do"
                )
            hyper_ids.update(shared)
            hyper_ids.add(id(module.embedding))
    groups = ParameterGroups([], [])
    for p in model.parameters():  # unique parameters, in registration order
        if p.requires_grad:
            (groups.hyper if id(p) in hyper_ids else groups.plain).append(p)
    return groups
