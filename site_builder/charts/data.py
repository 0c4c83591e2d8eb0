"""Reading the export files a chapter points at (README, "File formats"): history CSV / columnar JSON,
flat {key: value} JSON, panels JSON.

Errors are raised as UserError without a location; the caller adds the chapter's file and line.
Large CSVs are streamed with pyarrow and only the requested columns are parsed.
"""

from __future__ import annotations

import csv
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from site_builder.errors import UserError

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class SourceMissing(Exception):
    """The source file does not exist yet: the page shows a 'pending' box instead of numbers."""


def resolve_source(exports: Path, rel: str) -> Path:
    """`rel` is relative to exports/; it may not leave that folder."""
    rel = str(rel).strip()
    try:
        candidate = (exports / rel).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UserError(f"source '{rel}': {exc}") from None
    if Path(rel).is_absolute() or not candidate.is_relative_to(exports.resolve()):
        raise UserError(f"source '{rel}' must be a path inside exports/ (for example runs/<run>/history.csv)")
    if not candidate.is_file():
        raise SourceMissing(rel)
    return candidate


@dataclass
class Column:
    """One numeric column: `values` (float64; NaN/inf as logged) and `logged` (False where the cell was empty)."""

    values: np.ndarray
    logged: np.ndarray


def _unknown(kind: str, name: str, rel: str, existing: list[str]) -> UserError:
    guess = difflib.get_close_matches(name, existing, n=1)
    hint = f" Did you mean '{guess[0]}'?" if guess else ""
    return UserError(f"{kind} '{name}' is not in {rel}.{hint} {kind.capitalize()}s there: {', '.join(existing)}")


def csv_header(path: Path, rel: str | None = None) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark is not a name
            return next(csv.reader(f), [])
    except UnicodeDecodeError as exc:
        raise UserError(f"{rel or path.name}: not UTF-8 text (byte {exc.start}); write the file as UTF-8") from None


def columns_of(path: Path, rel: str | None = None) -> list[str]:
    columns = csv_header(path, rel) if path.suffix == ".csv" else list(load_columnar(path, rel)["columns"])
    twice = sorted({str(c) for c in columns if columns.count(c) > 1})
    if twice:
        raise UserError(f"{rel or path.name}: column '{twice[0]}' appears more than once; which one to use is ambiguous")
    return columns


def load_columnar(path: Path, rel: str | None = None) -> dict:
    """A columnar JSON table, its shape checked: {"columns": [names], "data": {name: [one value per row]}}."""
    rel = rel or path.name
    table = load_json(path, rel)
    if not isinstance(table, dict) or not isinstance(table.get("columns"), list) or not isinstance(table.get("data"), dict):
        raise UserError(f"{rel} is not a table (CSV or columnar JSON with 'columns' and 'data')")
    if not all(isinstance(name, str) for name in table["columns"]):
        raise UserError(f"{rel}: field 'columns' must list column names (text)")
    lengths = set()
    for name in table["columns"]:
        if not isinstance(table["data"].get(name), list):
            raise UserError(f"{rel}: field 'data.{name}' is missing or not a list (one value per row)")
        lengths.add(len(table["data"][name]))
    if len(lengths) > 1:
        raise UserError(f"{rel}: field 'data': columns have different lengths ({', '.join(map(str, sorted(lengths)))})")
    return table


def load_json(path: Path, rel: str | None = None) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise UserError(f"{rel or path.name}: invalid JSON: {exc}") from None


# Columns already read in this build, per file (path, size, mtime): charts and values over the same
# history read it once. Cleared at the start of each build (clear_column_memo), so it never outgrows one.
_COLUMN_MEMO: dict[tuple, dict[str, Column]] = {}


def clear_column_memo() -> None:
    _COLUMN_MEMO.clear()


def read_numeric_columns(path: Path, rel: str, names: list[str]) -> dict[str, Column]:
    """Read the named columns of a history table as numbers (CSV streamed, only these columns parsed);
    columns this build has already read from the same file are not read again."""
    st = path.stat()
    memo = _COLUMN_MEMO.setdefault((str(path), st.st_size, st.st_mtime_ns), {})
    missing = [name for name in dict.fromkeys(names) if name not in memo]
    if missing:
        memo.update(_read_numeric_columns(path, rel, missing))
    return {name: memo[name] for name in dict.fromkeys(names)}


