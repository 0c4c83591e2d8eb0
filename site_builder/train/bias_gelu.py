"""GELU(x + bias) for the MLP's hidden layer, with its bias gradient: Triton kernels for training on the GPU.

Why: the hidden layer is the step's largest activation (N x 4D: 291 MB a layer in bf16 at the recipe's
shapes). With the bias in the first linear layer, the backward read that gradient twice, once to apply
GELU's derivative and once more to sum it over tokens for the bias. Here the linear layer runs without its
bias, the forward kernel adds it before the exact (erf) GELU, and the backward kernel writes the gradient and,
per tile, its column sums, from which the bias gradient is one small sum. The same function and gradients as
`nn.Linear` followed by `nn.GELU()` (tests/test_bias_gelu.py).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

ROWS, COLS, WARPS = 32, 128, 4  # one program's tile of tokens x hidden units, and its warps
SQRT1_2 = tl.constexpr(0.7071067811865476)
INV_SQRT_2PI = tl.constexpr(0.3989422804014327)


@triton.jit
def _tile(X, BIAS, N, F, ROWS: tl.constexpr, COLS: tl.constexpr):
    """Row and column indices of this program's tile, its mask, and x + bias there, in float32."""
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.program_id(1) * COLS + tl.arange(0, COLS)
    ok = (rows < N)[:, None] & (cols < F)[None, :]
    at = rows[:, None] * F + cols[None, :]
    x = tl.load(X + at, mask=ok, other=0.0).to(tl.float32) + tl.load(BIAS + cols, mask=cols < F, other=0.0)[None, :]
    return cols, ok, at, x


@triton.jit
def _bias_gelu_forward(X, BIAS, Y, N, F, ROWS: tl.constexpr, COLS: tl.constexpr):
    _, ok, at, x = _tile(X, BIAS, N, F, ROWS, COLS)
    tl.store(Y + at, (0.5 * x * (1.0 + tl.math.erf(x * SQRT1_2))).to(Y.dtype.element_ty), mask=ok)


@triton.jit
def _bias_gelu_backward(GRAD, X, BIAS, DX, PARTIAL, N, F, ROWS: tl.constexpr, COLS: tl.constexpr):
    cols, ok, at, x = _tile(X, BIAS, N, F, ROWS, COLS)
    slope = 0.5 * (1.0 + tl.math.erf(x * SQRT1_2)) + x * tl.exp(-0.5 * x * x) * INV_SQRT_2PI
    g = tl.where(ok, tl.load(GRAD + at, mask=ok, other=0.0).to(tl.float32) * slope, 0.0)
    tl.store(DX + at, g.to(DX.dtype.element_ty), mask=ok)
    tl.store(PARTIAL + tl.program_id(0) * F + cols, tl.sum(g, 0), mask=cols < F)


def _grid(x: torch.Tensor) -> tuple[int, int]:
    return triton.cdiv(x.shape[0], ROWS), triton.cdiv(x.shape[1], COLS)


@torch.library.custom_op("site_builder::bias_gelu", mutates_args=())
def _bias_gelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    y = torch.empty_like(x)
    _bias_gelu_forward[_grid(x)](x, bias, y, x.shape[0], x.shape[1], ROWS=ROWS, COLS=COLS, num_warps=WARPS)
    return y


@_bias_gelu.register_fake
def _(x, bias):
    return torch.empty_like(x)


@torch.library.custom_op("site_builder::bias_gelu_backward", mutates_args=())
def _bias_gelu_backward_op(grad: torch.Tensor, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of x and of the bias (the sum of the tiles' partial sums, float32)."""
    grid = _grid(x)
    dx = torch.empty_like(x)
    partial = x.new_empty(grid[0], x.shape[1], dtype=torch.float32)
    _bias_gelu_backward[grid](grad, x, bias, dx, partial, x.shape[0], x.shape[1], ROWS=ROWS, COLS=COLS, num_warps=WARPS)
    return dx, partial.sum(0).to(bias.dtype)


@_bias_gelu_backward_op.register_fake
def _(grad, x, bias):
    return torch.empty_like(x), torch.empty_like(bias)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    x, bias = ctx.saved_tensors
    return _bias_gelu_backward_op(grad.contiguous(), x, bias)


_bias_gelu.register_autograd(_backward, setup_context=_setup_context)


def bias_gelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """GELU(x + bias), exact (erf) form, in x's dtype. x: N x F (a linear layer's product without its bias)."""
    return _bias_gelu(x.contiguous(), bias)
