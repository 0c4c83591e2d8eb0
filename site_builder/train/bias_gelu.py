"""GELU(x + bias) for the MLP's hidden layer, with its bias gradient: Triton kernels for training on the GPU.

Why: the hidden layer is the step's largest activation (N x 4D: 291 MB a layer in bf16 at the recipe's
shapes). With the bias in the first linear layer, the backward read that gradient twice, once to apply
GELU's derivative and once more to sum it over tokens for the bias. Here the linear layer runs without its
bias, the forward kernel adds it before the exact (erf) GELU, and the backward kernel writes the gradient and,
per tile, its column sums, from which the bias gradient is one small sum. The same function and gradients as
`nn.Linear` followed by `nn.GELU()` (tests/test_bias_gelu.py).

`gelu_linear` goes one layer further: GELU(x + bias) followed by the MLP's second linear layer, whose
backward computes that layer's input gradient (grad @ weight, a GEMM) and multiplies it by GELU's derivative
in the same kernel, so the N x 4D input gradient is never written to memory and read back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

ROWS, COLS, WARPS = 32, 128, 4  # one program's tile of tokens x hidden units, and its warps
# gelu_linear's backward GEMM: a tile of tokens x hidden units, the step along the output units, warps, stages
GEMM_ROWS, GEMM_COLS, GEMM_STEP, GEMM_WARPS, GEMM_STAGES = 128, 128, 64, 8, 3
SQRT1_2 = tl.constexpr(0.7071067811865476)
INV_SQRT_2PI = tl.constexpr(0.3989422804014327)


@triton.jit
def _x_plus_bias(X, BIAS, rows, cols, N, F):
    """The mask and offsets of the tile rows x cols of the N x F x, and x + bias there, in float32."""
    ok = (rows < N)[:, None] & (cols < F)[None, :]
    at = rows[:, None] * F + cols[None, :]
    x = tl.load(X + at, mask=ok, other=0.0).to(tl.float32) + tl.load(BIAS + cols, mask=cols < F, other=0.0)[None, :]
    return ok, at, x


@triton.jit
def _tile(X, BIAS, N, F, ROWS: tl.constexpr, COLS: tl.constexpr):
    """Row and column indices of this program's tile, its mask, and x + bias there, in float32."""
    cols = tl.program_id(1) * COLS + tl.arange(0, COLS)
    ok, at, x = _x_plus_bias(X, BIAS, tl.program_id(0) * ROWS + tl.arange(0, ROWS), cols, N, F)
    return cols, ok, at, x


@triton.jit
def _gelu_slope(x):
    """GELU's derivative: Phi(x) + x phi(x)."""
    return 0.5 * (1.0 + tl.math.erf(x * SQRT1_2)) + x * tl.exp(-0.5 * x * x) * INV_SQRT_2PI


@triton.jit
def _bias_gelu_forward(X, BIAS, Y, N, F, ROWS: tl.constexpr, COLS: tl.constexpr):
    _, ok, at, x = _tile(X, BIAS, N, F, ROWS, COLS)
    tl.store(Y + at, (0.5 * x * (1.0 + tl.math.erf(x * SQRT1_2))).to(Y.dtype.element_ty), mask=ok)


@triton.jit
def _bias_gelu_backward(GRAD, X, BIAS, DX, PARTIAL, N, F, ROWS: tl.constexpr, COLS: tl.constexpr):
    cols, ok, at, x = _tile(X, BIAS, N, F, ROWS, COLS)
    g = tl.where(ok, tl.load(GRAD + at, mask=ok, other=0.0).to(tl.float32) * _gelu_slope(x), 0.0)
    tl.store(DX + at, g.to(DX.dtype.element_ty), mask=ok)
    tl.store(PARTIAL + tl.program_id(0) * F + cols, tl.sum(g, 0), mask=cols < F)


@triton.jit
def _linear_backward_gelu(GRAD, W, X, BIAS, DX, PARTIAL, N, F, K, ROWS: tl.constexpr, COLS: tl.constexpr,
                          STEP: tl.constexpr):
    """dx = (grad @ w) * GELU'(x + bias) on one tile, and the tile's column sums (grad: N x K, w: K x F,
    x: N x F). Programs go along a row of tiles first, so neighbours share their rows of grad in the cache."""
    tiles_f = tl.cdiv(F, COLS)
    tile_n, tile_f = tl.program_id(0) // tiles_f, tl.program_id(0) % tiles_f
    rows = tile_n * ROWS + tl.arange(0, ROWS)
    cols = tile_f * COLS + tl.arange(0, COLS)
    acc = tl.zeros([ROWS, COLS], tl.float32)
    for k in range(0, K, STEP):
        ks = k + tl.arange(0, STEP)
        g = tl.load(GRAD + rows[:, None] * K + ks[None, :], mask=(rows < N)[:, None] & (ks < K)[None, :], other=0.0)
        w = tl.load(W + ks[:, None] * F + cols[None, :], mask=(ks < K)[:, None] & (cols < F)[None, :], other=0.0)
        acc = tl.dot(g, w, acc)
    ok, at, x = _x_plus_bias(X, BIAS, rows, cols, N, F)
    d = tl.where(ok, acc * _gelu_slope(x), 0.0)
    tl.store(DX + at, d.to(DX.dtype.element_ty), mask=ok)
    tl.store(PARTIAL + tile_n * F + cols, tl.sum(d, 0), mask=cols < F)


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


@torch.library.custom_op("site_builder::linear_backward_gelu", mutates_args=())
def _linear_backward_gelu_op(grad: torch.Tensor, weight: torch.Tensor, x: torch.Tensor,
                             bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of x and bias through GELU(x + bias) @ weight^T, given that product's gradient."""
    (n, f), k = x.shape, grad.shape[1]
    weight = weight.contiguous()
    tiles_n = triton.cdiv(n, GEMM_ROWS)
    dx = torch.empty_like(x)
    partial = x.new_empty(tiles_n, f, dtype=torch.float32)
    _linear_backward_gelu[(tiles_n * triton.cdiv(f, GEMM_COLS),)](
        grad, weight, x, bias, dx, partial, n, f, k, ROWS=GEMM_ROWS, COLS=GEMM_COLS, STEP=GEMM_STEP,
        num_warps=GEMM_WARPS, num_stages=GEMM_STAGES)
    return dx, partial.sum(0).to(bias.dtype)


@_linear_backward_gelu_op.register_fake
def _(grad, weight, x, bias):
    return torch.empty_like(x), torch.empty_like(bias)


class _GeluLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, weight, out_bias):
        hidden = _bias_gelu(x, bias)
        ctx.save_for_backward(x, bias, weight, hidden)
        return F.linear(hidden, weight, out_bias)

    @staticmethod
    def backward(ctx, grad):
        x, bias, weight, hidden = ctx.saved_tensors
        grad = grad.contiguous()
        dx, dbias = _linear_backward_gelu_op(grad, weight, x, bias)
        return dx, dbias, grad.t() @ hidden, grad.sum(0)


def gelu_linear(x: torch.Tensor, bias: torch.Tensor, weight: torch.Tensor, out_bias: torch.Tensor) -> torch.Tensor:
    """F.linear(GELU(x + bias), weight, out_bias), exact (erf) GELU; x: N x F, weight: K x F. The second
    layer's weight and bias are used in x's dtype (as autocast would; their gradients come back in theirs)."""
    return _GeluLinear.apply(x.contiguous(), bias, weight.to(x.dtype), out_bias.to(x.dtype))
