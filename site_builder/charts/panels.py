"""Panels charts (README "File formats"): heat maps and images laid out as a comparison grid.

Rows are the chart's sources (one model each), columns the images, so a reader compares models on one
image. A panel's image is the text before " · " in its title ("fox · mean"); a panel without one takes
the image of another panel in its row of the file (`columns` panels per row), and the rest of its title
is its *view* ("h1", "mean", "PCA"). A file whose titles name no image at all is one column, with a
view per title. Panels whose view is "input" are the pictures themselves: they make
the grid's first row and lie under the heat maps, which are drawn over them translucently (the chart's
`images:` file supplies them when the sources have none, as attention files do not).

Each (row, view) becomes one PNG sprite, frames down and images across, at the data's own resolution:
the browser scales it up with nearest-neighbour sampling (templates/assets/site.js), so every patch
stays a visible square. A heat map is stored as 8-bit grey; its own range travels beside it. Maps that
are distributions (attention: non-negative, summing to 1) share one scale, each patch's weight as a
multiple of uniform attention on a log scale (`_uniform_scale`), so that models, layers and grid sizes
can be compared by colour; other heat maps are scaled to their own range. PNGs are far smaller than
nested lists of numbers: four models' 64×64 attention files are 3 MB of JSON, their sprites 0.36 MB.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from site_builder.charts.data import load_json
from site_builder.errors import UserError

INPUT_VIEW = "input"


@dataclass
class Panel:
    image: str
    view: str
    frame: str
    kind: str  # "z" (heat map) or "rgb"
    values: np.ndarray  # H×W (z) or H×W×3 (rgb)


@dataclass
class PanelsFile:
    title: str
    frame_label: str
    panels: list[Panel] = field(default_factory=list)


def read_panels(path: Path, rel: str) -> PanelsFile:
    """A panels file, checked, with each panel's image and view worked out from the titles."""
    data = load_json(path, rel)
    raw = data.get("panels") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{rel} is not a panels file: it needs a non-empty 'panels' list")
    columns = data.get("columns")
    if columns is not None and (not isinstance(columns, int) or isinstance(columns, bool) or columns < 1):
        raise UserError(f"{rel}: 'columns' must be a positive integer")
    by_frame: dict[str, list[tuple[int, dict]]] = {}
    for i, panel in enumerate(raw):
        if not isinstance(panel, dict) or ("z" in panel) == ("rgb" in panel):
            raise UserError(f"{rel}: panel {i} needs exactly one of 'z' (heat map) or 'rgb' (image)")
        by_frame.setdefault(str(panel.get("frame", "")), []).append((i, panel))
    out = PanelsFile(str(data.get("title", "")), str(data.get("frame_label", "frame")))
    for frame, members in by_frame.items():
        width = columns or len(members)
        for start in range(0, len(members), width):
            row = members[start : start + width]
            named = [str(p.get("title", "")).split(" · ", 1)[0] for _, p in row if " · " in str(p.get("title", ""))]
            for i, panel in row:
                title = str(panel.get("title", i))
                image, dot, view = title.partition(" · ")
                if not dot:  # its row's image, or (no image names at all) one column with a view per title
                    image, view = (named[0], title) if named else ("", title)
                out.panels.append(Panel(image, view, frame, *_values(panel, f"{rel}: panel {title!r}")))
    return out


