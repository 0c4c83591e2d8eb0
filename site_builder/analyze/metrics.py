"""Attention metrics: how the CLS token spreads its attention over the image patches.

Every metric starts from the same object, the CLS-to-patch attention distribution of one head on one
image: the softmax row of the CLS query restricted to the patch tokens (CLS and any register tokens
dropped) and renormalised to sum to 1, so that models with different token layouts and grid sizes are
measured alike. Shape convention: `p` is `[..., H, N]` (H heads, N patches), each row a distribution.

The table in the experiments chapter applies these definitions, identically for every model and
resolution, to the last layer (the one whose CLS output is the embedding), and averages each per-head or
per-pair value over heads (pairs) and over the panel images.

- entropy: -sum_i p_i log p_i in nats, per head. Uniform over N patches gives log N (4.16 for 64
  patches, 5.55 for 256); all attention on one patch gives 0.
- sparsity: fraction of patches with p_i < SPARSITY_THRESHOLD (absolute, 0.01), per head. Uniform
  attention over 64 patches (0.0156 each) has sparsity 0; over 256 patches (0.0039 each) it has 1.
- max_attention: max_i p_i, per head (1/N for uniform attention, 1 for one-hot).
- head_similarity: mean over unordered pairs of distinct heads of the cosine similarity of their
  distributions (1 when all heads attend alike; never negative, since attention is non-negative).
- head_diversity: 1 - head_similarity.
"""

from __future__ import annotations

import math

import torch

SPARSITY_THRESHOLD = 0.01


def cls_patch_attention(attn: torch.Tensor, num_patches: int) -> torch.Tensor:
    """`[..., T, T]` attention probabilities -> `[..., N]` CLS-to-patch distributions.

    Assumes CLS is token 0 and the patches are the last `num_patches` tokens (registers, if any, sit
    between them and are dropped along with the CLS self-attention).
    """
    row = attn[..., 0, attn.shape[-1] - num_patches :].double()
    return row / row.sum(dim=-1, keepdim=True)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each distribution along the last axis (0 log 0 = 0)."""
    return -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(dim=-1)


def sparsity(p: torch.Tensor, threshold: float = SPARSITY_THRESHOLD) -> torch.Tensor:
    """Fraction of entries below `threshold` along the last axis."""
    return (p < threshold).double().mean(dim=-1)


def max_attention(p: torch.Tensor) -> torch.Tensor:
    return p.max(dim=-1).values


def head_similarity(p: torch.Tensor) -> torch.Tensor:
    """`[..., H, N]` -> `[...]`: mean cosine similarity over the H(H-1)/2 pairs of distinct heads."""
    heads = p.shape[-2]
    if heads < 2:
        raise ValueError("head similarity needs at least two heads")
    unit = p / p.norm(dim=-1, keepdim=True)
    cos = unit @ unit.transpose(-1, -2)  # [..., H, H], ones on the diagonal
    off_diagonal_sum = cos.sum(dim=(-1, -2)) - cos.diagonal(dim1=-2, dim2=-1).sum(dim=-1)
    return off_diagonal_sum / (heads * (heads - 1))


def attention_metrics(p: torch.Tensor) -> dict[str, float]:
    """`[B, H, N]` CLS-to-patch distributions (B images) -> the chapter's metrics, averaged.

    Per-head metrics are averaged over heads and images; head similarity over images.
    """
    similarity = head_similarity(p).mean().item()
    return {
        "entropy": entropy(p).mean().item(),
        "uniform_entropy": math.log(p.shape[-1]),
        "sparsity": sparsity(p).mean().item(),
        "max_attention": max_attention(p).mean().item(),
        "head_similarity": similarity,
        "head_diversity": 1.0 - similarity,
    }
