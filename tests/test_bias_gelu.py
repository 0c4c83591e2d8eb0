"""GELU(x + bias) with its bias gradient (Triton, run here by Triton's CPU interpreter) against nn.Linear's
bias followed by nn.GELU: the same values and gradients, on a shape that is not a multiple of the tiles."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from site_builder.train.bias_gelu import (  # noqa: E402
    COLS, GEMM_COLS, GEMM_ROWS, GEMM_STEP, ROWS, bias_gelu, gelu_linear)


def test_values_and_gradients_match_linear_bias_then_gelu():
    torch.manual_seed(0)
    n, hidden = 3 * ROWS + 5, COLS + 72
    x = (2 * torch.randn(n, hidden)).requires_grad_()
    bias = torch.randn(hidden, requires_grad=True)
    grad = torch.randn(n, hidden)

    want = torch.nn.functional.gelu(x + bias)
    want_dx, want_dbias = torch.autograd.grad(want, (x, bias), grad)
    got = bias_gelu(x, bias)
    got_dx, got_dbias = torch.autograd.grad(got, (x, bias), grad)

    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_dx, want_dx, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_dbias, want_dbias, rtol=1e-5, atol=1e-4)


def test_each_bias_gradient_sums_its_own_column_over_every_token():
    n, hidden = 2 * ROWS + 3, COLS + 8
    x = torch.zeros(n, hidden, requires_grad=True)
    bias = torch.zeros(hidden, requires_grad=True)
    grad = torch.arange(hidden, dtype=torch.float32).expand(n, hidden)
    (dbias,) = torch.autograd.grad(bias_gelu(x, bias), bias, grad)
    # GELU'(0) = 1/2: column j's gradient is n * j / 2
    torch.testing.assert_close(dbias, n * torch.arange(hidden, dtype=torch.float32) / 2)


def test_gelu_then_linear_matches_pytorch_with_the_fused_input_gradient():
    """gelu_linear's backward (one kernel for the second layer's input gradient and GELU's derivative, with
    the bias's column sums) gives PyTorch's gradients for all four inputs, on shapes that are not multiples of
    the kernel's tiles or of its step along the output units."""
    torch.manual_seed(0)
    n, hidden, out = 2 * GEMM_ROWS + 5, GEMM_COLS + 40, GEMM_STEP + 8
    x = (2 * torch.randn(n, hidden)).requires_grad_()
    bias = torch.randn(hidden, requires_grad=True)
    weight = (torch.randn(out, hidden) / hidden ** 0.5).requires_grad_()
    out_bias = torch.randn(out, requires_grad=True)
    grad = torch.randn(n, out)
    inputs = (x, bias, weight, out_bias)

    want = torch.nn.functional.linear(torch.nn.functional.gelu(x + bias), weight, out_bias)
    want_grads = torch.autograd.grad(want, inputs, grad)
    got = gelu_linear(*inputs)
    got_grads = torch.autograd.grad(got, inputs, grad)

    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for name, g, w in zip(("x", "bias", "weight", "out_bias"), got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=lambda m, name=name: f"{name}: {m}")
