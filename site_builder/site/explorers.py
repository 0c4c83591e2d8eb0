"""The `explorer` directive (issue 15): interactive figures drawn by templates/assets/explorers.js.

    ```explorer
    kind: embedding            # embedding | attention | sigreg
    models: {Random init: explorers/random-init, LeJEPA: explorers/final-lejepa-s1}   # not for sigreg
    title: The test set as each model sees it
    how: Hover a point to see its image; click it for its 8 nearest neighbours.   # "how to read", required
    ```

Each becomes `<figure class="explorer" data-explorer="KIND">` with its settings as JSON. The data files
(`embedding_map.json` or `attention_viewer.json` in each model's folder, and for the embedding map the
shared thumbnail atlas `explorers/cifar100-test/atlas-NNN.jpg`) are copied into dist/data/explorers/
under content-hashed names and fetched by the page only when the figure scrolls near. A model whose
file does not exist yet is listed as pending (and warned about), as charts do.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path, PurePosixPath

import orjson

from site_builder.charts.script import json_for_script
from site_builder.errors import UserError

KINDS = {"embedding": "embedding_map.json", "attention": "attention_viewer.json", "sigreg": None}
SPEC_KEYS = {"id", "kind", "models", "title", "caption", "how", "atlas"}
ATLAS = "explorers/cifar100-test"


@dataclass
class ExplorerSpec:
    kind: str
    models: dict[str, str]  # label -> model folder under exports/
    how: str
    atlas: str = ATLAS


def check_explorer_spec(spec: dict) -> ExplorerSpec:
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise UserError(f"explorer: unknown key '{unknown[0]}' (keys: {', '.join(sorted(SPEC_KEYS))})")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise UserError(f"explorer: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    how = spec.get("how")
    if not isinstance(how, str) or not how.strip():
        raise UserError("explorer: 'how' is required: one line telling the reader how to read it")
    models = spec.get("models", {})
    if KINDS[kind] is None:
        if models:
            raise UserError(f"explorer: kind {kind} takes no models")
    elif not isinstance(models, dict) or not models or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in models.items()):
        raise UserError("explorer: models must be a mapping {label: explorers/<run>, ...}")
    atlas = spec.get("atlas", ATLAS)
    if not isinstance(atlas, str):
        raise UserError("explorer: atlas must be a folder under exports/")
    return ExplorerSpec(kind, dict(models), how, atlas)


def dist_bytes(path: Path, out: str) -> bytes:
    """What dist/`out` holds for the export `path`: images as they are; JSON parsed and written back as
    a script, `explorerData("<out>", {...});`, because browsers refuse fetch() from file:// but run
    scripts (the site must work opened from disk). Re-serialising means the file can hold only data."""
    data = path.read_bytes()
    if path.suffix != ".json":
        return data
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UserError(f"not valid JSON ({exc})", path=path) from None
    return b"explorerData(" + orjson.dumps(out) + b", " + orjson.dumps(value) + b");\n"


def _copy(renderer, rel: str, line: int) -> str | None:
    """Copy exports/`rel` into dist/data/explorers/ under a content-hashed name; None while pending."""
    path = renderer._source(rel, line)
    if path is None:
        return None
    name = PurePosixPath(rel)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    out = f"data/explorers/{name.stem}-{digest}{'.js' if name.suffix == '.json' else name.suffix}"
    renderer.b.data_out[out] = dist_bytes(path, out)
    renderer.explorer_files[out] = path.relative_to(renderer.b.project.root).as_posix()
    return out


def _atlas(renderer, folder: str, line: int) -> list[str] | None:
    """Every atlas-NNN.jpg tile of the folder, in order (None while pending)."""
    first = renderer._source(f"{folder}/atlas-000.jpg", line)
    if first is None:
        return None
    names = sorted(p.name for p in first.parent.glob("atlas-[0-9][0-9][0-9].jpg"))
    return [_copy(renderer, f"{folder}/{name}", line) for name in names]


def map_extent(paths: list[Path | None]) -> float:
    """Half-width of the embedding map's square axes, shared by every model of the picker so that cloud
    sizes compare: at least 1, else the largest |coordinate| of any model rounded up to a quarter (the
    coordinates of centred unit vectors can reach 2, e.g. for a collapsed model). Pending models are skipped."""
    largest = 1.0
    for path in paths:
        if path is None:
            continue
        try:
            data = orjson.loads(path.read_bytes())
            largest = max(largest, *(abs(float(v)) for v in data["x"] + data["y"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UserError(f"not an embedding map with x and y coordinates ({exc!r})", path=path) from None
    return math.ceil(largest * 4) / 4


def explorer_html(renderer, spec: dict, line: int, anchor: str, number: str) -> str:
    """The figure for one explorer directive (`renderer` is the page's PageRenderer)."""
    s = check_explorer_spec(spec)
    renderer.page.explorers = True
    config: dict = {"kind": s.kind}
    if KINDS[s.kind]:
        config["models"] = [{"name": label, "url": _copy(renderer, f"{folder.rstrip('/')}/{KINDS[s.kind]}", line)}
                            for label, folder in s.models.items()]
    if s.kind == "embedding":
        config["atlas"] = _atlas(renderer, s.atlas.rstrip("/"), line)
        config["extent"] = map_extent([renderer._source(f"{folder.rstrip('/')}/{KINDS['embedding']}", line)
                                       for folder in s.models.values()])
    how = f'<p class="how-to-read"><strong>How to read.</strong> {escape(s.how)}</p>'
    caption = renderer._caption(f"Figure {number}", spec, line, how)
    id_attr = f' id="{escape(anchor)}"' if anchor else ""
    return (
        f'<figure class="explorer" data-explorer="{s.kind}"{id_attr}>\n'
        f'<div class="explorer-body"><p class="explorer-loading">Loading the explorer…</p></div>\n'
        f'<script type="application/json" class="explorer-config">{json_for_script(config).decode()}</script>\n'
        f"{caption}\n</figure>\n"
    )


def restore_explorer_files(builder, entry) -> None:
    """A page taken from the render cache: copy its explorer data into dist/ again."""
    for out, rel in entry.explorer_files.items():
        builder.data_out[out] = dist_bytes(builder.project.root / rel, out)
