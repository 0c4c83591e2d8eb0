"""ViT-nano with 2D rotary position embeddings, plus the projector used by the training objectives.

RoPE carries position only inside attention (rotations of queries and keys by the patch's row and
column), so the same weights run at any input size that is a multiple of the patch: 32x32 gives an
8x8 grid, 64x64 a 16x16 grid. The CLS token is not rotated (it has no position).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from site_builder.train.config import ViTConfig

try:  # Triton comes with PyTorch's CUDA wheels; without it (a CPU-only install) PyTorch's own ops run
    from site_builder.train.bias_gelu import bias_gelu
    from site_builder.train.packed_attention import PackedSequences, packed_attention
except ImportError:
    bias_gelu = packed_attention = None

# The training step's kernels on the GPU: our Triton kernels (True), or PyTorch's (False; `bench --attention
# sdpa` and `bench --gelu torch` measure them). Each pair computes the same function.
FUSED_ATTENTION = True  # attention over the packed stream (train/packed_attention.py), else SDPA per view size
FUSED_GELU = True  # the MLP's bias + GELU (train/bias_gelu.py), else nn.Linear's bias and nn.GELU


def _fused_kernels_apply(h: torch.Tensor) -> bool:
    """Our kernels run for CUDA tokens under autocast (bf16 or fp16 inputs, as they were built for)."""
    return packed_attention is not None and h.is_cuda and torch.is_autocast_enabled("cuda")


def use_fused_attention(h: torch.Tensor, head_dim: int) -> bool:
    """The fused attention also needs heads of 32, 64 or 128 dimensions (its tiles need halves of a power of
    two of at least 16)."""
    return FUSED_ATTENTION and _fused_kernels_apply(h) and head_dim in (32, 64, 128)


def use_fused_gelu(h: torch.Tensor) -> bool:
    return FUSED_GELU and _fused_kernels_apply(h)


def _rope_angles(grid_h: int, grid_w: int, head_dim: int, base: float, device) -> torch.Tensor:
    """Angles (N, head_dim/2): the first half of the frequencies follow the row, the second the column."""
    quarter = head_dim // 4
    freqs = base ** (-torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    rows = torch.arange(grid_h, device=device, dtype=torch.float32).repeat_interleave(grid_w)
    cols = torch.arange(grid_w, device=device, dtype=torch.float32).repeat(grid_h)
    return torch.cat([rows[:, None] * freqs, cols[:, None] * freqs], dim=1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., :d/2], x[..., d/2:]) of the patch tokens (token 0, CLS, is left as is)."""
    cls, patches = x[:, :, :1], x[:, :, 1:]
    a, b = patches.chunk(2, dim=-1)
    rotated = torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return torch.cat([cls, rotated.to(x.dtype)], dim=2)


@dataclass(frozen=True)
class ViewGroup:
    """One batch of same-size views inside a packed token stream: `images` sequences of `tokens` tokens
    each (CLS first), and the rotary cos/sin of their patch grid."""

    images: int
    tokens: int
    cos: torch.Tensor
    sin: torch.Tensor

    @property
    def size(self) -> int:
        return self.images * self.tokens


def drop_path(x: torch.Tensor, rate: float, training: bool, groups: list[ViewGroup]) -> torch.Tensor:
    """Stochastic depth on packed tokens: zero a residual branch for a random subset of sequences (all of a
    sequence's tokens together), rescaling the rest."""
    if rate == 0.0 or not training:
        return x
    keep = torch.cat([(torch.rand(g.images, 1, device=x.device) >= rate).repeat_interleave(g.tokens, 0)
                      for g in groups])
    return x * keep.to(x.dtype) / (1 - rate)


