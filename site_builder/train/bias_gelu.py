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

ROWS, COLS, WARPS = 32, 128, 4  # the forward: one program's tile of tokens x hidden units, and its warps
BACK_ROWS, BACK_COLS, BACK_WARPS = 16, 128, 2  # the backward's (timed on the H200: NOTES.md, eighth stretch)
SQRT1_2 = tl.constexpr(0.7071067811865476)
INV_SQRT_2PI = tl.constexpr(0.3989422804014327)


@triton.jit
def _load(pointers, ok, EVEN: tl.constexpr):
    """Values at the pointers, zero where not ok; without a mask when the tiles divide the tensor (EVEN), since
    the kernels are bound by instructions, not memory."""
    if EVEN:
        v = tl.load(pointers)
    else:
        v = tl.load(pointers, mask=ok, other=0.0)
    return v


@triton.jit
def _store(pointers, v, ok, EVEN: tl.constexpr):
    if EVEN:
        tl.store(pointers, v)
    else:
        tl.store(pointers, v, mask=ok)


@triton.jit
def _tile(X, BIAS, N, F, ROWS: tl.constexpr, COLS: tl.constexpr, EVEN: tl.constexpr):
    """Column indices of this program's tile, its mask and offsets, and x + bias there, in float32."""
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.program_id(1) * COLS + tl.arange(0, COLS)
    ok = (rows < N)[:, None] & (cols < F)[None, :]
    at = rows[:, None] * F + cols[None, :]
    x = _load(X + at, ok, EVEN).to(tl.float32) + _load(BIAS + cols, cols < F, EVEN)[None, :]
    return cols, ok, at, x


@triton.jit
def _erf_and_gauss(x):
    """erf(x / sqrt 2) and exp(-x^2 / 2) from one exponential (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7,
    far below bf16's rounding). Why: with libdevice's erf (and a second exponential in the backward) the kernels
    ran at 2.4-2.9 TB/s where a copy runs at 4.2: they were bound by instructions, not by memory."""
    gauss = tl.exp(-0.5 * x * x)
    t = tl.fdiv(1.0, 1.0 + 0.3275911 * SQRT1_2 * tl.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf_abs = 1.0 - poly * gauss
    return tl.where(x < 0, -erf_abs, erf_abs), gauss


@triton.jit
def _gelu(x):
    erf, _ = _erf_and_gauss(x)
    return 0.5 * x * (1.0 + erf)


@triton.jit
def _gelu_slope(x):
    """GELU's derivative: Phi(x) + x phi(x)."""
    erf, gauss = _erf_and_gauss(x)
    return 0.5 * (1.0 + erf) + x * gauss * INV_SQRT_2PI


@triton.jit
def _bias_gelu_forward(X, BIAS, Y, N, F, ROWS: tl.constexpr, COLS: tl.constexpr, EVEN: tl.constexpr):
    _, ok, at, x = _tile(X, BIAS, N, F, ROWS, COLS, EVEN)
    _store(Y + at, _gelu(x).to(Y.dtype.element_ty), ok, EVEN)


@triton.jit
def _bias_gelu_backward(GRAD, X, BIAS, DX, PARTIAL, N, F, ROWS: tl.constexpr, COLS: tl.constexpr,
                        EVEN: tl.constexpr):
    cols, ok, at, x = _tile(X, BIAS, N, F, ROWS, COLS, EVEN)
    g = _load(GRAD + at, ok, EVEN).to(tl.float32) * _gelu_slope(x)  # 0 outside the tensor (grad loads as 0)
    _store(DX + at, g.to(DX.dtype.element_ty), ok, EVEN)
    _store(PARTIAL + tl.program_id(0) * F + cols, tl.sum(g, 0), cols < F, EVEN)


def _grid(x: torch.Tensor, rows: int, cols: int) -> tuple[int, int]:
    return triton.cdiv(x.shape[0], rows), triton.cdiv(x.shape[1], cols)


def _even(x: torch.Tensor, rows: int, cols: int) -> bool:
    return x.shape[0] % rows == 0 and x.shape[1] % cols == 0


@torch.library.custom_op("site_builder::bias_gelu", mutates_args=())
def _bias_gelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    y = torch.empty_like(x)
    _bias_gelu_forward[_grid(x, ROWS, COLS)](x, bias, y, x.shape[0], x.shape[1], ROWS=ROWS, COLS=COLS,
                                              EVEN=_even(x, ROWS, COLS), num_warps=WARPS)
    return y


@_bias_gelu.register_fake
def _(x, bias):
    return torch.empty_like(x)


@torch.library.custom_op("site_builder::bias_gelu_backward", mutates_args=())
def _bias_gelu_backward_op(grad: torch.Tensor, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of x and of the bias (the sum of the tiles' partial sums, float32)."""
    grid = _grid(x, BACK_ROWS, BACK_COLS)
    dx = torch.empty_like(x)
    partial = x.new_empty(grid[0], x.shape[1], dtype=torch.float32)
    _bias_gelu_backward[grid](grad, x, bias, dx, partial, x.shape[0], x.shape[1], ROWS=BACK_ROWS, COLS=BACK_COLS,
                              EVEN=_even(x, BACK_ROWS, BACK_COLS), num_warps=BACK_WARPS)
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
    """GELU(x + bias) in its erf form (erf to 1.5e-7; not the tanh approximation), in x's dtype. x: N x F (a
    linear layer's product without its bias)."""
    return _bias_gelu(x.contiguous(), bias)
