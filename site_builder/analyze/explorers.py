"""Data of the site's explorers (issue 15): the embedding map and the attention viewer.

Per model, into `<out>/<run>/` (`analyze --explorers`; default out: exports/explorers):
    embedding_map.json    2-D PCA of the L2-normalised CLS embeddings of every test image, the fine and
                          super-class label of each, and each image's 8 nearest neighbours in the full
                          embedding space (cosine), as test indices
    attention_viewer.json CLS->patch attention of every layer and head for the explorer images
                          (the panel plus one image per super-class), with each image as a PNG
Shared by every model (the test images do not depend on the model), in `<out>/cifar100-test/`:
    atlas-NNN.jpg         the test images as 32x32 thumbnails, 100 per tile (10 x 10, row-major), so that
                          image i is tile i // 100, cell i % 100; a page fetches only the tiles it shows

Why PCA and not t-SNE/UMAP: it is deterministic (no seed, identical for every model), needs no new
dependency, takes a second for 10,000 points, and keeps the scale: on the unit sphere, a collapsed
model's embeddings all point one way and its map shrinks to a dot, where t-SNE/UMAP rescale every map
to the same spread and would draw a collapsed model as a healthy-looking cloud.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from site_builder.analyze import figures, metrics
from site_builder.errors import UserError

NEIGHBOURS = 8
TILE = 10  # thumbnails per atlas row and column
ATLAS_FOLDER = "cifar100-test"
ATTENTION_SCALE = 100_000  # attention probabilities are stored as integers in units of 1e-5
JPEG_QUALITY = 90


def coarse_labels(data_dir: Path, count: int) -> np.ndarray:
    """Super-class (0-19) of every test image, from the shards' `y_coarse` (the images' md5 is checked
    by load_cifar100, which the caller has run)."""
    files = sorted(Path(data_dir).glob("test-*.npz"))
    if not files:
        raise UserError("the explorers need the npz shards (test-*.npz, with y_coarse)", path=data_dir)
    parts = []
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            if "y_coarse" not in z:
                raise UserError("shard lacks the array 'y_coarse'", path=f)
            parts.append(z["y_coarse"].astype(np.int64))
    labels = np.concatenate(parts)
    if len(labels) != count or labels.min() < 0 or labels.max() > 19:
        raise UserError(f"y_coarse: expected {count} labels in 0-19", path=data_dir)
    return labels


def explorer_images(panel: tuple[int, ...], coarse: np.ndarray) -> list[int]:
    """The panel images, then the first test image of each super-class not yet represented."""
    chosen = list(panel)
    for c in range(20):
        if not any(coarse[i] == c for i in chosen):
            chosen.append(int(np.flatnonzero(coarse == c)[0]))
    return chosen


def embedding_map(emb: torch.Tensor) -> dict:
    """2-D PCA of the L2-normalised `[N, D]` embeddings plus each one's 8 nearest neighbours (cosine).

    Coordinates are on the unit sphere's scale (not rescaled per model), so a collapsed model's map is
    small. The sign of each component is fixed (largest loading positive) so re-runs agree.
    """
    z = F.normalize(emb.double(), dim=1)
    centred = z - z.mean(dim=0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:2]
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    xy = centred @ (components * signs).T
    variance = s.square()
    return {
        "x": figures.round_sig(xy[:, 0].numpy()),
        "y": figures.round_sig(xy[:, 1].numpy()),
        "explained": figures.round_sig((variance[:2] / variance.sum()).numpy()),
        "spread": float(f"{math.sqrt(variance.sum().item() / len(z)):.4g}"),  # RMS distance to the centre
        "k": NEIGHBOURS,
        "neighbours": nearest_neighbours(z, NEIGHBOURS).flatten().tolist(),
    }


def nearest_neighbours(z: torch.Tensor, k: int, block: int = 1000) -> torch.Tensor:
    """`[N, k]` indices of each row's k most cosine-similar other rows (rows are unit vectors)."""
    out = []
    for start in range(0, len(z), block):
        sims = z[start : start + block] @ z.T
        rows = torch.arange(start, min(start + block, len(z)))
        sims[rows - start, rows] = -math.inf  # not its own neighbour
        out.append(sims.topk(k, dim=1).indices)
    return torch.cat(out)


def attention_viewer(p: torch.Tensor, images_u8: np.ndarray, indices: list[int], names: list[str],
                     superclasses: list[str], resolution: int, patch: int) -> dict:
    """`p` = `[L, B, H, N]` CLS->patch attention of the explorer images -> the viewer's file."""
    layers, _, heads, n = p.shape
    grid = math.isqrt(n)
    q = (p.double() * ATTENTION_SCALE).round().to(torch.int64).permute(1, 0, 2, 3)  # [B, L, H, N]
    return {
        "resolution": resolution, "patch": patch, "grid": grid, "layers": layers, "heads": heads,
        "scale": ATTENTION_SCALE, "sparsity_threshold": metrics.SPARSITY_THRESHOLD,
        "images": [{"index": i, "label": name, "superclass": sc, "png": png_data_url(image),
                    "attention": q[b].tolist()}
                   for b, (i, name, sc, image) in enumerate(zip(indices, names, superclasses, images_u8))],
    }


def png_data_url(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def atlas_tiles(images_u8: np.ndarray) -> dict[str, bytes]:
    """`atlas-NNN.jpg` tiles of TILE x TILE thumbnails (the last tile padded with black)."""
    from PIL import Image

    per_tile = TILE * TILE
    size = images_u8.shape[1]
    tiles = {}
    for t in range(math.ceil(len(images_u8) / per_tile)):
        chunk = images_u8[t * per_tile : (t + 1) * per_tile]
        canvas = np.zeros((TILE * size, TILE * size, 3), dtype=np.uint8)
        for j, image in enumerate(chunk):
            r, c = divmod(j, TILE)
            canvas[r * size : (r + 1) * size, c * size : (c + 1) * size] = image
        buf = io.BytesIO()
        Image.fromarray(canvas).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
        tiles[f"atlas-{t:03d}.jpg"] = buf.getvalue()
    return tiles
