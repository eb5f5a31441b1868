"""The classifier-update magnitude (the paper's Table 3) on cases with a known answer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hypermaml.config import HyperMAMLConfig, MAMLConfig
from hypermaml.data import TaskShape
from hypermaml.experiments.updates import update_norms
from hypermaml.methods import MAML, HyperMAML, ProtoNet
from hypermaml.models import Conv4
from hypermaml.models.identity import IdentityEncoder

N_WAY = 3


def test_hypermaml_update_is_the_hypernetwork_output(tiny_images):
    """A hypernetwork whose last layer outputs the constant c everywhere updates every weight
    and bias by c: norms c * sqrt(N * D) and c * sqrt(N)."""
    torch.manual_seed(0)
    model = HyperMAML(Conv4(1, 16, width=8), N_WAY, HyperMAMLConfig(hn_width=16))
    last = model.hypernet[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(0.5)
    norms = update_norms(model, tiny_images, TaskShape(N_WAY, 1, 2), n_tasks=5, batch_size=2)
    dim = model.encoder.out_dim
    assert norms.n_tasks == 5
    assert norms.weight_mean == pytest.approx(0.5 * math.sqrt(N_WAY * dim))
    assert norms.bias_mean == pytest.approx(0.5 * math.sqrt(N_WAY))
    assert norms.weight_ci95 == pytest.approx(0.0, abs=1e-6)


def test_maml_one_step_update_is_minus_alpha_times_the_gradient():
    """On features (identity encoder) the head's one-step update is
    -alpha * (softmax(X W^T + b) - Y)^T X / M for the weight and -alpha * mean(softmax - Y)."""
    torch.manual_seed(0)
    dim, alpha = 4, 0.3
    model = MAML(IdentityEncoder(dim), N_WAY, MAMLConfig(inner_steps=1, inner_lr=alpha))
    model.eval()
    x = torch.randn(2, 6, dim)
    y = torch.tensor([0, 0, 1, 1, 2, 2]).expand(2, -1)
    delta_w, delta_b = model.classifier_update(x, y)
    head = model.head
    probs = F.softmax(x @ head.weight.T + head.bias, -1)
    error = probs - F.one_hot(y, N_WAY).float()  # [B, M, N]
    torch.testing.assert_close(delta_w, -alpha * error.transpose(1, 2) @ x / 6)
    torch.testing.assert_close(delta_b, -alpha * error.mean(1))


def test_protonet_has_no_classifier_update(tiny_images):
    model = ProtoNet(Conv4(1, 16, width=8), N_WAY)
    with pytest.raises(ValueError, match="no classifier"):
        update_norms(model, tiny_images, TaskShape(N_WAY, 1, 2), n_tasks=2)
