"""The encoder contract that every method speaks to, and nothing else.

An encoder maps grouped images to embeddings: ``forward(x, step=0, params=None)`` takes
``x`` [G, n, C, H, W] (G groups: the support or query set of each task) and returns
[G, n, ``out_dim``]. ``params``, when given, are tensors used in place of the encoder's own
parameters of the same names (what MAML adapts); the module itself is never changed, so task
threads may call one encoder with different ``params`` at once. ``step`` is the inner-loop step,
for the per-step BatchNorm policy. A new backbone subclasses ``Encoder``, implements ``embed``
(or ``forward`` when it takes ``params`` natively, as the fast ``Conv4`` does), sets ``out_dim``,
and is registered in ``models/build.py``; no method changes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call

from ..engine.replicas import thread_replica


def _running(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")


class Encoder(nn.Module):
    """Base of every encoder; see the module docstring for the contract."""

    out_dim: int
    """Size D of the embedding of one image."""
    network_prefix: str = ""
    """Where the tensors of a classifier network of the same architecture sit in this encoder's
    ``state_dict`` (``load_network``)."""

    def forward(
        self,
        x: torch.Tensor,
        step: int = 0,
        params: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """[G, n, C, H, W] -> [G, n, out_dim]; ``params`` by name in place of the parameters."""
        if params:  # swapped into this thread's replica: same tensors, own module objects
            return functional_call(thread_replica(self), dict(params), (x, step))
        return self.embed(x, step)

    def embed(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        """[G, n, C, H, W] -> [G, n, out_dim] with the encoder's own parameters."""
        raise NotImplementedError(f"{type(self).__name__} implements neither embed nor forward")

    def network_free_keys(self) -> set[str]:
        """Tensors a classifier network has no counterpart for; ``load_network`` keeps them."""
        return set()

    @torch.no_grad()
    def load_network(self, network_state: Mapping[str, torch.Tensor]) -> int:
        """Copy the weights of a trained classifier network of the same architecture
        (``models.build.build_network``; its ``fc`` head is dropped) into this encoder; returns
        the number of tensors copied. Running BatchNorm statistics the encoder does not keep are
        skipped; per-step BatchNorm sets all start from the network's one; tensors the network
        has no counterpart for (``network_free_keys``: Conv4's convolution biases) are set to
        zero, so that the encoder computes the network's function. Raises ValueError
        naming a tensor that has no place here, or a place left without a value."""
        target = self.state_dict()
        loaded: dict[str, torch.Tensor] = {}
        for key, value in network_state.items():
            name = self.network_prefix + key
            if key.startswith("fc.") or (_running(key) and name not in target):
                continue
            if name not in target:
                raise ValueError(f"{key} has no place in this encoder")
            shape = target[name].shape
            if value.shape != shape:
                if value.shape != shape[1:]:  # per-step BatchNorm sets: one copy per step
                    raise ValueError(f"{key} is {tuple(value.shape)}, the encoder's {tuple(shape)}")
                value = value.expand(shape)
            loaded[name] = value
        left = [k for k in target if k not in loaded and k not in self.network_free_keys()]
        if left:
            raise ValueError(f"the network holds no weights for {left[:3]} of this encoder")
        free = {k: torch.zeros_like(target[k]) for k in self.network_free_keys() if k in target}
        self.load_state_dict({**target, **free, **loaded})
        return len(loaded)