class Block(nn.Module):
    """Pre-norm transformer block on packed tokens (N x D, the sequences of every group one after another):
    norms, linear layers and MLP run on all tokens at once; attention runs per group, each sequence
    attending to its own tokens only."""

    def __init__(self, cfg: ViTConfig, drop_rate: float = 0.0):
        super().__init__()
        self.heads = cfg.heads
        self.drop_rate = drop_rate
        self.norm1 = nn.LayerNorm(cfg.width)
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)
        self.norm2 = nn.LayerNorm(cfg.width)
        hidden = int(cfg.width * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, hidden), nn.GELU(), nn.Linear(hidden, cfg.width))

    def _heads(self, qkv: torch.Tensor, g: ViewGroup):
        """A group's rows of the qkv output -> q, k, v as B x H x T x head_dim, q and k rotated."""
        q, k, v = qkv.view(g.images, g.tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return apply_rope(q, g.cos, g.sin), apply_rope(k, g.cos, g.sin), v

    def attention(self, qkv: torch.Tensor, groups: list[ViewGroup]) -> torch.Tensor:
        """SDPA per group: the qkv rows (N x 3D) -> attention outputs (N x D)."""
        return torch.cat([F.scaled_dot_product_attention(*self._heads(part, g)).transpose(1, 2).reshape(g.size, -1)
                          for part, g in zip(qkv.split([g.size for g in groups]), groups)])

    def forward(self, h: torch.Tensor, groups: list[ViewGroup], packed: PackedSequences | None = None,
                fused_gelu: bool = False) -> torch.Tensor:
        """`packed` given: attention through the fused kernel (same function as `attention`); `fused_gelu`:
        the MLP's first bias and GELU through ours (same function as `self.mlp`)."""
        qkv = self.qkv(self.norm1(h))
        a = self.attention(qkv, groups) if packed is None else packed_attention(qkv, packed, self.heads)
        h = h + drop_path(self.proj(a), self.drop_rate, self.training, groups)
        x = self.norm2(h)
        if fused_gelu:
            fc1, _, fc2 = self.mlp
            x = fc2(bias_gelu(F.linear(x, fc1.weight), fc1.bias))
        else:
            x = self.mlp(x)
        return h + drop_path(x, self.drop_rate, self.training, groups)

    def forward_with_attention(self, h: torch.Tensor, group: ViewGroup):
        """Same as forward (one group, eval), with the attention probabilities computed explicitly and
        returned (B, H, T, T)."""
        q, k, v = self._heads(self.qkv(self.norm1(h)), group)
        scale = 1.0 / math.sqrt(q.shape[-1])
        probs = torch.softmax((q.float() @ k.float().transpose(-2, -1)) * scale, dim=-1)
        a = (probs.to(v.dtype) @ v).transpose(1, 2).reshape(group.size, -1)
        h = h + self.proj(a)
        return h + self.mlp(self.norm2(h)), probs


class ViT(nn.Module):
    """Vision transformer backbone: patch embedding, CLS token, pre-norm blocks with 2D RoPE, final norm."""

    def __init__(self, cfg: ViTConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ViTConfig()
        if cfg.width % cfg.heads or (cfg.width // cfg.heads) % 4:
            raise ValueError("width / heads must be a multiple of 4 for 2D RoPE")
        # Kept as a Conv2d for its parameters (and checkpoints); _embed applies it as one matrix product.
        self.patch_embed = nn.Conv2d(cfg.in_chans, cfg.width, cfg.patch_size, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        # Drop rates grow linearly with depth up to cfg.drop_path at the last block (as in DeiT).
        rates = [cfg.drop_path * i / max(1, cfg.depth - 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(Block(cfg, rate) for rate in rates)
        self.norm = nn.LayerNorm(cfg.width)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    @property
    def embed_dim(self) -> int:
        return self.cfg.width

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, ViewGroup]:
        """Images B x C x H x W -> their tokens, packed (B * (1 + N)) x D, and their group."""
        p = self.cfg.patch_size
        if x.ndim != 4 or x.shape[-1] % p or x.shape[-2] % p:
            raise ValueError(f"input must be B x C x H x W with H, W multiples of {p}, got {tuple(x.shape)}")
        b, c, gh, gw = x.shape[0], x.shape[1], x.shape[2] // p, x.shape[3] // p
        # The stride-p convolution as a matrix product over flattened patches (c, row, col order, like the
        # conv's weight): the same numbers, and one large matmul instead of a 3-channel convolution.
        patches = x.reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, c * p * p)
        tokens = F.linear(patches, self.patch_embed.weight.flatten(1), self.patch_embed.bias)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1).to(tokens.dtype), tokens], dim=1)
        angles = _rope_angles(gh, gw, self.cfg.width // self.cfg.heads, self.cfg.rope_base, x.device)
        return tokens.flatten(0, 1), ViewGroup(b, 1 + gh * gw, angles.cos(), angles.sin())

    def _blocks(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, list[ViewGroup]]:
        """The last block's packed tokens (before the final norm) of one or more batches of views."""
        embedded = [self._embed(x) for x in views]
        groups = [g for _, g in embedded]
        h = torch.cat([t for t, _ in embedded]) if len(embedded) > 1 else embedded[0][0]
        packed = PackedSequences.of(groups) if use_fused_attention(h, self.cfg.width // self.cfg.heads) else None
        fused_gelu = use_fused_gelu(h)
        for block in self.blocks:
            h = block(h, groups, packed, fused_gelu)
        return h, groups

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(CLS B x D, patch tokens B x N x D) of the last layer, after the final norm."""
        h, (g,) = self._blocks([x])
        h = self.norm(h).view(g.images, g.tokens, -1)
        return h[:, 0], h[:, 1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding used by the objectives and the probes: the CLS token (B x D)."""
        return self.forward_views([x])

    def forward_views(self, views: list[torch.Tensor]) -> torch.Tensor:
        """CLS embeddings of batches of views of different sizes (e.g. global and local crops), concatenated
        in order, from one pass: the groups' tokens are packed, so each linear layer is one large matmul
        for all views instead of one per size (training's step; same numbers as one call per batch)."""
        h, groups = self._blocks(views)
        parts = h.split([g.size for g in groups])
        cls = torch.cat([part.view(g.images, g.tokens, -1)[:, 0] for part, g in zip(parts, groups)])
        return self.norm(cls)  # the final norm is per token: only the CLS tokens need it

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax attention of every layer, Tensor[L, B, H, T, T] with T = 1 + N (token 0 is CLS)."""
        h, group = self._embed(x)
        maps = []
        for block in self.blocks:
            h, probs = block.forward_with_attention(h, group)
            maps.append(probs)
        return torch.stack(maps)


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are those of the global batch when several processes train
    together (an autograd-aware all-reduce of the sums), on any backend (PyTorch's SyncBatchNorm needs a
    GPU); a plain BatchNorm1d otherwise. Same parameters and buffers, so checkpoints are unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        import torch.distributed.nn.functional as dist_fn

        x = x.float()
        count = x.new_full((1,), float(x.shape[0]))
        sums = dist_fn.all_reduce(torch.cat([x.sum(0), count]))
        n = sums[-1]
        mean = sums[:-1] / n
        var = dist_fn.all_reduce((x - mean).square().sum(0)) / n  # two passes: no cancellation
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), self.momentum)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class Projector(nn.Module):
    """MLP head on the backbone embedding (as in LeJEPA's minimal example): Linear-BN-GELU x2, Linear."""

    def __init__(self, in_dim: int, hidden: int = 2048, out_dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), GlobalBatchNorm1d(hidden), nn.GELU(),
            nn.Linear(hidden, hidden), GlobalBatchNorm1d(hidden), nn.GELU(),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x):
        return self.net(x)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
