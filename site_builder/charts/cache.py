"""On-disk cache of built charts, so editing prose does not re-read a large history file.

A chart is keyed by its spec, the content hashes of its source files and the chart code itself; the
cache keeps only the entries the latest build used (`prune`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import orjson

from site_builder.charts.figures import ChartResult, build_chart, check_spec, files_of
from site_builder.fsutil import write_bytes_atomic

_CODE_HASH: str | None = None


def _code_hash() -> str:
    global _CODE_HASH
    if _CODE_HASH is None:
        h = hashlib.sha256()
        for path in sorted(Path(__file__).parent.glob("*.py")):
            h.update(path.read_bytes())
        _CODE_HASH = h.hexdigest()
    return _CODE_HASH


class ChartCache:
    def __init__(self, folder: Path, exports: Path, file_hash: Callable[[Path], str]):
        self.folder, self.exports, self.file_hash = folder, exports, file_hash
        self.used: set[str] = set()
        self.hits = 0

    def chart(self, spec: dict) -> ChartResult:
        paths = [self.exports / rel for rel in files_of(check_spec(spec))]
        if not all(p.is_file() for p in paths):
            return build_chart(spec, self.exports)  # pending: nothing worth caching
        key_source = orjson.dumps([spec, _code_hash(), [self.file_hash(p) for p in paths]], option=orjson.OPT_SORT_KEYS)
        key = hashlib.sha256(key_source).hexdigest()
        self.used.add(key)
        figure_file, csv_file = self.folder / f"{key}.json", self.folder / f"{key}.csv"
        if figure_file.exists():
            self.hits += 1
            return ChartResult(orjson.loads(figure_file.read_bytes()), self.csv(key), cache_key=key)
        result = build_chart(spec, self.exports)
        if result.csv is not None:
            write_bytes_atomic(csv_file, result.csv)
        write_bytes_atomic(figure_file, orjson.dumps(result.figure))
        result.cache_key = key
        return result

    def csv(self, key: str) -> bytes | None:
        """The full-data CSV of a cached chart (None if it has none)."""
        csv_file = self.folder / f"{key}.csv"
        return csv_file.read_bytes() if csv_file.exists() else None

    def has(self, key: str) -> bool:
        return (self.folder / f"{key}.json").exists()

    def prune(self) -> None:
        """Drop entries this build did not use."""
        if not self.folder.exists():
            return
        for path in self.folder.iterdir():
            if path.stem not in self.used:
                path.unlink(missing_ok=True)