def _values(panel: dict, where: str) -> tuple[str, np.ndarray]:
    kind = "z" if "z" in panel else "rgb"
    try:
        values = np.asarray(panel[kind], dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{where}: '{kind}' must be a regular grid of numbers (equal-length rows, no text)") from None
    if kind == "z" and values.ndim != 2:
        raise UserError(f"{where}: 'z' must be a 2-D list")
    if kind == "rgb":
        if values.ndim != 3 or values.shape[2] != 3:
            raise UserError(f"{where}: 'rgb' must be H×W×3")
        if not np.all((values >= 0) & (values <= 255)):
            raise UserError(f"{where}: 'rgb' values must be 0-255")
    if values.size == 0:
        raise UserError(f"{where}: '{kind}' is empty")
    return kind, values


def panels_figure(rows: dict[str, tuple[str, Path]], images: tuple[str, Path] | None = None) -> dict:
    """Figure JSON for site.js: {label: (rel, path)} of the rows (models) and an optional pictures file."""
    files = {label: (rel, read_panels(path, rel)) for label, (rel, path) in rows.items()}
    inputs = [p for _, f in files.values() for p in f.panels if p.view == INPUT_VIEW]
    if images is not None:
        inputs = [p for p in read_panels(images[1], images[0]).panels if p.view == INPUT_VIEW]
        if not inputs:
            raise UserError(f"{images[0]}: no panel is an input picture (titled '<image> · input')")
    first = next(iter(files.values()))[1]
    frames = _ordered(p.frame for _, f in files.values() for p in f.panels if p.view != INPUT_VIEW)
    views = _ordered(p.view for _, f in files.values() for p in f.panels if p.view != INPUT_VIEW)
    names = _ordered([p.image for _, f in files.values() for p in f.panels if p.view != INPUT_VIEW] + [p.image for p in inputs])
    figure = {
        "type": "panels",
        "frame_label": first.frame_label,
        "frames": [{"label": frame} for frame in frames],
        "views": views,
        "images": names,
        "rows": [],
        "inputs": None,
        "uniform_cap": UNIFORM_CAP,
    }
    if inputs:
        pictures = {p.image: p for p in inputs}  # the first frame's picture of each image
        shape = _shared_shape([p.values for p in pictures.values()], "input pictures")
        sprite = np.zeros((shape[0], shape[1] * len(names), 3))
        for i, name in enumerate(names):
            if name in pictures:
                sprite[:, i * shape[1] : (i + 1) * shape[1]] = pictures[name].values
        figure["inputs"] = {"png": _png(sprite.round().astype(np.uint8)), "cell": list(shape[:2]), "present": [n in pictures for n in names]}
    for label, (rel, panels_file) in files.items():
        figure["rows"].append(_row(label, rel, panels_file, frames, views, names))
    return figure


def _row(label: str, rel: str, panels_file: PanelsFile, frames: list[str], views: list[str], names: list[str]) -> dict:
    """One model: per view, a sprite (frames down, images across) and each cell's value range."""
    cells = {(p.frame, p.view, p.image): p for p in panels_file.panels if p.view != INPUT_VIEW}
    out = {"label": label, "views": {}}
    for view in views:
        members = [p for p in cells.values() if p.view == view]
        if not members:
            continue
        kinds = {p.kind for p in members}
        if len(kinds) > 1:
            raise UserError(f"{rel}: view '{view}' mixes heat maps ('z') and images ('rgb')")
        kind = kinds.pop()
        h, w = _shared_shape([p.values for p in members], f"view '{view}' of {rel}")[:2]
        scale = "uniform" if kind == "z" and all(_is_distribution(p.values) for p in members) else "range"
        sprite = np.zeros((h * len(frames), w * len(names), 3 if kind == "rgb" else 1))
        ranges: list[list] = []
        for f, frame in enumerate(frames):
            frame_ranges: list = []
            for i, name in enumerate(names):
                panel = cells.get((frame, view, name))
                if panel is None:
                    frame_ranges.append(None)
                    continue
                values = panel.values
                if kind == "z":
                    values, lo, hi = _uniform_scale(values) if scale == "uniform" else _unit(values)
                    frame_ranges.append([lo, hi] if math.isfinite(lo) else "nan")
                    values = values[:, :, None] * 255
                else:
                    frame_ranges.append([0, 255])
                sprite[f * h : (f + 1) * h, i * w : (i + 1) * w] = values
            ranges.append(frame_ranges)
        pixels = sprite.round().astype(np.uint8)
        out["views"][view] = {
            "kind": kind,
            "scale": scale if kind == "z" else "rgb",
            "png": _png(pixels if kind == "rgb" else pixels[:, :, 0]),
            "cell": [h, w],
            "range": ranges,
        }
    return out


UNIFORM_CAP = 16  # a patch with 16 times its uniform share (1/N) gets the top colour


def _is_distribution(z: np.ndarray) -> bool:
    """Non-negative and summing to 1 (an attention map); an all-NaN map counts (it has no values)."""
    finite = z[np.isfinite(z)]
    return finite.size == 0 or (finite.min() >= 0 and abs(finite.sum() - 1) < 1e-3)


def _uniform_scale(p: np.ndarray) -> tuple[np.ndarray, float, float]:
    """An attention map on one scale for every model, layer and grid: log2 of each patch's weight in
    multiples of uniform attention (1/N), from 1 (uniform: transparent) to UNIFORM_CAP (top colour).
    So a nearly flat map looks nearly empty, however its own small range would stretch."""
    finite = np.isfinite(p)
    if not finite.any():
        return np.zeros_like(p), math.nan, math.nan
    ratio = np.where(finite, p, 0.0) * p.size
    scaled = np.clip(np.log2(np.maximum(ratio, 1.0)) / math.log2(UNIFORM_CAP), 0.0, 1.0)
    return scaled, float(p[finite].min()), float(p[finite].max())


def _unit(z: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Scaled to [0, 1] over its own finite range (not-finite cells become 0); returns the range too."""
    finite = np.isfinite(z)
    if not finite.any():
        return np.zeros_like(z), math.nan, math.nan
    lo, hi = float(z[finite].min()), float(z[finite].max())
    scaled = (z - lo) / (hi - lo) if hi > lo else np.zeros_like(z)
    return np.where(finite, scaled, 0.0), lo, hi


def _shared_shape(arrays: list[np.ndarray], what: str) -> tuple[int, ...]:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise UserError(f"the panels of {what} differ in size ({', '.join('×'.join(map(str, s)) for s in sorted(shapes))}); one view must share one size")
    return shapes.pop()


def _ordered(items) -> list[str]:
    return list(dict.fromkeys(items))


def _png(pixels: np.ndarray) -> str:
    """A data: URL, so the figure JSON stays one self-contained value wherever the build puts it."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

