"""ViT-nano with 2D RoPE, objectives and augmentations: behaviour checked against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from site_builder.train import objectives  # noqa: E402
from site_builder.train import augment  # noqa: E402
from site_builder.train.augment import AugConfig, draw, gaussian_blur, make_views, random_resized_crop  # noqa: E402
from site_builder.train.model import (  # noqa: E402
    ViewGroup, ViT, ViTConfig, _rope_angles, apply_rope, drop_path)

SMALL = ViTConfig(width=32, depth=2, heads=2, mlp_ratio=2.0)


def test_same_weights_run_at_32_and_64_pixels():
    torch.manual_seed(0)
    model = ViT(SMALL).eval()
    for size, tokens in ((32, 64), (64, 256)):
        cls, patches = model.forward_features(torch.randn(3, 3, size, size))
        assert cls.shape == (3, 32) and patches.shape == (3, tokens, 32)
        maps = model.attention_maps(torch.randn(2, 3, size, size))
        assert maps.shape == (2, 2, 2, tokens + 1, tokens + 1)
        assert torch.allclose(maps.sum(-1), torch.ones(2, 2, 2, tokens + 1), atol=1e-5)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(torch.randn(1, 3, 30, 30))


def test_explicit_attention_path_matches_the_fused_one():
    torch.manual_seed(1)
    model = ViT(SMALL).eval()
    x = torch.randn(2, 3, 32, 32)
    h, group = model._embed(x)
    for block in model.blocks:
        fused = block(h, [group])
        explicit, _ = block.forward_with_attention(h, group)
        assert torch.allclose(fused, explicit, atol=1e-5)
        h = fused


def test_patch_embedding_is_the_strided_convolution():
    torch.manual_seed(4)
    model = ViT(SMALL)
    x = torch.randn(2, 3, 32, 24)
    tokens, group = model._embed(x)
    conv = model.patch_embed(x).flatten(2).transpose(1, 2)  # B x N x D, row-major patches
    tokens = tokens.view(2, group.tokens, -1)
    assert group.tokens == 1 + 8 * 6
    assert torch.allclose(tokens[:, 1:], conv, atol=1e-5)
    assert torch.equal(tokens[:, 0], model.cls_token[0].expand(2, -1))


def test_packed_views_give_each_batch_its_own_forward():
    """Global and local views in one packed pass: the same CLS embeddings (and gradients) as one pass per
    batch, so a sequence never attends to another's tokens."""
    torch.manual_seed(5)
    model = ViT(SMALL).double()
    glob, loc = torch.randn(4, 3, 32, 32, dtype=torch.float64), torch.randn(6, 3, 24, 24, dtype=torch.float64)
    packed = model.forward_views([glob, loc])
    separate = torch.cat([model(glob), model(loc)])
    assert packed.shape == (10, 32)
    assert torch.allclose(packed, separate, atol=1e-10)
    grads = [torch.autograd.grad(out.square().sum(), list(model.parameters())) for out in (packed, separate)]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-9)
    # a changed local image changes only its own embedding
    loc2 = loc.clone()
    loc2[2] += 1.0
    changed = (model.forward_views([glob, loc2]) - packed).abs().amax(1) > 1e-9
    assert changed.tolist() == [False] * 4 + [False, False, True, False, False, False]


def test_drop_path_drops_whole_sequences_of_packed_tokens():
    torch.manual_seed(6)
    groups = [ViewGroup(50, 3, torch.empty(0), torch.empty(0)), ViewGroup(40, 2, torch.empty(0), torch.empty(0))]
    x = torch.ones(50 * 3 + 40 * 2, 4)
    out = drop_path(x, 0.5, True, groups)
    seqs = list(out[:150].view(50, 3 * 4)) + list(out[150:].view(40, 2 * 4))
    assert all(len(row.unique()) == 1 for row in seqs)  # a sequence is kept or dropped as a whole
    assert {float(row[0]) for row in seqs} == {0.0, 2.0}  # the kept ones rescaled by 1 / (1 - rate)
    assert 20 < sum(float(row[0]) == 0 for row in seqs) < 70
    assert torch.equal(drop_path(x, 0.5, False, groups), x)


