"""Figure data from features and attention: PCA maps, attention heat maps, spectra, projections.

Pure functions of tensors (no model, no files), so each can be tested on inputs whose answer is known.
Numbers that go into committed files are rounded (`DIGITS` significant digits) so that a re-run gives
byte-identical files and the files stay small.
"""

from __future__ import annotations

import math

import numpy as np
import torch

DIGITS = 4


def round_sig(values, digits: int = DIGITS) -> list:
    """Nested lists of floats rounded to `digits` significant digits (plain Python floats)."""
    arr = np.asarray(values, dtype=np.float64)
    flat = [float(f"{v:.{digits}g}") for v in arr.ravel().tolist()]
    return np.asarray(flat, dtype=np.float64).reshape(arr.shape).tolist()


def pca_rgb(features: torch.Tensor) -> np.ndarray:
    """`[B, N, D]` patch features of B images on a square grid -> `[B, g, g, 3]` uint8 colours.

    A PCA is fitted to each image's own patches, so the colours show how the model divides that image
    into parts (a PCA over the whole panel would spend its components on telling the images apart and
    paint each image almost flat). The top three components become red, green and blue, each scaled
    from its 1st to its 99th percentile over the image's patches. The sign of each component is fixed
    (largest loading positive) so that re-runs give the same colours.
    """
    b, n, _ = features.shape
    grid = math.isqrt(n)
    if grid * grid != n:
        raise ValueError(f"{n} patches do not form a square grid")
    return np.stack([_pca_rgb_one(f).reshape(grid, grid, 3) for f in features.double()])


def _pca_rgb_one(x: torch.Tensor) -> np.ndarray:
    """`[N, D]` -> `[N, 3]` uint8: top three principal components of the rows, scaled to 0-255."""
    x = x - x.mean(dim=0)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    components = vh[:3]  # [<=3, D]
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    scores = x @ (components * signs).T
    lo = torch.quantile(scores, 0.01, dim=0)
    hi = torch.quantile(scores, 0.99, dim=0)
    scaled = ((scores - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    rgb = (scaled * 255).round().to(torch.uint8).cpu().numpy()
    if rgb.shape[1] < 3:  # fewer than three components (tiny feature width): pad with black
        rgb = np.concatenate([rgb, np.zeros((len(rgb), 3 - rgb.shape[1]), dtype=np.uint8)], axis=1)
    return rgb


def singular_spectrum(embeddings: torch.Tensor) -> np.ndarray:
    """Singular values of the centred `[N, D]` embedding matrix, divided by the largest.

    A healthy embedding spreads its variance over many directions (a slow decay); a collapsed one puts
    it in a few, and the curve falls off a cliff to ~0 after them.
    """
    x = embeddings.double()
    s = torch.linalg.svdvals(x - x.mean(dim=0))
    return (s / s[0]).cpu().numpy()


def effective_rank(spectrum: np.ndarray) -> float:
    """exp(entropy) of the normalised singular values (Roy & Vetterli 2007): 1 = one direction."""
    p = spectrum / spectrum.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def random_projections(embeddings: torch.Tensor, num_directions: int, seed: int) -> torch.Tensor:
    """1-D projections a^T z of each embedding on `num_directions` random unit directions, flattened.

    These are what SIGReg compares with N(0, 1). The directions are drawn on the CPU from `seed`, so
    every device and every model sees the same ones.
    """
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(embeddings.shape[1], num_directions, generator=g, dtype=torch.float64)
    directions = directions / directions.norm(dim=0, keepdim=True)
    return (embeddings.double().cpu() @ directions).flatten()


def projection_histogram(projections: torch.Tensor, bins: int = 60) -> dict[str, np.ndarray]:
    """Density histogram of projections beside the N(0, 1) density at the bin centres.

    The range is [-4, 4] widened to the 0.1 % / 99.9 % quantiles, so a badly scaled embedding still
    shows its shape. `density` integrates to the fraction of projections inside the range.
    """
    values = projections.double().cpu()
    lo = min(-4.0, torch.quantile(values, 0.001).item())
    hi = max(4.0, torch.quantile(values, 0.999).item())
    counts, edges = np.histogram(values.numpy(), bins=bins, range=(lo, hi))
    width = edges[1] - edges[0]
    centres = (edges[:-1] + edges[1:]) / 2
    return {
        "x": centres,
        "density": counts / (len(values) * width),
        "normal_pdf": np.exp(-centres**2 / 2) / math.sqrt(2 * math.pi),
    }


def image_panels(names: list[str], images: np.ndarray, maps: np.ndarray, map_label: str) -> list[dict]:
    """Input image and its colour map side by side, per image: panels with `rgb`."""
    panels = []
    for name, image, rgb in zip(names, images, maps):
        panels.append({"title": f"{name} · input", "rgb": np.asarray(image, dtype=np.uint8).tolist()})
        panels.append({"title": f"{name} · {map_label}", "rgb": np.asarray(rgb, dtype=np.uint8).tolist()})
    return panels


def attention_panels(names: list[str], p: torch.Tensor) -> list[dict]:
    """`[L, B, H, N]` CLS-to-patch attention -> heat-map panels, one frame per layer (1-based).

    Per layer and image: one panel per head ("h1", "h2", ...), then the mean over heads, titled with
    the image's name (short titles: a row of these panels is narrow).
    """
    layers, _, heads, n = p.shape
    grid = math.isqrt(n)
    maps = p.reshape(layers, len(names), heads, grid, grid).double().cpu()
    panels = []
    for layer in range(layers):
        for i, name in enumerate(names):
            for h in range(heads):
                z = round_sig(maps[layer, i, h].numpy())
                panels.append({"title": f"h{h + 1}", "frame": str(layer + 1), "z": z})
            z = round_sig(maps[layer, i].mean(dim=0).numpy())
            panels.append({"title": f"{name} · mean", "frame": str(layer + 1), "z": z})
    return panels
