"""conv3x3: per-product CPU kernels give F.conv2d's values and derivatives to every order."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hypermaml.models import conv_kernels

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(params=[True, False, None], ids=["onednn", "gemm", "autotuned"])
def kernel(request, monkeypatch):
    monkeypatch.setattr(conv_kernels, "forced_kernel", request.param)
    monkeypatch.setattr(conv_kernels, "_choice", {})
    return request.param


def _inputs(c_in: int, dtype: torch.dtype = torch.double):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, c_in, 6, 5, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(4, c_in, 3, 3, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=dtype, requires_grad=True)
    return x, w, b


@pytest.mark.parametrize("c_in", [1, 3])
def test_gradients_match_finite_differences(kernel, c_in):
    assert torch.autograd.gradcheck(conv_kernels.conv3x3, _inputs(c_in))


def test_second_derivatives_match_finite_differences(kernel):
    """Second-order MAML differentiates the backward again."""
    assert torch.autograd.gradgradcheck(conv_kernels.conv3x3, _inputs(2))


def test_values_and_gradients_equal_conv2d_on_conv4_shapes(kernel):
    torch.manual_seed(0)
    for c_in, size in [(1, 28), (64, 14), (64, 7)]:
        x = torch.randn(6, c_in, size, size, requires_grad=True)
        w = torch.randn(64, c_in, 3, 3, requires_grad=True)
        b = torch.randn(64, requires_grad=True)
        for fmt in (torch.contiguous_format, torch.channels_last):
            xf = x.detach().contiguous(memory_format=fmt).requires_grad_()
            ours, ref = conv_kernels.conv3x3(xf, w, b), F.conv2d(x, w, b, padding=1)
            torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
            g = torch.randn_like(ref)
            got = torch.autograd.grad(ours, (xf, w, b), g)
            want = torch.autograd.grad(ref, (x, w, b), g)
            for a, e in zip(got, want):
                torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-3)


def test_autotune_records_one_choice_per_product_and_shape(monkeypatch):
    monkeypatch.setattr(conv_kernels, "forced_kernel", None)
    monkeypatch.setattr(conv_kernels, "_choice", {})
    x, w, b = _inputs(2, torch.float32)
    conv_kernels.conv3x3(x, w, b).sum().backward()
    products = sorted(key[0] for key in conv_kernels._choice)
    assert products == ["forward", "forward", "weight_grad"]  # the input gradient is a forward
    assert all(isinstance(v, bool) for v in conv_kernels._choice.values())
    assert torch.backends.mkldnn.enabled  # the global switch is restored after each product
