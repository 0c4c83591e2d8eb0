"""Chart specs (the ```chart blocks, README "Writing chapters") -> Plotly figure JSON + full-data CSV.

The figure JSON is embedded in the page and drawn by templates/assets/site.js when it scrolls into
view; that script also applies the smoothing slider and the log-y toggle. Line traces are cut to at most
MAX_POINTS points with MinMaxLTTB (keeps each bucket's minimum and maximum, so spikes survive); the CSV
beside the chart has every logged row. A series may carry a band (`band: {y_col: [lo_col, hi_col]}`, e.g. the
min and max over seeds), drawn by site.js as a filled area in the series' colour.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from site_builder.charts.data import Column, SourceMissing, read_numeric_columns, read_table, resolve_source
from site_builder.charts.panels import panels_figure
from site_builder.errors import UserError

MAX_POINTS = 2000
IMAGES = "\0images"  # the pictures file among a panels chart's paths (no source label can be this)
CHART_TYPES = ("line", "scatter", "bar", "panels")
SPEC_KEYS = {"id", "source", "x", "y", "title", "caption", "smoothing", "log_y", "type", "x_title", "y_title", "height", "images", "names", "group", "band"}


@dataclass
class ChartResult:
    figure: dict | None  # None when a source is missing (pending)
    csv: bytes | None = None  # full data for download
    missing: list[str] = field(default_factory=list)  # sources that do not exist yet
    cache_key: str = ""  # its entry in the chart cache ('' when not cached)


def check_spec(spec: dict) -> dict:
    """Validate a chart block's keys and values; returns the spec with defaults filled in."""
    for key in spec:
        if key.startswith("_"):
            continue
        if key not in SPEC_KEYS:
            guess = difflib.get_close_matches(key, sorted(SPEC_KEYS), n=1)
            hint = f" Did you mean '{guess[0]}'?" if guess else ""
            raise UserError(f"chart: unknown key '{key}'.{hint} Keys: {', '.join(sorted(SPEC_KEYS))}")
    spec = dict(spec)
    spec.setdefault("type", "line")
    if spec["type"] not in CHART_TYPES:
        raise UserError(f"chart: type '{spec['type']}' is not one of {', '.join(CHART_TYPES)}")
    if "source" not in spec:
        raise UserError("chart: 'source' is required (a path under exports/, or {label: path, ...})")
    if spec["type"] != "panels":
        if "y" not in spec:
            raise UserError("chart: 'y' is required (a column or a list of columns)")
        spec["y"] = [spec["y"]] if isinstance(spec["y"], str) else spec["y"]
        if not isinstance(spec["y"], list) or not all(isinstance(c, str) for c in spec["y"]):
            raise UserError("chart: 'y' must be a column name or a list of column names")
        if not spec["y"]:
            raise UserError("chart: 'y' is an empty list; name at least one column")
        if not isinstance(spec.setdefault("x", "_step"), str):
            raise UserError(f"chart: 'x' must be a column name, got {spec['x']!r}")
    for key in ("title", "caption", "x_title", "y_title"):  # shown as text; a mapping or null inside would print as Python
        value = spec.get(key)
        if key in spec and value is None:
            del spec[key]  # `title:` left empty is no title (not "None")
        if isinstance(value, dict) or (isinstance(value, list) and not all(isinstance(v, (str, int, float)) for v in value)):
            raise UserError(f"chart: '{key}' must be text, got a {type(value).__name__} (quote it)")
    names = spec.setdefault("names", {})  # legend words for columns: {train/inv: invariance}
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise UserError("chart: 'names' must be a mapping {column: legend text}")
    band = spec.setdefault("band", {})  # a shaded area per series: {y_col: [lo_col, hi_col]}
    if not isinstance(band, dict) or not all(isinstance(v, list) and len(v) == 2 and all(isinstance(c, str) for c in v)
                                             for v in band.values()):
        raise UserError("chart: 'band' must be a mapping {y column: [low column, high column]}")
    if band and spec["type"] not in ("line", "scatter"):
        raise UserError(f"chart: 'band' is for line and scatter charts, not type '{spec['type']}'")
    for column in band:
        if column not in spec["y"]:
            raise UserError(f"chart: 'band' names '{column}', which is not one of the chart's y columns: {', '.join(spec['y'])}")
    smoothing = spec.setdefault("smoothing", 0)
    if not isinstance(smoothing, (int, float)) or not 0 <= smoothing < 1:
        raise UserError(f"chart: smoothing must be a number in [0, 1), got {smoothing!r}")
    if not isinstance(spec.setdefault("log_y", False), bool):
        raise UserError("chart: log_y must be true or false")
    height = spec.setdefault("height", 380)
    if not isinstance(height, int) or isinstance(height, bool) or not 100 <= height <= 2000:
        raise UserError(f"chart: height must be a whole number of pixels between 100 and 2000, got {height!r}")
    group = spec.get("group")  # charts of one group share hover and x zoom (templates/assets/linked-charts.js)
    if group is not None and (not isinstance(group, str) or not group.strip()):
        raise UserError(f"chart: group must be a name (text), got {group!r}")
    return spec


