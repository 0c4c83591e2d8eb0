"""Attention metrics against cases computable by hand."""

import math

import pytest
import torch

from site_builder.analyze import metrics


def test_uniform_attention_has_entropy_log_n_and_max_one_over_n():
    p = torch.full((2, 3, 64), 1 / 64)
    assert metrics.entropy(p).flatten().tolist() == pytest.approx([math.log(64)] * 6)
    assert metrics.max_attention(p).flatten().tolist() == pytest.approx([1 / 64] * 6)


def test_one_hot_attention_has_entropy_zero_and_max_one():
    p = torch.zeros(4, 16)
    p[torch.arange(4), torch.tensor([0, 3, 7, 15])] = 1.0
    assert metrics.entropy(p).tolist() == [0.0] * 4
    assert metrics.max_attention(p).tolist() == [1.0] * 4


def test_entropy_of_two_equal_patches_is_log_two():
    p = torch.tensor([0.5, 0.5, 0.0, 0.0])
    assert metrics.entropy(p).item() == pytest.approx(math.log(2))


def test_sparsity_uses_absolute_threshold_of_one_percent():
    # Uniform over 64 patches (0.0156 each) is above 0.01; over 256 (0.0039 each) below.
    assert metrics.sparsity(torch.full((64,), 1 / 64)).item() == 0.0
    assert metrics.sparsity(torch.full((256,), 1 / 256)).item() == 1.0
    # Two of four entries below 0.01; exactly 0.01 is not below.
    assert metrics.sparsity(torch.tensor([0.97, 0.01, 0.004, 0.006])).item() == 0.5


def test_identical_heads_have_similarity_one_and_diversity_zero():
    head = torch.softmax(torch.randn(10, generator=torch.Generator().manual_seed(0)), dim=0)
    p = head.expand(5, 10).unsqueeze(0)  # one image, five identical heads
    out = metrics.attention_metrics(p.double())
    assert out["head_similarity"] == pytest.approx(1.0)
    assert out["head_diversity"] == pytest.approx(0.0)


def test_heads_on_disjoint_patches_have_similarity_zero():
    p = torch.eye(4).unsqueeze(0)  # head h attends only to patch h
    assert metrics.head_similarity(p).item() == 0.0


def test_head_similarity_averages_distinct_pairs_only():
    # Heads a = b = (1, 0), c = (0, 1): pair cosines 1, 0, 0 -> mean 1/3 (the diagonal is not counted).
    p = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    assert metrics.head_similarity(p).item() == pytest.approx(1 / 3)


def test_cls_patch_attention_drops_cls_and_registers_and_renormalises():
    # 1 CLS + 2 registers + 4 patches; CLS row puts 0.5 on itself and registers, 0.5 on patches.
    attn = torch.zeros(7, 7)
    attn[0] = torch.tensor([0.2, 0.2, 0.1, 0.1, 0.1, 0.2, 0.1])
    p = metrics.cls_patch_attention(attn, num_patches=4)
    assert p.tolist() == pytest.approx([0.2, 0.2, 0.4, 0.2])


def test_attention_metrics_reports_uniform_entropy_for_reference():
    out = metrics.attention_metrics(torch.full((1, 2, 256), 1 / 256))
    assert out["entropy"] == pytest.approx(math.log(256))
    assert out["uniform_entropy"] == pytest.approx(math.log(256))
    assert out["sparsity"] == 1.0
