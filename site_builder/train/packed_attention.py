"""Attention over a packed token stream, with the 2D RoPE of queries and keys fused in: Triton kernels for
training on the GPU.

Why: the ViT's sequences are short (65 tokens for a 32-px view, 37 for a 24-px one) and many (1,536 a
step). PyTorch's fused attention pads every sequence to its own tile, and around it the step spent more time
moving tensors than attending: rotating q and k, re-laying out q/k/v per view size into B x H x T x d and
back, and assembling the q/k/v gradients into the qkv layer's layout. Here one kernel reads q, k and v
straight from the qkv layer's output (N x 3 x H x d, all sequences one after another), rotates q and k as it
loads them, lets each query attend to the keys of its own sequence only, and writes the output in the layout
the projection reads (N x H*d); the backward writes the gradient in the qkv layer's layout (N x 3*H*d).
The same numbers as `Block`'s SDPA path (tests/test_packed_attention.py, and `bench`'s check on the GPU).

The forward follows FlashAttention-2 (online softmax), with block-diagonal masking: a tile of queries visits only
the keys from the start of its first query's sequence to the end of its last one's. The backward recomputes the
probabilities from the saved log-sum-exp. For sequences of up to ALIGNED_ROWS tokens (the recipe's) it is
sequence-aligned: a program owns whole sequences of one view group, whose scores fit in one tile, and computes dq,
dk and dv in one pass. Longer sequences take FlashAttention-2's tiled backward (one kernel for dq, one for dk, dv).
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

LOG2E = 1.4426950408889634


@dataclass(frozen=True)
class Tiles:
    """One kernel's launch: `queries` x `keys` tokens a tile (the tile a program owns is the queries' in the
    forward and dq kernels, the keys' in the dk/dv kernel), warps and pipeline stages a program."""

    queries: int
    keys: int
    warps: int
    stages: int

    def blocks(self, own: int, other: int, longest: int) -> int:
        """Tiles of the other side a program visits: its own tokens and up to longest - 1 either side (a
        constant of the compiled kernels: Triton's interpreter, which the tests use, cannot loop to a loaded
        bound)."""
        return triton.cdiv(own + 2 * (longest - 1), other)


# 64 x 64 for all three (tuned tied in the fifth stretch, NOTES.md).
FORWARD = Tiles(queries=64, keys=64, warps=4, stages=3)
BACKWARD_DQ = Tiles(queries=64, keys=64, warps=4, stages=3)
BACKWARD_DKDV = Tiles(queries=64, keys=64, warps=4, stages=3)

# The sequence-aligned backward's tile: as many whole sequences of a group as fit in 128 rows (one 65-token view,
# three 37-token ones), 8 warps; the step's fastest in the tenth stretch (NOTES.md). Longer sequences' scores
# (rows x rows, float32) would not fit in a program's registers.
ALIGNED_ROWS = 128
ALIGNED_WARPS = 8


@dataclass(frozen=True)
class PackedSequences:
    """Per-token tables of a packed stream: the rotary cos/sin of each token (N x head_dim/2, float32; the CLS
    token, which has no position, gets cos 1 and sin 0) and the first and one-past-last token index of the
    token's sequence (N, int32); `longest`, the most tokens of a sequence, bounds the tokens a tile visits;
    `layout`, each view group's first token, sequences and tokens a sequence, one after another."""

    cos: torch.Tensor
    sin: torch.Tensor
    starts: torch.Tensor
    ends: torch.Tensor
    longest: int
    layout: tuple[int, ...]

    @classmethod
    def of(cls, groups: list[ViewGroup]) -> PackedSequences:
        cos, sin, starts, ends, layout = [], [], [], [], []
        offset = 0
        for g in groups:
            layout += [offset, g.images, g.tokens]
            device, half = g.cos.device, g.cos.shape[1]
            cos.append(torch.cat([torch.ones(1, half, device=device), g.cos]).repeat(g.images, 1))
            sin.append(torch.cat([torch.zeros(1, half, device=device), g.sin]).repeat(g.images, 1))
            first = offset + g.tokens * torch.arange(g.images, device=device, dtype=torch.int32)
            starts.append(first.repeat_interleave(g.tokens))
            ends.append((first + g.tokens).repeat_interleave(g.tokens))
            offset += g.size
        return cls(torch.cat(cos), torch.cat(sin), torch.cat(starts), torch.cat(ends), max(g.tokens for g in groups),
                   tuple(layout))


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
def _load_keys(QKV, COS, SIN, STARTS, cols, valid, head, D: tl.constexpr, HALF: tl.constexpr):
    """k (rotated halves) and v of `cols` for one head, and the first token of each one's sequence (-2 where
    not `valid`, which matches no query)."""
    ka, kb = _load_rotated(QKV, COS, SIN, cols, valid, 1, head, D, HALF)
    return ka, kb, _load_values(QKV, cols, valid, head, D, HALF), tl.load(STARTS + cols, mask=valid, other=-2)