def sources_of(spec: dict) -> dict[str, str]:
    """{label: path}; a single path gets the label '' (one run: traces are named by column)."""
    source = spec["source"]
    if isinstance(source, str):
        return {"": source}
    if isinstance(source, dict) and source and all(isinstance(v, str) for v in source.values()):
        return {str(k): v for k, v in source.items()}
    raise UserError("source must be a path or a mapping {label: path}")


def files_of(spec: dict) -> list[str]:
    """Every file a chart reads: its sources and, for panels, the pictures file (`images`)."""
    images = spec.get("images")
    if images is not None and not isinstance(images, str):
        raise UserError("chart: 'images' must be a path (a panels file with '<image> · input' pictures)")
    return [*sources_of(spec).values(), *([images] if images else [])]


def build_chart(spec: dict, exports: Path) -> ChartResult:
    spec = check_spec(spec)  # a no-op on a checked spec (what the build passes)
    paths: dict[str, tuple[str, Path]] = {}
    missing = []
    for label, rel in [*sources_of(spec).items(), *([(IMAGES, spec["images"])] if spec.get("images") else [])]:
        try:
            paths[label] = (rel, resolve_source(exports, rel))
        except SourceMissing:
            missing.append(rel)
    if missing:
        return ChartResult(None, missing=missing)
    if spec["type"] == "panels":
        images = paths.pop(IMAGES, None)
        return ChartResult(panels_figure(paths, images))
    return _series_chart(spec, paths)


def _series_chart(spec: dict, paths: dict[str, tuple[str, Path]]) -> ChartResult:
    if spec["type"] == "bar":
        return _bar_chart(spec, paths)
    x_name, y_names = spec["x"], spec["y"]
    data_names = list(dict.fromkeys([*y_names, *(c for pair in spec["band"].values() for c in pair)]))
    traces, tables = [], []
    for label, (rel, path) in paths.items():
        columns = read_numeric_columns(path, rel, [x_name, *data_names])
        x = columns[x_name]
        for y_name in y_names:
            xs, ys = _plottable(x, columns[y_name])
            if spec["type"] == "line":
                xs, ys = downsample(xs, ys, MAX_POINTS)
            name = _trace_name(label, spec["names"].get(y_name, y_name), len(y_names))
            traces.append({"name": name, "x": xs.tolist(), "y": ys.tolist()})
            if y_name in spec["band"]:
                traces[-1]["band"] = _band(x, *(columns[c] for c in spec["band"][y_name]))
        tables.append((label, columns))
    return ChartResult(_figure(spec, traces), csv=_full_csv(x_name, data_names, tables))


def _figure(spec: dict, traces: list[dict]) -> dict:
    y_names = spec["y"]
    return {
        "type": spec["type"],
        "smoothing": float(spec["smoothing"]),
        "log_y": spec["log_y"],
        "traces": traces,
        "layout": {
            "xaxis": {"title": {"text": spec.get("x_title", spec["x"])}},
            "yaxis": {"title": {"text": spec.get("y_title", y_names[0] if len(y_names) == 1 else "")}},
        },
    }


