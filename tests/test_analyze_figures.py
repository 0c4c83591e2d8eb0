"""Figure-data functions on inputs whose answer is known."""

import math

import numpy as np
import pytest
import torch

from site_builder.analyze import figures


def test_pca_rgb_colours_the_dominant_direction_in_red():
    # 2 images on a 4x4 grid, 8-dim features: the left half of every image is +5 along dim 2, the right
    # half -5; smaller independent variation elsewhere. PC1 = dim 2, so red separates the halves.
    g = torch.Generator().manual_seed(0)
    feats = 0.1 * torch.randn(2, 4, 4, 8, generator=g)
    feats[:, :, :2, 2] += 5
    feats[:, :, 2:, 2] -= 5
    rgb = figures.pca_rgb(feats.reshape(2, 16, 8))
    assert rgb.shape == (2, 4, 4, 3) and rgb.dtype == np.uint8
    red = rgb[..., 0].astype(int)
    left, right = red[:, :, :2], red[:, :, 2:]
    assert (left.min() > 200 and right.max() < 55) or (right.min() > 200 and left.max() < 55)


def test_pca_rgb_shows_structure_inside_each_image_not_differences_between_images():
    # The two images differ by a large offset along dim 0; inside each, left and right halves differ
    # along dim 2. A PCA per image colours the halves apart; a PCA over the panel would paint each
    # image one flat colour.
    g = torch.Generator().manual_seed(0)
    feats = 0.1 * torch.randn(2, 4, 4, 8, generator=g)
    feats[0, ..., 0] += 100
    feats[1, ..., 0] -= 100
    feats[:, :, :2, 2] += 1
    feats[:, :, 2:, 2] -= 1
    red = figures.pca_rgb(feats.reshape(2, 16, 8))[..., 0].astype(int)
    for image in red:
        assert abs(image[:, :2].mean() - image[:, 2:].mean()) > 200


def test_pca_rgb_is_deterministic_and_rejects_non_square_grids():
    feats = torch.randn(3, 64, 16, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(figures.pca_rgb(feats), figures.pca_rgb(feats.clone()))
    with pytest.raises(ValueError, match="square"):
        figures.pca_rgb(torch.randn(1, 10, 4))


def test_spectrum_of_rank_two_embeddings_falls_off_a_cliff_after_two():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(500, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 16, generator=g, dtype=torch.float64)
    s = figures.singular_spectrum(emb)
    assert s.shape == (16,) and s[0] == 1.0
    assert s[1] > 0.05 and s[2:].max() < 1e-10


def test_spectrum_of_isotropic_gaussian_is_flat():
    emb = torch.randn(20000, 8, generator=torch.Generator().manual_seed(0))
    s = figures.singular_spectrum(emb)
    assert s.min() > 0.95
    assert figures.effective_rank(s) == pytest.approx(8, abs=0.05)


def test_effective_rank_counts_equal_directions():
    assert figures.effective_rank(np.array([1.0, 1.0, 1.0, 0.0])) == pytest.approx(3)
    assert figures.effective_rank(np.array([1.0, 0.0])) == pytest.approx(1)


def test_projections_of_standard_gaussian_embeddings_match_the_normal_density():
    emb = torch.randn(4000, 32, generator=torch.Generator().manual_seed(0))
    h = figures.projection_histogram(figures.random_projections(emb, num_directions=8, seed=0))
    width = h["x"][1] - h["x"][0]
    assert (h["density"] * width).sum() == pytest.approx(1.0, abs=0.002)
    assert np.abs(h["density"] - h["normal_pdf"]).max() < 0.04
    assert h["normal_pdf"].max() == pytest.approx(1 / math.sqrt(2 * math.pi), abs=0.01)


def test_projections_of_a_badly_scaled_embedding_do_not_match_and_widen_the_range():
    emb = 10 * torch.randn(4000, 32, generator=torch.Generator().manual_seed(0))
    h = figures.projection_histogram(figures.random_projections(emb, num_directions=8, seed=0))
    assert h["x"][-1] > 20  # range widened to the data
    assert np.abs(h["density"] - h["normal_pdf"]).max() > 0.2  # the peak at 0 is far too low


def test_random_projections_use_unit_directions_fixed_by_seed():
    emb = torch.eye(4)  # projections of the basis vectors are the direction components
    a = figures.random_projections(emb, num_directions=3, seed=7).reshape(4, 3)
    assert torch.allclose(a.norm(dim=0), torch.ones(3, dtype=torch.float64))
    assert torch.equal(a, figures.random_projections(emb, num_directions=3, seed=7).reshape(4, 3))


def test_attention_panels_one_frame_per_layer_with_heads_and_their_mean():
    layers, images, heads, n = 2, 3, 4, 16
    p = torch.softmax(torch.randn(layers, images, heads, n, generator=torch.Generator().manual_seed(0)), dim=-1)
    panels = figures.attention_panels(["fox", "bear", "bike"], p)
    assert len(panels) == layers * images * (heads + 1)
    assert sorted({q["frame"] for q in panels}) == ["1", "2"]
    layer2 = [q for q in panels if q["frame"] == "2"]
    fox_layer2 = layer2[: heads + 1]  # per image: its heads, then their mean
    assert [q["title"] for q in fox_layer2] == ["h1", "h2", "h3", "h4", "fox · mean"]
    mean = np.array(fox_layer2[-1]["z"])
    assert mean.shape == (4, 4)
    expected = p[1, 0].mean(dim=0).reshape(4, 4).numpy()
    assert np.allclose(mean, expected, rtol=1e-3)
    assert np.allclose(np.array(fox_layer2[0]["z"]), p[1, 0, 0].reshape(4, 4).numpy(), rtol=1e-3)


def test_round_sig_keeps_four_significant_digits():
    assert figures.round_sig([0.0123456, 123456.0, 0.0]) == [0.01235, 123500.0, 0.0]
