"""Attention over a packed token stream, with the 2D RoPE of queries and keys fused in: Triton kernels for
training on the GPU.

Why: the ViT's sequences are short (65 tokens for a 32-px view, 37 for a 24-px one) and many (1,536 a
step). PyTorch's fused attention pads every sequence to its own tile, and around it the step spent more time
moving tensors than attending: rotating q and k, re-laying out q/k/v per view size into B x H x T x d and
back, and assembling the q/k/v gradients into the qkv layer's layout. Here one kernel reads q, k and v
straight from the qkv layer's output (N x 3 x H x d, all sequences one after another), rotates q and k as it
loads them, and writes the output in the layout the projection reads (N x H*d); one backward kernel writes
the gradient in the qkv layer's layout (N x 3*H*d). The same numbers as `Block`'s SDPA path
(tests/test_packed_attention.py, and `bench`'s check on the GPU).

Each program takes one window of whole sequences (up to 64 or 128 tokens: one 65-token view, three 37-token
ones) and one head, so a query's keys are all in its own window: the softmax is computed whole (no running
maximum), and the backward recomputes it and writes dq, dk and dv in one pass, without atomics. Sequences
longer than 128 tokens are not supported here (`fits`); the model then uses SDPA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import triton
import triton.language as tl

if TYPE_CHECKING:
    from site_builder.train.model import ViewGroup

LONGEST = 128  # the most tokens of a sequence the kernels take (one window)
LOG2E = 1.4426950408889634


def fits(groups: list[ViewGroup]) -> bool:
    return max(g.tokens for g in groups) <= LONGEST


@dataclass(frozen=True)
class PackedSequences:
    """Tables of a packed stream for the kernels: the rotary cos/sin of each token (N x head_dim/2, float32;
    the CLS token, which has no position, gets cos 1 and sin 0), the first token of each token's sequence
    (N, int32), and the windows of whole sequences the kernels run on (first token and length, int32), each
    at most `window` tokens."""

    cos: torch.Tensor
    sin: torch.Tensor
    sequence: torch.Tensor
    window_start: torch.Tensor
    window_length: torch.Tensor
    window: int

    @classmethod
    def of(cls, groups: list[ViewGroup]) -> PackedSequences:
        window = 64 if max(g.tokens for g in groups) <= 64 else LONGEST
        cos, sin, sequence, window_start, window_length = [], [], [], [], []
        offset = 0
        for g in groups:
            device, half = g.cos.device, g.cos.shape[1]
            cos.append(torch.cat([torch.ones(1, half, device=device), g.cos]).repeat(g.images, 1))
            sin.append(torch.cat([torch.zeros(1, half, device=device), g.sin]).repeat(g.images, 1))
            first = offset + g.tokens * torch.arange(g.images, device=device, dtype=torch.int32)
            sequence.append(first.repeat_interleave(g.tokens))
            per_window = window // g.tokens  # whole sequences per window; the group's last may hold fewer
            skipped = per_window * torch.arange(-(-g.images // per_window), device=device, dtype=torch.int32)
            window_start.append(offset + g.tokens * skipped)
            window_length.append(g.tokens * (g.images - skipped).clamp(max=per_window))
            offset += g.size
        return cls(torch.cat(cos), torch.cat(sin), torch.cat(sequence), torch.cat(window_start),
                   torch.cat(window_length), window)


@triton.jit
def _load_rotated(QKV, COS, SIN, tokens, valid, slot: tl.constexpr, head, D: tl.constexpr, HALF: tl.constexpr):
    """q (slot 0) or k (slot 1) of `tokens` for one head, rotated, in the input's dtype: two halves."""
    half = tl.arange(0, HALF)
    ptr = QKV + tokens[:, None] * (3 * D) + slot * D + head * (2 * HALF) + half[None, :]
    a = tl.load(ptr, mask=valid[:, None], other=0.0)
    b = tl.load(ptr + HALF, mask=valid[:, None], other=0.0)
    table = tokens[:, None] * HALF + half[None, :]
    c = tl.load(COS + table, mask=valid[:, None], other=1.0)
    s = tl.load(SIN + table, mask=valid[:, None], other=0.0)
    af, bf = a.to(tl.float32), b.to(tl.float32)
    return (af * c - bf * s).to(a.dtype), (af * s + bf * c).to(a.dtype)