def _bar_chart(spec: dict, paths: dict[str, tuple[str, Path]]) -> ChartResult:
    """Bars over a category column (e.g. method names); rows whose value is missing or not finite are left out."""
    x_name, y_names = spec["x"], spec["y"]
    traces, out = [], io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((["run"] if len(paths) > 1 else []) + [x_name, *y_names])
    for label, (rel, path) in paths.items():
        _, rows = read_table(path, rel, list(dict.fromkeys([x_name, *y_names])))
        index = {name: i for i, name in enumerate(dict.fromkeys([x_name, *y_names]))}
        for row in rows:
            writer.writerow(([label] if len(paths) > 1 else []) + ["" if row[index[n]] is None else row[index[n]] for n in [x_name, *y_names]])
        for y_name in y_names:
            pairs = [(row[index[x_name]], row[index[y_name]]) for row in rows]
            if any(v is not None and not isinstance(v, (int, float)) for _, v in pairs):
                raise UserError(f"chart: column '{y_name}' in {rel} is not numeric")
            pairs = [(x, float(v)) for x, v in pairs if v is not None and math.isfinite(v)]
            name = _trace_name(label, spec["names"].get(y_name, y_name), len(y_names))
            traces.append({"name": name, "x": [x for x, _ in pairs], "y": [v for _, v in pairs]})
    return ChartResult(_figure(spec, traces), csv=out.getvalue().encode())


def _trace_name(run: str, column: str, n_columns: int) -> str:
    """The legend entry: the column for one run, the run for one column, both otherwise."""
    if not run:
        return column
    return run if n_columns == 1 else f"{run} · {column}"


def _plottable(x: Column, *ys: Column) -> tuple[np.ndarray, ...]:
    """Rows where x and every y were logged and are finite, sorted by x (Plotly cannot draw inf)."""
    keep = x.logged & np.isfinite(x.values)
    for y in ys:
        keep &= y.logged & np.isfinite(y.values)
    arrays = [c.values if keep.all() else c.values[keep] for c in (x, *ys)]  # no copy when all rows count
    if arrays[0].size > 1 and np.any(arrays[0][1:] < arrays[0][:-1]):
        order = np.argsort(arrays[0], kind="stable")
        arrays = [a[order] for a in arrays]
    return tuple(arrays)


def _band(x: Column, lo: Column, hi: Column) -> dict:
    """{"x", "lo", "hi"}: the rows where both bounds are drawable; over MAX_POINTS, the points that
    downsampling keeps for either bound (so both envelopes keep their extremes)."""
    xs, los, his = _plottable(x, lo, hi)
    if xs.size > MAX_POINTS:
        index = np.union1d(downsample_index(xs, los, MAX_POINTS), downsample_index(xs, his, MAX_POINTS))
        xs, los, his = xs[index], los[index], his[index]
    return {"x": xs.tolist(), "lo": los.tolist(), "hi": his.tolist()}


def downsample_index(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of at most n_out points, keeping extremes (tsdownsample's MinMaxLTTB); x must be sorted."""
    if x.size <= n_out:
        return np.arange(x.size)
    from tsdownsample import MinMaxLTTBDownsampler

    return MinMaxLTTBDownsampler().downsample(x, y, n_out=n_out)


def downsample(x: np.ndarray, y: np.ndarray, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """At most n_out points, keeping extremes; x must be sorted."""
    if x.size <= n_out:
        return x, y
    index = downsample_index(x, y, n_out)
    return x[index], y[index]


def _full_csv(x_name: str, y_names: list[str], tables: list[tuple[str, dict[str, Column]]]) -> bytes:
    """Every logged row of the plotted columns, one block per run (a 'run' column when there are several)."""
    parts = []
    for label, columns in tables:
        any_logged = np.zeros(columns[x_name].values.size, dtype=bool)
        for name in y_names:
            any_logged |= columns[name].logged
        arrays = {}
        if len(tables) > 1:
            arrays["run"] = _arrow_repeat(label, int(any_logged.sum()))
        rows = slice(None) if any_logged.all() else any_logged  # a slice, not a mask: no copy of a long history
        for name in dict.fromkeys([x_name, *y_names]):
            col = columns[name]
            arrays[name] = _arrow_floats(col.values[rows], None if col.logged.all() else col.logged[rows])
        parts.append(pa.table(arrays))
    table = pa.concat_tables(parts)
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(quoting_style="needed"))
    return sink.getvalue()


# pyarrow's pa.array / pa.scalar import pandas (about a second of start-up), so the CSV columns are
# built from buffers; py_buffer wraps the numpy memory without copying it.


def _arrow_floats(values: np.ndarray, logged: np.ndarray | None) -> pa.Array:
    """float64 column, null where not logged."""
    validity = None if logged is None else pa.py_buffer(np.packbits(logged, bitorder="little"))
    data = pa.py_buffer(np.ascontiguousarray(values, dtype=np.float64))
    return pa.Array.from_buffers(pa.float64(), len(values), [validity, data])


def _arrow_repeat(text: str, n: int) -> pa.Array:
    """A string column holding `text` n times."""
    data = text.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(data)
    return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data * n)])