def _read_numeric_columns(path: Path, rel: str, names: list[str]) -> dict[str, Column]:
    existing = columns_of(path, rel)
    for name in names:
        if name not in existing:
            raise _unknown("column", name, rel, existing)
    if path.suffix == ".csv":
        return _read_csv_numeric(path, rel, names)
    data = load_columnar(path, rel)["data"]
    out = {}
    for name in names:
        raw = data[name]
        logged = np.array([v is not None for v in raw], dtype=bool)
        try:
            values = np.array([NON_FINITE.get(v, v) if v is not None else math.nan for v in raw], dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(f"column '{name}' in {rel} is not numeric") from None
        out[name] = Column(values, logged)
    return out


def _read_csv_numeric(path: Path, rel: str, names: list[str]) -> dict[str, Column]:
    convert = pacsv.ConvertOptions(
        include_columns=names,
        column_types={n: pa.float64() for n in names},
        null_values=[""],  # empty = not logged; "nan"/"inf" stay values
        strings_can_be_null=False,
    )
    try:
        # 1 MB blocks keep the parser's buffers small (16 MB blocks added ~230 MB of peak memory on a 1 GB history)
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 20), convert_options=convert)
        table = reader.read_all()
    except pa.ArrowInvalid as exc:
        raise UserError(f"{rel}: cannot read as numbers: {str(exc).splitlines()[0]}") from None
    out = {}
    for name in names:
        chunks = table.column(name).chunks
        logged = _concat([_validity(c) for c in chunks], bool)
        values = np.concatenate([_as_numpy(c, np.float64) for c in chunks]) if chunks else np.zeros(0)
        values[~logged] = math.nan  # the data buffer's bytes under a null are unspecified
        out[name] = Column(values, logged)
    return out


def _as_numpy(array: pa.Array, dtype) -> np.ndarray:
    """The data buffer of a primitive pyarrow array as numpy (nulls not applied). pyarrow's own
    to_numpy() and fill_null() import pandas, which costs about a second of start-up."""
    itemsize = np.dtype(dtype).itemsize
    return np.frombuffer(array.buffers()[1], dtype, count=len(array), offset=array.offset * itemsize)


def _validity(array: pa.Array) -> np.ndarray:
    """True where the array holds a value, from its validity bitmap (pyarrow.compute's is_valid would do
    the same, but importing pyarrow.compute costs ~0.1 s of start-up)."""
    bitmap = array.buffers()[0]
    if bitmap is None or array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="little")
    return bits[array.offset : array.offset + len(array)].astype(bool)


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def read_table(path: Path, rel: str, columns: list[str] | None) -> tuple[list[str], list[list[Any]]]:
    """Rows of a CSV / columnar JSON table (values as Python objects; None = empty)."""
    existing = columns_of(path, rel)
    columns = columns or existing
    for name in columns:
        if name not in existing:
            raise _unknown("column", name, rel, existing)
    if path.suffix == ".csv":
        convert = pacsv.ConvertOptions(include_columns=columns, null_values=[""], strings_can_be_null=True)
        try:
            table = pacsv.read_csv(path, convert_options=convert)
        except pa.ArrowInvalid as exc:
            raise UserError(f"{rel}: cannot read: {str(exc).splitlines()[0]}") from None
        data = {c: table.column(c).to_pylist() for c in columns}
    else:
        raw = load_columnar(path, rel)["data"]
        data = {c: [NON_FINITE.get(v, v) if isinstance(v, str) else v for v in raw[c]] for c in columns}
    n_rows = len(next(iter(data.values()))) if data else 0
    return columns, [[data[c][i] for c in columns] for i in range(n_rows)]


def is_table(path: Path, rel: str) -> bool:
    """CSV or columnar JSON (rows of metrics), as opposed to a flat {key: value} JSON file."""
    if path.suffix == ".csv":
        return True
    data = load_json(path, rel)
    return isinstance(data, dict) and "columns" in data and "data" in data


def read_mapping(path: Path, rel: str) -> dict[str, Any]:
    """A flat {key: value} JSON file (config.json, summary.json)."""
    data = load_json(path, rel) if path.suffix == ".json" else None
    if not isinstance(data, dict) or ("columns" in data and "data" in data):
        raise UserError(f"{rel} is not a flat {{key: value}} JSON file")
    return data


def lookup_key(mapping: dict[str, Any], key: str, rel: str) -> Any:
    if key not in mapping:
        raise _unknown("key", key, rel, sorted(mapping))
    value = mapping[key]
    return NON_FINITE.get(value, value) if isinstance(value, str) else value


AGGREGATES = ("last", "first", "max", "min")


def aggregate(column: Column, agg: str, name: str, rel: str) -> float:
    """@last/@first: the last/first logged value; @max/@min over the logged values (NaN ignored)."""
    values = column.values[column.logged]
    if values.size == 0:
        raise UserError(f"column '{name}' in {rel} has no logged values")
    if agg == "last":
        return float(values[-1])
    if agg == "first":
        return float(values[0])
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return math.nan
    return float(finite.max() if agg == "max" else finite.min())