def test_rope_scores_depend_only_on_relative_position():
    """q.k after rotation is the same for two patch pairs with the same (row, col) offset."""
    torch.manual_seed(2)
    grid, head_dim = 6, 16
    angles = _rope_angles(grid, grid, head_dim, 100.0, "cpu")
    q, k = torch.randn(head_dim), torch.randn(head_dim)

    def score(pos_q, pos_k):
        tokens = torch.zeros(1, 1, 1 + grid * grid, head_dim)
        tokens[0, 0, 1 + pos_q[0] * grid + pos_q[1]] = q
        rq = apply_rope(tokens, angles.cos(), angles.sin())[0, 0, 1 + pos_q[0] * grid + pos_q[1]]
        tokens = torch.zeros(1, 1, 1 + grid * grid, head_dim)
        tokens[0, 0, 1 + pos_k[0] * grid + pos_k[1]] = k
        rk = apply_rope(tokens, angles.cos(), angles.sin())[0, 0, 1 + pos_k[0] * grid + pos_k[1]]
        return float(rq @ rk)

    assert score((1, 2), (3, 1)) == pytest.approx(score((2, 4), (4, 3)), abs=1e-4)
    assert score((0, 0), (0, 0)) == pytest.approx(float(q @ k), abs=1e-4)  # no offset: no rotation effect
    assert abs(score((0, 0), (0, 3)) - score((0, 0), (3, 0))) > 1e-3  # rows and columns are distinct


def epps_pulley_reference(u: np.ndarray) -> float:
    """N * integral over R of |ecf(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt, in float64 on a fine grid."""
    t = np.linspace(-8, 8, 8001)
    ecf = np.exp(1j * np.outer(t, u)).mean(1)
    integrand = np.abs(ecf - np.exp(-t ** 2 / 2)) ** 2 * np.exp(-t ** 2 / 2)
    return len(u) * np.trapezoid(integrand, t)


def test_sigreg_matches_a_float64_integral_and_separates_gaussian_from_collapse():
    torch.manual_seed(3)
    gauss = torch.randn(1, 512, 8)
    direction = torch.zeros(8, 1)
    direction[0] = 1.0
    for z in (gauss, gauss * 0.3 + 1.0):
        ours = objectives.sigreg(z, direction).item()
        ref = epps_pulley_reference(z[0, :, 0].double().numpy())
        assert ours == pytest.approx(ref, rel=0.03)
    dirs = objectives.random_directions(8, 64, seed=0, device="cpu")
    healthy = objectives.sigreg(gauss, dirs).item()
    collapsed = objectives.sigreg(torch.zeros(1, 512, 8) + 0.5, dirs).item()
    assert healthy < 2 and collapsed > 50 * healthy


def test_random_directions_are_unit_and_reproducible():
    a = objectives.random_directions(16, 32, seed=5, device="cpu")
    assert torch.allclose(a.norm(dim=0), torch.ones(32))
    assert torch.equal(a, objectives.random_directions(16, 32, seed=5, device="cpu"))
    assert not torch.equal(a, objectives.random_directions(16, 32, seed=6, device="cpu"))


def test_invariance_and_infonce_reward_agreeing_views():
    torch.manual_seed(4)
    base = torch.randn(1, 64, 16)
    same = base.repeat(4, 1, 1)
    noisy = same + 0.5 * torch.randn_like(same)
    assert objectives.invariance(same, 2).item() == 0
    assert objectives.invariance(noisy, 2).item() > 0.1
    aligned = objectives.info_nce(same + 1e-3 * torch.randn_like(same), temperature=0.1).item()
    unrelated = objectives.info_nce(torch.randn(4, 64, 16), temperature=0.1).item()
    assert aligned < 0.5 * unrelated
    # a huge temperature makes every candidate equally likely: the loss is log(#candidates) = log(4*64 - 1)
    flat = objectives.info_nce(torch.randn(4, 64, 16), temperature=1e4).item()
    assert flat == pytest.approx(math.log(4 * 64 - 1), rel=1e-3)


def test_views_have_the_configured_shapes_and_vary_per_image():
    cfg = AugConfig(global_views=2, local_views=3)
    images = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8)
    images[1] = images[0]
    gen = torch.Generator().manual_seed(0)
    glob, loc = make_views(images, cfg, gen)
    assert glob.shape == (10, 3, 32, 32) and loc.shape == (15, 3, 16, 16)
    assert torch.isfinite(glob).all() and torch.isfinite(loc).all()
    assert not torch.allclose(glob[0], glob[1])  # identical images, different random augmentations


