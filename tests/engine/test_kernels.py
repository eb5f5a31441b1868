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


# deterministic mode: the kernel choice pinned to a shape rule, never timed


@pytest.fixture
def fresh_choices(monkeypatch):
    """No kernel forced, no choice recorded, autotuning (the module default) on entry."""
    monkeypatch.setattr(conv_kernels, "forced_kernel", None)
    monkeypatch.setattr(conv_kernels, "_choice", {})
    monkeypatch.setattr(conv_kernels, "_pinned", {})
    monkeypatch.setattr(conv_kernels, "_deterministic", False)


class _Clock:
    """A perf_counter whose successive intervals halve: whichever kernel is timed last looks
    fastest."""

    def __init__(self) -> None:
        self.calls = 0

    def perf_counter(self) -> float:
        self.calls += 1
        return 1.0 - 0.5**self.calls


class _NoClock:
    def perf_counter(self) -> float:
        raise AssertionError("deterministic mode timed a kernel")


def _conv4_step(c_in: int = 64, size: int = 14, n: int = 6) -> None:
    """conv3x3 forward and backward (output, input and weight gradients), channels_last."""
    torch.manual_seed(0)
    x = torch.randn(n, c_in, size, size).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, c_in, 3, 3, requires_grad=True)
    x.requires_grad_()
    conv_kernels.conv3x3(x, w, None, torch.channels_last).square().sum().backward()


def test_deterministic_mode_never_calls_the_timer(fresh_choices, monkeypatch):
    monkeypatch.setattr(conv_kernels, "time", _NoClock())
    with conv_kernels.deterministic():
        _conv4_step()
    assert conv_kernels._choice == {}
    chosen = conv_kernels.chosen_kernels()
    assert len(chosen) >= 2 and not any("timed" in name for name in chosen.values())


def test_pinned_choice_is_the_rule_whatever_the_timer_says(fresh_choices, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(conv_kernels, "time", clock)
    _conv4_step()  # autotuned: the fake clock makes the last candidate of each product win
    timed = {key[0]: name for key, name in conv_kernels._choice.items()}
    assert timed["forward"] == list(conv_kernels._KERNELS["forward"])[-1]
    assert timed["weight_grad"] == "gemm"
    calls = clock.calls
    with conv_kernels.deterministic():
        _conv4_step(n=7)  # new shapes, which autotuning would time
    assert clock.calls == calls
    for key, name in conv_kernels._pinned.items():
        assert name == conv_kernels.pinned_kernel(key[0], key[1], key[5])
    pinned = {key[0]: name for key, name in conv_kernels._pinned.items()}
    assert pinned["weight_grad"] == "onednn"  # 7 x 14 x 14 output pixels: oneDNN, not GEMM


@pytest.mark.parametrize(
    ("product", "shape", "threads", "favoured", "want"),
    [
        ("forward", (160, 64, 14, 14), 1, True, "nnpack"),
        ("forward", (5, 64, 10, 10), 1, True, "nnpack"),
        ("forward", (160, 64, 14, 14), 2, True, "onednn"),  # NNPACK only on one thread
        ("forward", (160, 64, 7, 7), 1, True, "onednn"),  # too few pixels for Winograd
        ("forward", (10, 3, 84, 84), 1, True, "onednn"),  # too few channels
        ("forward", (160, 64, 14, 14), 1, False, "onednn"),  # oneDNN has AVX-512
        ("weight_grad", (160, 64, 14, 14), 1, True, "onednn"),
        ("weight_grad", (5, 64, 3, 3), 2, False, "gemm"),  # 45 output pixels
        ("weight_grad", (10, 64, 3, 3), 1, False, "onednn"),
    ],
)
def test_pinned_rule(monkeypatch, product, shape, threads, favoured, want):
    monkeypatch.setattr(conv_kernels, "_NNPACK_FAVOURED", favoured)
    if "nnpack" not in conv_kernels._KERNELS["forward"]:
        want = "onednn" if want == "nnpack" else want
    assert conv_kernels.pinned_kernel(product, shape, threads) == want


def test_pinned_rule_takes_only_the_kernels_this_build_has(monkeypatch):
    monkeypatch.setattr(conv_kernels, "_NNPACK_FAVOURED", True)
    kernels = {"forward": {"gemm": conv_kernels._gemm_forward}, "weight_grad": {}}
    monkeypatch.setattr(conv_kernels, "_KERNELS", kernels)
    assert conv_kernels.pinned_kernel("forward", (160, 64, 14, 14), 1) == "gemm"


def test_context_manager_restores_the_previous_setting(fresh_choices):
    assert not conv_kernels.is_deterministic()  # the module default: autotuning
    with conv_kernels.deterministic():
        assert conv_kernels.is_deterministic()
        with conv_kernels.deterministic(False):
            assert not conv_kernels.is_deterministic()
        assert conv_kernels.is_deterministic()
    assert not conv_kernels.is_deterministic()
    conv_kernels.set_deterministic(True)
    with pytest.raises(RuntimeError), conv_kernels.deterministic(False):
        raise RuntimeError
    assert conv_kernels.is_deterministic()


def test_forced_kernel_wins_over_deterministic_mode(fresh_choices, monkeypatch):
    monkeypatch.setattr(conv_kernels, "forced_kernel", "gemm")
    monkeypatch.setattr(conv_kernels, "time", _NoClock())
    with conv_kernels.deterministic():
        _conv4_step()
    assert conv_kernels._pinned == {} and conv_kernels._choice == {}


def test_chosen_kernels_names_product_shape_layout_and_threads(fresh_choices, monkeypatch):
    monkeypatch.setattr(conv_kernels, "_NNPACK_FAVOURED", False)
    with conv_kernels.deterministic():
        _conv4_step(n=6)
    assert conv_kernels.chosen_kernels() == {
        "forward 6x64x14x14->64 channels_last t1": "onednn",
        "weight_grad 6x64x14x14->64 channels_last t1": "onednn",
    }  # the input gradient is a forward convolution of the same shapes
    monkeypatch.setattr(conv_kernels, "time", _Clock())
    _conv4_step(size=7)
    assert conv_kernels.chosen_kernels()["weight_grad 6x64x7x7->64 channels_last t1"] == (
        "gemm (timed)"
    )
