"""GroupedEncoder: any residual network as a few-shot encoder of grouped inputs."""

from __future__ import annotations

import pytest
import torch

from hypermaml.models.conv4net import Conv4Net
from hypermaml.models.grouped import GroupedEncoder

pytestmark = pytest.mark.usefixtures("single_thread")


def test_grouped_encoder_normalises_each_group_as_if_alone():
    torch.manual_seed(0)
    encoder = GroupedEncoder(Conv4Net(1, 0, image_size=16, hyper="layer", width=4)).double()
    x = torch.rand(3, 5, 1, 16, 16, dtype=torch.float64)
    together = encoder(x)
    for g in range(3):
        torch.testing.assert_close(together[g], encoder(x[g : g + 1])[0])
    assert not any(n.endswith("running_mean") for n, _ in encoder.named_buffers())