def test_full_crop_without_flip_is_the_identity_and_flip_mirrors():
    x = torch.rand(2, 3, 8, 8)
    u = draw(2, "cpu")
    same = random_resized_crop(x, 8, (1.0, 1.0), (1.0, 1.0), flip_p=0.0, u=u)
    assert torch.allclose(same, x, atol=1e-5)
    mirrored = random_resized_crop(x, 8, (1.0, 1.0), (1.0, 1.0), flip_p=1.0, u=u)
    assert torch.allclose(mirrored, x.flip(-1), atol=1e-5)


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = torch.full((2, 3, 16, 16), 0.4)
    u = draw(2, "cpu")
    assert torch.allclose(gaussian_blur(flat, 1.0, (1.0, 1.0), u), flat, atol=1e-6)
    noise = torch.rand(2, 3, 16, 16)
    assert gaussian_blur(noise, 1.0, (1.0, 1.0), u).std() < 0.7 * noise.std()
    assert torch.equal(gaussian_blur(noise, 0.0, (1.0, 1.0), u), noise)


def test_blur_is_the_2d_gaussian_convolution_with_reflected_borders():
    x = torch.rand(2, 3, 9, 11)
    offsets = torch.arange(-2, 3, dtype=torch.float32)
    k1 = torch.exp(-offsets ** 2 / (2 * 1.3 ** 2))
    k2 = torch.outer(k1, k1) / k1.sum() ** 2
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    want = torch.nn.functional.conv2d(padded, k2.expand(3, 1, 5, 5), groups=3)
    torch.testing.assert_close(gaussian_blur(x, 1.0, (1.3, 1.3), draw(2, "cpu")), want, rtol=1e-5, atol=1e-6)


def test_views_are_a_function_of_the_draws_and_compile_to_the_same_numbers():
    """Same images and draws, same views (the random numbers are all in the draws); torch.compile's fused
    version (`compiled_views`, what `train` runs under DDP; on one GPU the step's graph compiles `views_with`
    with the rest) gives the same views to float32 rounding."""
    cfg = AugConfig(global_views=2, local_views=1, jitter_p=0.5, gray_p=0.5, blur_p=0.5, solarize_p=0.5)
    images = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8)
    u = draw(3 * 8, "cpu", torch.Generator().manual_seed(0))
    glob, loc = augment.views_with(images, u, cfg)
    assert glob.shape == (16, 3, 32, 32) and loc.shape == (8, 3, 16, 16)
    again = augment.views_with(images, u.clone(), cfg)
    assert torch.equal(again[0], glob) and torch.equal(again[1], loc)
    other_u = draw(3 * 8, "cpu", torch.Generator().manual_seed(1))
    other = augment.views_with(images, other_u, cfg)
    assert not torch.allclose(other[0], glob) and not torch.allclose(other[1], loc)
    # the global views use the first 16 rows of the draws, the local views the last 8
    mixed = augment.views_with(images, torch.cat([other_u[:16], u[16:]]), cfg)
    assert torch.equal(mixed[1], loc) and not torch.allclose(mixed[0], glob)
    compiled = augment.compiled_views("cpu")(images, u, cfg)
    torch.testing.assert_close(compiled[0], glob, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled[1], loc, rtol=1e-5, atol=1e-5)


def test_kernel_runs_group_a_trace_by_launcher_and_show_the_gpu_waiting():
    from site_builder.train.bench import kernel_runs

    def launch(name, corr):
        return {"cat": "cuda_runtime", "name": name, "args": {"correlation": corr}}

    def kernel(ts, dur, corr):
        return {"cat": "kernel", "name": "k", "ts": ts, "dur": dur, "args": {"correlation": corr}}

    trace = {"traceEvents": [launch("cudaLaunchKernel", 1), launch("cudaLaunchKernel", 2),
                             launch("cudaGraphLaunch", 3), launch("cudaGraphLaunch", 4), launch("cuLaunchKernel", 5),
                             kernel(0, 100, 1), kernel(400, 100, 2),  # one by one: 200 us busy in 500 us
                             kernel(500, 1000, 3), kernel(1500, 1000, 4),  # graph: no wait
                             kernel(2600, 50, 5)]}
    assert kernel_runs(trace).splitlines() == [
        "kernel runs (last step):",
        "  one by one: 2 kernels, 0.20 ms busy in 0.50 ms",
        "  graph: 2 kernels, 2.00 ms busy in 2.00 ms",
        "  one by one: 1 kernels, 0.05 ms busy in 0.05 ms",
        "all: 5 kernels, 2.25 ms busy in 2.65 ms"]
