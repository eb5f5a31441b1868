"""MAML (Finn et al., 2017): adapt by k gradient steps on the support loss.

theta' = theta - alpha * grad_theta L_S(f_theta), repeated ``inner_steps`` times. The
meta-gradient flows through the steps (second order) unless ``first_order``; ``adapt`` picks
whether every parameter adapts, the linear head only, or a hyper backbone's layer embeddings and
the head. The network is called with the adapted parameters as arguments (the encoder contract's
``params``), so they are plain tensors and no shared module is mutated, not even for the
duration of a call: any registered encoder works, in task threads too.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MAMLConfig
from ..models.encoder import Encoder
from .base import Method, TaskParams


class MAML(Method):
    """``encoder`` followed by the linear ``head``, both adapted by the inner loop (``adapt``)."""

    legacy_keys = {"net.encoder.": "encoder.", "net.head.": "head."}

    def __init__(self, encoder: Encoder, n_way: int, cfg: MAMLConfig) -> None:
        super().__init__(n_way)
        self.cfg = cfg
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, n_way)
        nn.init.zeros_(self.head.bias)

    def logits(
        self, x: torch.Tensor, step: int = 0, params: TaskParams | None = None
    ) -> torch.Tensor:
        """[G, n, C, H, W] -> logits [G, n, N]. ``step``: the inner-loop step, for the
        ``per_step`` BatchNorm policy; ``params``: tensors in place of the parameters of the
        same names (``head.weight``, ``encoder.convs.0.weight``, ...)."""
        params = params or {}
        prefix = "encoder."
        inner = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
        h = self.encoder(x, step, inner)
        weight = params.get("head.weight", self.head.weight)
        return F.linear(h, weight, params.get("head.bias", self.head.bias))

    def set_test_steps(self, steps: int | None) -> None:
        """Adapt with ``steps`` inner steps at test time (None: keep the configured count)."""
        if steps is not None:
            self.cfg = replace(self.cfg, inner_steps_test=steps)

    @property
    def steps(self) -> int:
        if not self.training and self.cfg.inner_steps_test is not None:
            return self.cfg.inner_steps_test
        return self.cfg.inner_steps

    def adapted_names(self) -> list[str]:
        """Names of the parameters the inner loop changes (``cfg.adapt``)."""
        names = [n for n, _ in self.named_parameters()]
        if self.cfg.adapt == "all":
            return names
        head = [n for n in names if n.startswith("head.")]
        if self.cfg.adapt == "head":
            return head
        embeddings = [n for n in names if n.endswith(".embedding")]
        if not embeddings:
            raise ValueError(
                "method.adapt=embeddings needs a hyper backbone with trainable layer embeddings "
                "(model.hyper: stage or layer, without frozen embeddings)"
            )
        return embeddings + head

    def batching(self, device: torch.device) -> str:
        """``loop`` or ``vmap``: the configured choice, or for ``auto`` the faster on ``device``
        (``vmap`` on CUDA, when the encoder computes each task alone: not with running
        BatchNorm statistics, which ``vmap`` cannot update per task)."""
        if self.cfg.batching != "auto":
            return self.cfg.batching
        return "vmap" if device.type == "cuda" and self.tasks_are_independent() else "loop"

    def _inner_loop(self, support_x: torch.Tensor, support_y: torch.Tensor, grad_fn) -> TaskParams:
        """k steps on one task (support_x [N*K, C, H, W]); ``grad_fn(loss_fn, params)`` gives
        the gradient of ``loss_fn`` at ``params`` (autograd in the loop, torch.func in vmap)."""
        params: TaskParams = dict(self.named_parameters())
        names = self.adapted_names()
        for step in range(self.steps):

            def support_loss(
                adapted: TaskParams, step: int = step, params: TaskParams = params
            ) -> torch.Tensor:
                logits = self.logits(support_x[None], step, {**params, **adapted})
                return F.cross_entropy(logits[0], support_y)

            grads = grad_fn(support_loss, {n: params[n] for n in names})
            params = dict(params)
            for name in names:
                params[name] = params[name] - self.cfg.inner_lr * grads[name]
        return params

    def _autograd_grad(self, loss_fn, params: TaskParams) -> TaskParams:
        """Gradient by torch.autograd, differentiable when meta-training second order."""
        create_graph = self.training and not self.cfg.first_order
        if not self.training:  # evaluation: each step starts from a fresh leaf
            params = {n: p.detach().requires_grad_() for n, p in params.items()}
        with torch.enable_grad():
            grads = torch.autograd.grad(
                loss_fn(params), list(params.values()), create_graph=create_graph
            )
        return dict(zip(params, grads))

    def _func_grad(self, loss_fn, params: TaskParams) -> TaskParams:
        """Gradient by torch.func.grad (works under vmap); first order drops its graph."""
        if not self.training:
            params = {n: p.detach() for n, p in params.items()}
        grads = torch.func.grad(loss_fn)(params)
        if self.cfg.first_order or not self.training:
            grads = {n: g.detach() for n, g in grads.items()}
        return grads

    def adapt_task(self, support_x: torch.Tensor, support_y: torch.Tensor) -> TaskParams:
        """One task: support_x [N*K, C, H, W], support_y [N*K] -> its adapted parameters."""
        params = self._inner_loop(support_x, support_y, self._autograd_grad)
        if not self.training:
            params = {name: p.detach() for name, p in params.items()}
        return params

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> TaskParams:
        if self.batching(support_x.device) == "vmap":
            task = partial(self._inner_loop, grad_fn=self._func_grad)
            params = torch.func.vmap(task, randomness="same")(support_x, support_y)
            if not self.training:
                params = {name: p.detach() for name, p in params.items()}
            return params
        tasks = [self.adapt_task(x, y) for x, y in zip(support_x, support_y)]
        return {name: torch.stack([t[name] for t in tasks]) for name in tasks[0]}

    def predict(self, query_x: torch.Tensor, params: TaskParams) -> torch.Tensor:
        if self.batching(query_x.device) == "vmap":

            def task_logits(x: torch.Tensor, p: TaskParams) -> torch.Tensor:
                return self.logits(x[None], self.steps, p)[0]

            return torch.func.vmap(task_logits, randomness="same")(query_x, params)
        task_params = ({n: p[b] for n, p in params.items()} for b in range(query_x.shape[0]))
        logits = [self.logits(query_x[b : b + 1], self.steps, p) for b, p in enumerate(task_params)]
        return torch.cat(logits)

    def classifier_update(
        self, support_x: torch.Tensor, support_y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's change after the inner steps (with ``adapt: head`` or ``all`` alike)."""
        params = self.adapt(support_x, support_y)
        return params["head.weight"] - self.head.weight, params["head.bias"] - self.head.bias