@triton.jit
def _store_unrotated(OUT, COS, SIN, tokens, valid, slot: tl.constexpr, head, D: tl.constexpr,
                     HALF: tl.constexpr, ga, gb):
    """Store the gradient of the rotated halves (ga, gb) as the gradient of the unrotated q or k."""
    half = tl.arange(0, HALF)
    table = tokens[:, None] * HALF + half[None, :]
    c = tl.load(COS + table, mask=valid[:, None], other=1.0)
    s = tl.load(SIN + table, mask=valid[:, None], other=0.0)
    ptr = OUT + tokens[:, None] * (3 * D) + slot * D + head * (2 * HALF) + half[None, :]
    tl.store(ptr, (ga * c + gb * s).to(OUT.dtype.element_ty), mask=valid[:, None])
    tl.store(ptr + HALF, (gb * c - ga * s).to(OUT.dtype.element_ty), mask=valid[:, None])


@triton.jit
def _load_window(QKV, COS, SIN, SEQ, WINDOW_START, WINDOW_LENGTH, head, D: tl.constexpr, HALF: tl.constexpr,
                 W: tl.constexpr):
    """A program's window: its tokens and which are real, their sequences, rotated q and k (halves), v."""
    window = tl.program_id(0)
    first = tl.load(WINDOW_START + window)
    index = tl.arange(0, W)
    valid = index < tl.load(WINDOW_LENGTH + window)
    tokens = first + index
    qa, qb = _load_rotated(QKV, COS, SIN, tokens, valid, 0, head, D, HALF)
    ka, kb = _load_rotated(QKV, COS, SIN, tokens, valid, 1, head, D, HALF)
    v = tl.load(QKV + tokens[:, None] * (3 * D) + 2 * D + head * (2 * HALF) + tl.arange(0, 2 * HALF)[None, :],
                mask=valid[:, None], other=0.0)
    sequence = tl.load(SEQ + tokens, mask=valid, other=-1)
    return tokens, valid, sequence, qa, qb, ka, kb, v


@triton.jit
def _probabilities(qa, qb, ka, kb, sequence, qk_scale):
    """Softmax over the keys of each query's own sequence (W x W, float32)."""
    s = (tl.dot(qa, tl.trans(ka)) + tl.dot(qb, tl.trans(kb))) * qk_scale
    s = tl.where(sequence[:, None] == sequence[None, :], s, float("-inf"))
    p = tl.exp2(s - tl.max(s, 1)[:, None])
    return p / tl.sum(p, 1)[:, None]


@triton.jit
def _packed_attention_forward(QKV, COS, SIN, SEQ, WINDOW_START, WINDOW_LENGTH, OUT, qk_scale,
                              H: tl.constexpr, HALF: tl.constexpr, W: tl.constexpr):
    head = tl.program_id(1)
    D: tl.constexpr = H * 2 * HALF
    tokens, valid, sequence, qa, qb, ka, kb, v = _load_window(QKV, COS, SIN, SEQ, WINDOW_START, WINDOW_LENGTH,
                                                              head, D, HALF, W)
    out = tl.dot(_probabilities(qa, qb, ka, kb, sequence, qk_scale).to(v.dtype), v)
    tl.store(OUT + tokens[:, None] * D + head * (2 * HALF) + tl.arange(0, 2 * HALF)[None, :],
             out.to(OUT.dtype.element_ty), mask=valid[:, None])


