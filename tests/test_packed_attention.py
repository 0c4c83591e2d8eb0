"""The fused packed attention (Triton, run here by Triton's CPU interpreter) against Block's SDPA path:
the same outputs and the same gradients, for sequences shorter and longer than a kernel tile, packed
in groups of different sizes, with a token count that is not a multiple of the tile: the tiled backward (also
with query and key tiles of different sizes) and the sequence-aligned one (several sequences a tile, groups whose
sequences do not fill their last tile)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from site_builder.train import model as vit  # noqa: E402
from site_builder.train.config import ViTConfig  # noqa: E402
from site_builder.train import packed_attention as kernels  # noqa: E402
from site_builder.train.packed_attention import PackedSequences, Tiles, packed_attention  # noqa: E402

CFG = ViTConfig(patch_size=4, width=64, depth=2, heads=2)  # head_dim 32


def _groups(grids: list[tuple[int, int]]) -> list[vit.ViewGroup]:
    """(images, grid side) -> packed groups, with the rotary tables ViT._embed makes."""
    head_dim = CFG.width // CFG.heads
    groups = []
    for images, side in grids:
        angles = vit._rope_angles(side, side, head_dim, CFG.rope_base, "cpu")
        groups.append(vit.ViewGroup(images, 1 + side * side, angles.cos(), angles.sin()))
    return groups


# 65 tokens (more than one tile), 17 tokens (several sequences in a tile), 145 tokens (three tiles)
GRIDS = [(3, 8), (5, 4), (1, 12)]
# the recipe's sequences (65 and 37 tokens: one and three a tile) and shorter ones (17: seven a tile)
SHORT_GRIDS = [(3, 8), (4, 6), (5, 4)]


def test_tables_mark_each_tokens_sequence_and_leave_cls_unrotated():
    groups = _groups([(2, 2), (1, 3)])  # sequences of 5, 5 and 10 tokens
    packed = PackedSequences.of(groups)
    assert packed.starts.tolist() == [0] * 5 + [5] * 5 + [10] * 10
    assert packed.ends.tolist() == [5] * 5 + [10] * 5 + [20] * 10
    for cls in (0, 5, 10):
        assert packed.cos[cls].eq(1).all() and packed.sin[cls].eq(0).all()
    assert torch.equal(packed.cos[11:20], groups[1].cos) and torch.equal(packed.sin[6:10], groups[0].sin)


def _assert_matches_sdpa(groups: list[vit.ViewGroup]) -> None:
    torch.manual_seed(0)
    n = sum(g.size for g in groups)
    block = vit.Block(CFG)
    qkv = torch.randn(n, 3 * CFG.width, requires_grad=True)
    grad = torch.randn(n, CFG.width)

    want = block.attention(qkv, groups)
    (want_dqkv,) = torch.autograd.grad(want, qkv, grad)
    got = packed_attention(qkv, PackedSequences.of(groups), CFG.heads)
    (got_dqkv,) = torch.autograd.grad(got, qkv, grad)

    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_dqkv, want_dqkv, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("tiles", [None, Tiles(16, 32, 4, 1), Tiles(32, 16, 2, 1)],
                         ids=["module's tiles", "16 queries x 32 keys", "32 queries x 16 keys"])
def test_tiled_kernels_match_sdpa_per_group(monkeypatch, tiles):
    for kernel in ("FORWARD", "BACKWARD_DQ", "BACKWARD_DKDV"):
        monkeypatch.setattr(kernels, kernel, tiles or getattr(kernels, kernel))
    groups = _groups(GRIDS)
    assert max(g.tokens for g in groups) > kernels.ALIGNED_ROWS  # so the backward is the tiled one
    n = sum(g.size for g in groups)
    sides = {t.queries for t in (kernels.FORWARD, kernels.BACKWARD_DQ)} | {kernels.BACKWARD_DKDV.keys}
    assert all(n % side and max(g.tokens for g in groups) > 2 * side for side in sides)
    _assert_matches_sdpa(groups)


def test_sequence_aligned_backward_matches_sdpa_per_group():
    groups = _groups(SHORT_GRIDS)
    assert max(g.tokens for g in groups) <= kernels.ALIGNED_ROWS  # so the backward is the sequence-aligned one
    per_tile = [kernels.ALIGNED_ROWS // g.tokens for g in groups]
    assert max(per_tile) > 1 and any(g.images % n for g, n in zip(groups, per_tile))  # a last tile not full
    _assert_matches_sdpa(groups)


def test_a_token_sees_only_its_own_sequence():
    torch.manual_seed(1)
    groups = _groups([(4, 4)])  # four sequences of 17 tokens: all in the first tile
    n = sum(g.size for g in groups)
    qkv = torch.randn(n, 3 * CFG.width)
    packed = PackedSequences.of(groups)
    out = packed_attention(qkv, packed, CFG.heads)
    changed = qkv.clone()
    changed[17:34] += torch.randn(17, 3 * CFG.width)  # the second sequence only
    moved = (packed_attention(changed, packed, CFG.heads) - out).abs().amax(1) > 1e-6
    assert moved.tolist() == [False] * 17 + [True] * 17 + [False] * 34


@pytest.mark.parametrize("gelu", ["torch", "fused"])
def test_vit_with_fused_kernels_matches_pytorch(monkeypatch, gelu):
    """The whole backbone on packed global + local views, with our attention (and GELU) kernels against
    PyTorch's SDPA (and nn.Linear + nn.GELU): embeddings and every parameter's gradient."""
    torch.manual_seed(2)
    model = vit.ViT(CFG)
    glob, loc = torch.randn(3, 3, 32, 32), torch.randn(6, 3, 16, 16)

    def run():
        model.zero_grad()
        z = model.forward_views([glob, loc])
        z.square().sum().backward()
        return z.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}

    want, want_grads = run()
    monkeypatch.setattr(vit, "use_fused_attention", lambda h, head_dim: True)
    monkeypatch.setattr(vit, "use_fused_gelu", lambda h: gelu != "torch")
    got, got_grads = run()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for name, g in want_grads.items():  # float32 rounding, summed over every token: to 1e-4 of the largest entry
        torch.testing.assert_close(got_grads[name], g, rtol=1e-4, atol=1e-4 * g.abs().max().item(), msg=name)
