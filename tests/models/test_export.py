"""Export to the plain network, and trained and exported parameter counts."""

from __future__ import annotations

import pytest
import torch

from hypermaml.models import NetworkConfig, build_network
from hypermaml.models.export import count_parameters, to_plain
from hypermaml.models.hyperconv import (
    HyperConv2d,
    HyperNetwork,
)
from tests.models.networks import randomise_batchnorm, tiny

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("family", ["wrn", "resnet18", "resnet12"])
@pytest.mark.parametrize("hyper,extra", [("stage", {}), ("layer", {}),
                                         ("layer", {"hyper_bias": True}),
                                         ("stage", {"frozen_seed": 5})])  # fmt: skip
def test_export_to_plain_gives_the_same_outputs(family, hyper, extra):
    torch.manual_seed(0)
    model = tiny(family, hyper, **extra)
    randomise_batchnorm(model)
    plain = to_plain(model)
    assert not any(isinstance(m, (HyperConv2d, HyperNetwork)) for m in plain.modules())
    assert not plain.training
    x = torch.randn(6, 3, 16, 16)
    with torch.no_grad():
        out, plain_out = model(x), plain(x)
    assert out.abs().max() > 1e-3
    torch.testing.assert_close(plain_out, out, rtol=0, atol=1e-5)
    assert count_parameters(model)[1] == sum(p.numel() for p in plain.parameters())


@pytest.mark.parametrize(
    "arch,hyper,seed,paper_train,paper_test,tol",
    [("resnet18", "none", None, 11.1, 11.1, 0.1), ("resnet18", "layer", None, 21.4, 11.1, 0.1),
     ("resnet34", "none", None, 21.3, 21.3, 0.1), ("resnet34", "layer", None, 41.6, 21.3, 0.1),
     ("wrn_28_4", "none", None, 5.8, 5.8, 0.1), ("wrn_28_4", "stage", None, 6.6, 5.8, 0.1),
     ("wrn_40_2", "none", None, 2.2, 2.2, 0.1), ("wrn_40_2", "stage", None, 2.4, 2.2, 0.1),
     ("wrn_28_4", "stage", 0, 1.22, 5.8, 0.02)],
)  # fmt: skip
def test_parameter_counts_match_the_paper(arch, hyper, seed, paper_train, paper_test, tol):
    with torch.device("meta"):
        model = build_network(NetworkConfig(arch, hyper, frozen_seed=seed), 3, 10)
    train, test = count_parameters(model)
    assert abs(train / 1e6 - paper_train) < tol, train
    assert abs(test / 1e6 - paper_test) < 0.1, test


@pytest.mark.parametrize("arch,train", [("wrn_28_4", 11_454_682), ("wrn_40_2", 4_420_826)])
def test_variant_2_wrn_counts_follow_the_design(arch, train):
    """Paper: 10.3M and 4.17M, which one H per 3x3 conv cannot give: plain + sum C_in^2 k^2."""
    with torch.device("meta"):
        model = build_network(NetworkConfig(arch, "layer"), 3, 10)
    hyper = [m for m in model.modules() if isinstance(m, HyperConv2d)]
    plain = count_parameters(model)[1]
    assert plain + sum(m.in_channels**2 * 9 for m in hyper) == train
    assert count_parameters(model) == (train, plain)
