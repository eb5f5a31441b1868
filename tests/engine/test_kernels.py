"""conv3x3: per-product CPU kernels give F.conv2d's values and derivatives to every order."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hypermaml.engine import kernels as conv_kernels

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(params=["onednn", "nnpack", "gemm", None], ids=str)
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


def _assert_close_to_scale(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal up to float32 rounding of the kernel's algorithm: NNPACK's Winograd transform errs
    by about 1e-5 of the output's scale, direct and GEMM kernels by less."""
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * want.abs().amax().item())


def test_values_and_gradients_equal_conv2d_on_conv4_shapes(kernel):
    torch.manual_seed(0)
    for c_in, size in [(1, 28), (64, 14), (64, 7)]:
        x = torch.randn(6, c_in, size, size, requires_grad=True)
        w = torch.randn(64, c_in, 3, 3, requires_grad=True)
        b = torch.randn(64, requires_grad=True)
        for fmt in (torch.contiguous_format, torch.channels_last):
            xf = x.detach().contiguous(memory_format=fmt).requires_grad_()
            ours, ref = conv_kernels.conv3x3(xf, w, b), F.conv2d(x, w, b, padding=1)
            _assert_close_to_scale(ours, ref)
            g = torch.randn_like(ref)
            got = torch.autograd.grad(ours, (xf, w, b), g)
            want = torch.autograd.grad(ref, (x, w, b), g)
            for a, e in zip(got, want):
                _assert_close_to_scale(a, e)


def test_autotune_records_one_choice_per_product_and_shape(monkeypatch):
    monkeypatch.setattr(conv_kernels, "forced_kernel", None)
    monkeypatch.setattr(conv_kernels, "_choice", {})
    x, w, b = _inputs(2, torch.float32)
    conv_kernels.conv3x3(x, w, b).sum().backward()
    products = sorted(key[0] for key in conv_kernels._choice)
    assert products == ["forward", "forward", "weight_grad"]  # the input gradient is a forward
    assert set(conv_kernels._choice.values()) <= {"onednn", "nnpack", "gemm"}


@pytest.mark.parametrize("c_in", [1, 64])
def test_float32_second_derivatives_equal_conv2d(kernel, c_in):
    """The float32 kernels (oneDNN's 1x1 route for one channel included) keep second-order
    MAML's double backward exact."""
    torch.manual_seed(0)
    x = torch.randn(4, c_in, 7, 7, requires_grad=True)
    w = torch.randn(8, c_in, 3, 3, requires_grad=True)
    b = torch.randn(8, requires_grad=True)

    def second(conv):  # noqa: ANN001, ANN202
        gx, gw = torch.autograd.grad(conv(x, w, b).square().sum(), (x, w), create_graph=True)
        return torch.autograd.grad(gx.square().sum() + gw.square().sum(), (x, w, b))

    got = second(conv_kernels.conv3x3)
    want = second(lambda x, w, b: F.conv2d(x, w, b, padding=1))
    for a, e in zip(got, want):
        _assert_close_to_scale(a, e)


def test_threads_may_convolve_concurrently(monkeypatch):
    """No global switch is flipped to pick a kernel, so concurrent calls give serial results."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(conv_kernels, "forced_kernel", None)
    monkeypatch.setattr(conv_kernels, "_choice", {})
    torch.manual_seed(0)
    w = torch.randn(64, 64, 3, 3, requires_grad=True)
    xs = [torch.randn(20, 64, 14, 14).contiguous(memory_format=torch.channels_last)
          for _ in range(4)]  # fmt: skip

    def grads(x):  # noqa: ANN001, ANN202
        return torch.autograd.grad(conv_kernels.conv3x3(x, w, None).square().sum(), w)[0]

    serial = [grads(x) for x in xs]
    with ThreadPoolExecutor(2) as pool:
        concurrent = list(pool.map(grads, xs))
    for a, e in zip(concurrent, serial):
        torch.testing.assert_close(a, e)
    assert torch.backends.mkldnn.enabled
