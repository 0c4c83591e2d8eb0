"""GELU(x + bias) with its bias gradient (Triton, run here by Triton's CPU interpreter) against nn.Linear's
bias followed by nn.GELU: the same values and gradients, on shapes that are and are not multiples of the tiles."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from site_builder.train.bias_gelu import BACK_COLS, BACK_ROWS, COLS, ROWS, bias_gelu  # noqa: E402


@pytest.mark.parametrize("n, hidden", [
    (3 * max(ROWS, BACK_ROWS) + 5, max(COLS, BACK_COLS) + 72),  # partial tiles: masked loads and stores
    (2 * max(ROWS, BACK_ROWS), 2 * max(COLS, BACK_COLS)),  # whole tiles: the kernels run without masks
])
def test_values_and_gradients_match_linear_bias_then_gelu(n, hidden):
    torch.manual_seed(0)
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


def test_erf_approximation_holds_from_the_tails_to_zero():
    """The kernels' erf (Abramowitz & Stegun 7.1.26) gives GELU and its slope within 1e-6 of float64's exact
    ones on a dense grid over [-12, 12], where every product the MLP sees lies."""
    x = torch.linspace(-12, 12, 24001, dtype=torch.float64)
    want = torch.nn.functional.gelu(x)
    xr = x.clone().requires_grad_()
    (want_slope,) = torch.autograd.grad(torch.nn.functional.gelu(xr), xr, torch.ones_like(x))
    xs = x.float().view(-1, 1).requires_grad_()
    got = bias_gelu(xs, torch.zeros(1))
    (got_slope,) = torch.autograd.grad(got, xs, torch.ones_like(got))
    assert (got.double().flatten() - want).abs().max() < 1e-6
    assert (got_slope.double().flatten() - want_slope).abs().max() < 1e-6