@triton.jit
def _packed_attention_backward(QKV, COS, SIN, SEQ, WINDOW_START, WINDOW_LENGTH, GRAD, DQKV, qk_scale, scale,
                               H: tl.constexpr, HALF: tl.constexpr, W: tl.constexpr):
    """dq, dk and dv of a window, the probabilities recomputed (FlashAttention-2's backward in one tile)."""
    head = tl.program_id(1)
    D: tl.constexpr = H * 2 * HALF
    tokens, valid, sequence, qa, qb, ka, kb, v = _load_window(QKV, COS, SIN, SEQ, WINDOW_START, WINDOW_LENGTH,
                                                              head, D, HALF, W)
    dims = tokens[:, None] * D + head * (2 * HALF) + tl.arange(0, 2 * HALF)[None, :]
    do = tl.load(GRAD + dims, mask=valid[:, None], other=0.0)
    p = _probabilities(qa, qb, ka, kb, sequence, qk_scale)
    dv = tl.dot(tl.trans(p.to(do.dtype)), do)
    dp = tl.dot(do, tl.trans(v))
    ds = (p * (dp - tl.sum(p * dp, 1)[:, None])).to(qa.dtype)
    _store_unrotated(DQKV, COS, SIN, tokens, valid, 0, head, D, HALF, tl.dot(ds, ka) * scale, tl.dot(ds, kb) * scale)
    ds_t = tl.trans(ds)
    _store_unrotated(DQKV, COS, SIN, tokens, valid, 1, head, D, HALF, tl.dot(ds_t, qa) * scale,
                     tl.dot(ds_t, qb) * scale)
    tl.store(DQKV + tokens[:, None] * (3 * D) + 2 * D + head * (2 * HALF) + tl.arange(0, 2 * HALF)[None, :],
             dv.to(DQKV.dtype.element_ty), mask=valid[:, None])


def _launch(qkv: torch.Tensor, heads: int, window: int, windows: int) -> tuple[tuple[int, int], float, dict]:
    """Grid (windows x heads), the softmax scale 1/sqrt(head_dim), the kernels' constants and warps."""
    half = qkv.shape[1] // 3 // heads // 2
    return (windows, heads), 1.0 / math.sqrt(2 * half), dict(H=heads, HALF=half, W=window,
                                                            num_warps=8 if window > 64 else 4)


@torch.library.custom_op("site_builder::packed_attention", mutates_args=())
def _attention(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sequence: torch.Tensor,
               window_start: torch.Tensor, window_length: torch.Tensor, heads: int, window: int) -> torch.Tensor:
    grid, scale, constants = _launch(qkv, heads, window, window_start.numel())
    out = qkv.new_empty(qkv.shape[0], qkv.shape[1] // 3)
    _packed_attention_forward[grid](qkv, cos, sin, sequence, window_start, window_length, out, scale * LOG2E,
                                    **constants)
    return out


@_attention.register_fake
def _(qkv, cos, sin, sequence, window_start, window_length, heads, window):
    return qkv.new_empty(qkv.shape[0], qkv.shape[1] // 3)


@torch.library.custom_op("site_builder::packed_attention_backward", mutates_args=())
def _attention_backward(grad: torch.Tensor, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                        sequence: torch.Tensor, window_start: torch.Tensor, window_length: torch.Tensor,
                        heads: int, window: int) -> torch.Tensor:
    grid, scale, constants = _launch(qkv, heads, window, window_start.numel())
    dqkv = torch.empty_like(qkv)
    _packed_attention_backward[grid](qkv, cos, sin, sequence, window_start, window_length, grad, dqkv,
                                     scale * LOG2E, scale, **constants)
    return dqkv


@_attention_backward.register_fake
def _(grad, qkv, cos, sin, sequence, window_start, window_length, heads, window):
    return torch.empty_like(qkv)


def _setup_context(ctx, inputs, output):
    qkv, cos, sin, sequence, window_start, window_length, heads, window = inputs
    ctx.save_for_backward(qkv, cos, sin, sequence, window_start, window_length)
    ctx.heads, ctx.window = heads, window


def _backward(ctx, grad_out):
    dqkv = _attention_backward(grad_out.contiguous(), *ctx.saved_tensors, ctx.heads, ctx.window)
    return dqkv, None, None, None, None, None, None, None


_attention.register_autograd(_backward, setup_context=_setup_context)


def packed_attention(qkv: torch.Tensor, packed: PackedSequences, heads: int) -> torch.Tensor:
    """Softmax attention of every sequence of a packed stream over its own tokens, RoPE applied to q and k.

    qkv: N x 3*H*d, the qkv layer's output (q, k, v, each H heads of d); returns N x H*d."""
    return _attention(qkv.contiguous(), packed.cos, packed.sin, packed.sequence, packed.window_start,
                      packed.window_length, heads, packed.window)