@triton.jit
def _values_at(QKV, cols, head, D: tl.constexpr, HALF: tl.constexpr):
    """Where v of `cols` for one head lies in the qkv layout (also dv's place in the gradient)."""
    return QKV + cols[:, None] * (3 * D) + 2 * D + head * (2 * HALF) + tl.arange(0, 2 * HALF)[None, :]


@triton.jit
def _load_values(QKV, cols, valid, head, D: tl.constexpr, HALF: tl.constexpr):
    return tl.load(_values_at(QKV, cols, head, D, HALF), mask=valid[:, None], other=0.0)


@triton.jit
def _head_at(rows, head, D: tl.constexpr, HALF: tl.constexpr):
    """Offsets of one head's columns of `rows` in an N x H*d tensor (the output and its gradient)."""
    return rows[:, None] * D + head * (2 * HALF) + tl.arange(0, 2 * HALF)[None, :]


@triton.jit
def _output_grad(OUT, GRAD, LSE, rows, valid, head, H: tl.constexpr, HALF: tl.constexpr):
    """For the queries `rows` of one head: the output's gradient, delta = rowsum(out * grad), and the forward's
    log-sum-exp."""
    D: tl.constexpr = H * 2 * HALF
    od = _head_at(rows, head, D, HALF)
    do = tl.load(GRAD + od, mask=valid[:, None], other=0.0)
    o = tl.load(OUT + od, mask=valid[:, None], other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    return do, delta, tl.load(LSE + rows * H + head, mask=valid, other=0.0)


@triton.jit
def _span(STARTS, ENDS, tile, size, N):
    """The tokens the sequences of a tile (`size` tokens from tile * size) cover: [first start, last end)."""
    return tl.load(STARTS + tile * size), tl.load(ENDS + tl.minimum(tile * size + size, N) - 1)


@triton.jit
def _query_tile(QKV, COS, SIN, STARTS, ENDS, tile, head, N, D: tl.constexpr, HALF: tl.constexpr, BM: tl.constexpr):
    """A tile of queries for one head: its tokens, which exist, q's rotated halves, each one's sequence (-1
    where not valid), and the span of keys its sequences cover."""
    rows = tile * BM + tl.arange(0, BM)
    row_ok = rows < N
    qa, qb = _load_rotated(QKV, COS, SIN, rows, row_ok, 0, head, D, HALF)
    row_seq = tl.load(STARTS + rows, mask=row_ok, other=-1)
    lo, hi = _span(STARTS, ENDS, tile, BM, N)
    return rows, row_ok, qa, qb, row_seq, lo, hi


@triton.jit
def _key_tile(QKV, COS, SIN, STARTS, start, hi, qa, qb, qk_scale, head, D: tl.constexpr, HALF: tl.constexpr,
              BN: tl.constexpr):
    """The keys from `start` (those before `hi`) for one head: k's rotated halves, v, each one's sequence, and
    the queries' scores against them (log2 units)."""
    cols = start + tl.arange(0, BN)
    ka, kb, v, col_seq = _load_keys(QKV, COS, SIN, STARTS, cols, cols < hi, head, D, HALF)
    return ka, kb, v, col_seq, (tl.dot(qa, tl.trans(ka)) + tl.dot(qb, tl.trans(kb))) * qk_scale


@triton.jit
def _packed_attention_forward(QKV, COS, SIN, STARTS, ENDS, OUT, LSE, N, qk_scale,
                              H: tl.constexpr, HALF: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                              BLOCKS: tl.constexpr):
    tile, head = tl.program_id(0), tl.program_id(1)
    D: tl.constexpr = H * 2 * HALF
    rows, row_ok, qa, qb, row_seq, lo, hi = _query_tile(QKV, COS, SIN, STARTS, ENDS, tile, head, N, D, HALF, BM)
    m = tl.full([BM], float("-inf"), tl.float32)
    total = tl.zeros([BM], tl.float32)
    acc = tl.zeros([BM, 2 * HALF], tl.float32)
    for j in range(0, BLOCKS):
        start = lo + j * BN
        if start < hi:
            _, _, v, col_seq, s = _key_tile(QKV, COS, SIN, STARTS, start, hi, qa, qb, qk_scale, head, D, HALF, BN)
            s = tl.where(row_seq[:, None] == col_seq[None, :], s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, 1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no key of theirs so far
            p = tl.exp2(s - m_safe[:, None])
            alpha = tl.exp2(m - m_safe)
            total = total * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m = m_new
    total = tl.where(row_ok, total, 1.0)
    out = acc / total[:, None]
    tl.store(OUT + _head_at(rows, head, D, HALF), out.to(OUT.dtype.element_ty), mask=row_ok[:, None])
    tl.store(LSE + rows * H + head, m + tl.log2(total), mask=row_ok)


@triton.jit
def _packed_attention_backward_dq(QKV, COS, SIN, STARTS, ENDS, OUT, GRAD, LSE, DELTA, DQKV, N, qk_scale, scale,
                                  H: tl.constexpr, HALF: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                                  BLOCKS: tl.constexpr):
    """dq for a tile of queries; also writes delta = rowsum(out * grad), which the dk/dv kernel reads."""
    tile, head = tl.program_id(0), tl.program_id(1)
    D: tl.constexpr = H * 2 * HALF
    rows, row_ok, qa, qb, row_seq, lo, hi = _query_tile(QKV, COS, SIN, STARTS, ENDS, tile, head, N, D, HALF, BM)
    do, delta, lse = _output_grad(OUT, GRAD, LSE, rows, row_ok, head, H, HALF)
    tl.store(DELTA + rows * H + head, delta, mask=row_ok)
    ga = tl.zeros([BM, HALF], tl.float32)
    gb = tl.zeros([BM, HALF], tl.float32)
    for j in range(0, BLOCKS):
        start = lo + j * BN
        if start < hi:
            ka, kb, v, col_seq, s = _key_tile(QKV, COS, SIN, STARTS, start, hi, qa, qb, qk_scale, head, D, HALF, BN)
            p = tl.where(row_seq[:, None] == col_seq[None, :], tl.exp2(s - lse[:, None]), 0.0)
            dp = tl.dot(do, tl.trans(v))
            ds = (p * (dp - delta[:, None])).to(ka.dtype)
            ga += tl.dot(ds, ka)
            gb += tl.dot(ds, kb)
    _store_unrotated(DQKV, COS, SIN, rows, row_ok, 0, head, D, HALF, ga * scale, gb * scale)


@triton.jit
def _packed_attention_backward_dkdv(QKV, COS, SIN, STARTS, ENDS, GRAD, LSE, DELTA, DQKV, N, qk_scale, scale,
                                    H: tl.constexpr, HALF: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                                    BLOCKS: tl.constexpr):
    """dk and dv for a tile of keys: the queries that see them are those of the same sequences."""
    tile, head = tl.program_id(0), tl.program_id(1)
    D: tl.constexpr = H * 2 * HALF
    cols = tile * BN + tl.arange(0, BN)
    col_ok = cols < N
    ka, kb, v, col_seq = _load_keys(QKV, COS, SIN, STARTS, cols, col_ok, head, D, HALF)
    lo, hi = _span(STARTS, ENDS, tile, BN, N)
    ga = tl.zeros([BN, HALF], tl.float32)
    gb = tl.zeros([BN, HALF], tl.float32)
    dv = tl.zeros([BN, 2 * HALF], tl.float32)
    for j in range(0, BLOCKS):
        start = lo + j * BM
        if start < hi:
            rows = start + tl.arange(0, BM)
            row_ok = rows < hi
            qa, qb = _load_rotated(QKV, COS, SIN, rows, row_ok, 0, head, D, HALF)
            do = tl.load(GRAD + _head_at(rows, head, D, HALF), mask=row_ok[:, None], other=0.0)
            lse = tl.load(LSE + rows * H + head, mask=row_ok, other=0.0)
            delta = tl.load(DELTA + rows * H + head, mask=row_ok, other=0.0)
            row_seq = tl.load(STARTS + rows, mask=row_ok, other=-1)
            s_t = (tl.dot(ka, tl.trans(qa)) + tl.dot(kb, tl.trans(qb))) * qk_scale  # keys x queries
            p_t = tl.where(col_seq[:, None] == row_seq[None, :], tl.exp2(s_t - lse[None, :]), 0.0)
            dv += tl.dot(p_t.to(do.dtype), do)
            dp_t = tl.dot(v, tl.trans(do))
            ds_t = (p_t * (dp_t - delta[None, :])).to(qa.dtype)
            ga += tl.dot(ds_t, qa)
            gb += tl.dot(ds_t, qb)
    _store_unrotated(DQKV, COS, SIN, cols, col_ok, 1, head, D, HALF, ga * scale, gb * scale)
    tl.store(_values_at(DQKV, cols, head, D, HALF), dv.to(DQKV.dtype.element_ty), mask=col_ok[:, None])


@triton.jit
def _packed_attention_backward_aligned(QKV, first, count, COS, SIN, OUT, GRAD, LSE, DQKV, qk_scale, scale,
                                       H: tl.constexpr, HALF: tl.constexpr, TOKENS: tl.constexpr,
                                       SEQS: tl.constexpr, ROWS: tl.constexpr):
    """dq, dk and dv of SEQS whole sequences of TOKENS tokens (a group's, from its `first` token) in one pass."""
    head = tl.program_id(1)
    D: tl.constexpr = H * 2 * HALF
    local = tl.arange(0, ROWS)
    seq = local // TOKENS
    valid = (local < SEQS * TOKENS) & (tl.program_id(0) * SEQS + seq < count)
    rows = first + tl.program_id(0) * (SEQS * TOKENS) + local
    qa, qb = _load_rotated(QKV, COS, SIN, rows, valid, 0, head, D, HALF)
    ka, kb = _load_rotated(QKV, COS, SIN, rows, valid, 1, head, D, HALF)
    v = _load_values(QKV, rows, valid, head, D, HALF)
    do, delta, lse = _output_grad(OUT, GRAD, LSE, rows, valid, head, H, HALF)
    s = (tl.dot(qa, tl.trans(ka)) + tl.dot(qb, tl.trans(kb))) * qk_scale
    p = tl.where((seq[:, None] == seq[None, :]) & valid[None, :], tl.exp2(s - lse[:, None]), 0.0)
    dv = tl.dot(tl.trans(p.to(do.dtype)), do)
    ds = (p * (tl.dot(do, tl.trans(v)) - delta[:, None])).to(qa.dtype)
    _store_unrotated(DQKV, COS, SIN, rows, valid, 0, head, D, HALF, tl.dot(ds, ka) * scale, tl.dot(ds, kb) * scale)
    ds_t = tl.trans(ds)
    _store_unrotated(DQKV, COS, SIN, rows, valid, 1, head, D, HALF, tl.dot(ds_t, qa) * scale,
                     tl.dot(ds_t, qb) * scale)
    tl.store(_values_at(DQKV, rows, head, D, HALF), dv.to(DQKV.dtype.element_ty), mask=valid[:, None])


def _launch(kernel, tiles: Tiles, keys_own: bool, qkv: torch.Tensor, heads: int, longest: int, *args) -> None:
    """Run `kernel` on (its tiles of the stream) x heads programs: a tile of queries, or of keys where
    `keys_own`, visiting the other side's tiles of its sequences."""
    half = _head_dim(qkv, heads) // 2
    own, other = (tiles.keys, tiles.queries) if keys_own else (tiles.queries, tiles.keys)
    grid = (triton.cdiv(qkv.shape[0], own), heads)
    kernel[grid](qkv, *args, H=heads, HALF=half, BM=tiles.queries, BN=tiles.keys,
                 BLOCKS=tiles.blocks(own, other, longest), num_warps=tiles.warps, num_stages=tiles.stages)


def _head_dim(qkv: torch.Tensor, heads: int) -> int:
    return qkv.shape[1] // 3 // heads


def _scale(qkv: torch.Tensor, heads: int) -> float:
    """The softmax scale, 1/sqrt(head_dim)."""
    return 1.0 / math.sqrt(_head_dim(qkv, heads))


@torch.library.custom_op("site_builder::packed_attention", mutates_args=())
def _attention(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, starts: torch.Tensor,
               ends: torch.Tensor, heads: int, longest: int, layout: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    out = qkv.new_empty(qkv.shape[0], qkv.shape[1] // 3)
    lse = qkv.new_empty(qkv.shape[0], heads, dtype=torch.float32)
    _launch(_packed_attention_forward, FORWARD, False, qkv, heads, longest,
            cos, sin, starts, ends, out, lse, qkv.shape[0], _scale(qkv, heads) * LOG2E)
    return out, lse


@_attention.register_fake
def _(qkv, cos, sin, starts, ends, heads, longest, layout):
    return qkv.new_empty(qkv.shape[0], qkv.shape[1] // 3), qkv.new_empty(qkv.shape[0], heads, dtype=torch.float32)


@torch.library.custom_op("site_builder::packed_attention_backward", mutates_args=())
def _attention_backward(grad: torch.Tensor, qkv: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
                        cos: torch.Tensor, sin: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor,
                        heads: int, longest: int, layout: list[int]) -> torch.Tensor:
    dqkv = torch.empty_like(qkv)
    scale = _scale(qkv, heads)
    if longest <= ALIGNED_ROWS:
        for first, count, tokens in zip(layout[0::3], layout[1::3], layout[2::3]):
            per_tile = ALIGNED_ROWS // tokens
            _packed_attention_backward_aligned[(triton.cdiv(count, per_tile), heads)](
                qkv, first, count, cos, sin, out, grad, lse, dqkv, scale * LOG2E, scale, H=heads,
                HALF=_head_dim(qkv, heads) // 2, TOKENS=tokens, SEQS=per_tile, ROWS=ALIGNED_ROWS,
                num_warps=ALIGNED_WARPS)
        return dqkv
    n, delta = qkv.shape[0], torch.empty_like(lse)
    _launch(_packed_attention_backward_dq, BACKWARD_DQ, False, qkv, heads, longest,
            cos, sin, starts, ends, out, grad, lse, delta, dqkv, n, scale * LOG2E, scale)
    _launch(_packed_attention_backward_dkdv, BACKWARD_DKDV, True, qkv, heads, longest,
            cos, sin, starts, ends, grad, lse, delta, dqkv, n, scale * LOG2E, scale)
    return dqkv


@_attention_backward.register_fake
def _(grad, qkv, out, lse, cos, sin, starts, ends, heads, longest, layout):
    return torch.empty_like(qkv)


def _setup_context(ctx, inputs, output):
    qkv, cos, sin, starts, ends, heads, longest, layout = inputs
    ctx.save_for_backward(qkv, cos, sin, starts, ends, *output)
    ctx.heads, ctx.longest, ctx.layout = heads, longest, layout


def _backward(ctx, grad_out, _grad_lse):
    qkv, cos, sin, starts, ends, out, lse = ctx.saved_tensors
    dqkv = _attention_backward(grad_out.contiguous(), qkv, out, lse, cos, sin, starts, ends, ctx.heads, ctx.longest,
                               ctx.layout)
    return dqkv, None, None, None, None, None, None, None


_attention.register_autograd(_backward, setup_context=_setup_context)


def packed_attention(qkv: torch.Tensor, packed: PackedSequences, heads: int) -> torch.Tensor:
    """Softmax attention of every sequence of a packed stream over its own tokens, RoPE applied to q and k.

    qkv: N x 3*H*d, the qkv layer's output (q, k, v, each H heads of d); returns N x H*d."""
    return _attention(qkv.contiguous(), packed.cos, packed.sin, packed.starts, packed.ends, heads,
                      packed.longest, list(packed.layout))[0]
