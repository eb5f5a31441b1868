"""The encoder contract: any encoder that implements it works under every method, unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from hypermaml.config import HyperMAMLConfig, MAMLConfig
from hypermaml.data import TaskBatch
from hypermaml.methods import MAML, HyperMAML, ProtoNet
from hypermaml.models import Conv4, Encoder, GroupedEncoder
from hypermaml.models.conv4net import Conv4Net

pytestmark = pytest.mark.usefixtures("single_thread")
N_WAY = 3


class TinyMLP(Encoder):
    """A backbone no method has heard of: flatten, linear, tanh."""

    def __init__(self, in_features: int, out_dim: int = 5) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_dim)
        self.out_dim = out_dim

    def embed(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        return torch.tanh(self.fc(x.flatten(2)))


def task_batch(shape: tuple[int, ...], n_tasks: int = 2, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    ys = torch.arange(N_WAY).repeat_interleave(2)
    return TaskBatch(torch.rand(n_tasks, len(ys), *shape, generator=g, dtype=torch.float64),
                     ys.expand(n_tasks, -1).contiguous(),
                     torch.rand(n_tasks, len(ys), *shape, generator=g, dtype=torch.float64),
                     ys.expand(n_tasks, -1).contiguous(), N_WAY, 2)  # fmt: skip


ENCODERS = {
    "a new one (TinyMLP)": lambda: TinyMLP(1 * 16 * 16),
    "Conv4": lambda: Conv4(1, 16, width=4),
    "HyperConv4": lambda: GroupedEncoder(Conv4Net(1, 0, image_size=16, hyper="layer", width=4)),
}
METHODS = {
    "maml": lambda e: MAML(e, N_WAY, MAMLConfig(inner_steps=2, inner_lr=0.3)),
    "hypermaml": lambda e: HyperMAML(
        e, N_WAY, HyperMAMLConfig(hn_width=8, warmup_epochs=0, switch_epochs=0)
    ),  # fmt: skip
    "protonet": lambda e: ProtoNet(e, N_WAY),
}


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_on_every_encoder(method, encoder):
    torch.manual_seed(0)
    model = METHODS[method](ENCODERS[encoder]()).double()
    batch = task_batch((1, 16, 16))
    loss, logits = model.meta_loss(batch)
    assert logits.shape == (2, 2 * N_WAY, N_WAY)
    loss.backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None for g in grads)  # the meta-gradient reaches the whole encoder
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_params_replace_the_encoders_own_tensors_without_touching_it(encoder):
    """``forward(x, params=...)`` is ``functional_call`` of the encoder, and the module keeps
    its own tensors (what MAML's inner loop and task threads rely on)."""
    torch.manual_seed(0)
    model = ENCODERS[encoder]().double()
    x = task_batch((1, 16, 16)).support_x
    params = {n: p + 0.1 * torch.randn_like(p) for n, p in model.named_parameters()}
    before = {n: p.clone() for n, p in model.named_parameters()}
    expected = functional_call(model, params, (x,))
    torch.testing.assert_close(model(x, 0, params), expected)
    assert not torch.allclose(model(x), expected)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name])


def test_maml_inner_step_on_a_new_encoder_is_a_plain_gradient_step():
    torch.manual_seed(0)
    model = MAML(TinyMLP(256), N_WAY, MAMLConfig(inner_steps=1, inner_lr=0.3)).double()
    batch = task_batch((1, 16, 16), n_tasks=1)
    params = model.adapt(batch.support_x, batch.support_y)
    named = dict(model.named_parameters())
    loss = F.cross_entropy(model.logits(batch.support_x)[0], batch.support_y[0])
    grads = torch.autograd.grad(loss, list(named.values()))
    for (name, p), g in zip(named.items(), grads):
        torch.testing.assert_close(params[name][0], p - 0.3 * g)


def test_load_network_copies_a_classifier_and_refuses_another():
    torch.manual_seed(0)
    network = Conv4Net(1, 5, image_size=16, hyper="stage", width=4)
    encoder = GroupedEncoder(Conv4Net(1, 0, image_size=16, hyper="stage", width=4))
    assert encoder.load_network(network.state_dict()) > 0
    x = torch.rand(1, 4, 1, 16, 16)
    network.train()
    torch.testing.assert_close(encoder(x)[0], network.features(x[0]))
    plain = Conv4(1, 16, width=4)
    with pytest.raises(ValueError, match="no place"):
        plain.load_network(network.state_dict())


@pytest.mark.parametrize("bn", ["eval", "per_step"])
def test_a_loaded_conv4_computes_the_classifiers_function_with_running_statistics(bn):
    """The classifier's convolutions have no bias; the encoder's are zeroed, not left random
    (with running statistics a bias is not cancelled by the normalisation)."""
    torch.manual_seed(0)
    network = Conv4Net(1, 5, image_size=16, width=4)
    for _ in range(3):  # running statistics away from their initial values
        network(torch.rand(8, 1, 16, 16) * 2)
    encoder = Conv4(1, 16, width=4, bn=bn)
    encoder.load_network(network.state_dict())
    assert all(conv.bias.abs().max() == 0 for conv in encoder.convs)
    network.eval(), encoder.eval()
    x = torch.rand(1, 4, 1, 16, 16)
    torch.testing.assert_close(encoder(x)[0], network.features(x[0]))
