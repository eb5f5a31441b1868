"""MAML (Finn et al., 2017): adapt by k gradient steps on the support loss.

theta' = theta - alpha * grad_theta L_S(f_theta), repeated ``inner_steps`` times. The
meta-gradient flows through the steps (second order) unless ``first_order``; ``adapt`` picks
whether every parameter adapts or the linear head only. The network is called through
``torch.func.functional_call``, so adapted parameters are plain tensors and no module is mutated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..config import MAMLConfig
from ..models import Conv4
from .base import Method, TaskParams


class EncoderWithHead(nn.Module):
    """Encoder followed by a linear layer: [G, n, C, H, W] -> logits [G, n, N]."""

    def __init__(self, encoder: nn.Module, n_way: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, n_way)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        """``step``: the inner-loop step, for the ``per_step`` BatchNorm policy."""
        if isinstance(self.encoder, Conv4):
            return self.head(self.encoder(x, step))
        return self.head(self.encoder(x))


class MAML(Method):
    def __init__(self, encoder: nn.Module, n_way: int, cfg: MAMLConfig) -> None:
        super().__init__(n_way)
        self.cfg = cfg
        self.net = EncoderWithHead(encoder, n_way)

    @property
    def steps(self) -> int:
        if not self.training and self.cfg.inner_steps_test is not None:
            return self.cfg.inner_steps_test
        return self.cfg.inner_steps

    def adapted_names(self) -> list[str]:
        names = [n for n, _ in self.net.named_parameters()]
        return names if self.cfg.adapt == "all" else [n for n in names if n.startswith("head.")]

    def adapt_task(self, support_x: torch.Tensor, support_y: torch.Tensor) -> TaskParams:
        """One task: support_x [N*K, C, H, W], support_y [N*K] -> its adapted parameters."""
        params: TaskParams = dict(self.net.named_parameters())
        names = self.adapted_names()
        create_graph = self.training and not self.cfg.first_order
        with torch.enable_grad():
            for step in range(self.steps):
                logits = functional_call(self.net, params, (support_x[None], step))[0]
                loss = F.cross_entropy(logits, support_y)
                grads = torch.autograd.grad(
                    loss, [params[n] for n in names], create_graph=create_graph
                )
                params = dict(params)
                for name, grad in zip(names, grads):
                    step = params[name] - self.cfg.inner_lr * grad
                    params[name] = step if self.training else step.detach().requires_grad_()
        if not self.training:
            params = {name: p.detach() for name, p in params.items()}
        return params

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> TaskParams:
        tasks = [self.adapt_task(x, y) for x, y in zip(support_x, support_y)]
        return {name: torch.stack([t[name] for t in tasks]) for name in tasks[0]}

    def predict(self, query_x: torch.Tensor, params: TaskParams) -> torch.Tensor:
        task_params = ({n: p[b] for n, p in params.items()} for b in range(query_x.shape[0]))
        logits = [
            functional_call(self.net, p, (query_x[b : b + 1], self.steps))
            for b, p in enumerate(task_params)
        ]
        return torch.cat(logits)
