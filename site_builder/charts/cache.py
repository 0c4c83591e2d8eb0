"""On-disk cache of built charts, so editing prose does not re-read a large history file.

A chart is keyed by its spec, the content hashes of its source files and the chart code itself; the
cache keeps only the entries the latest build used (`prune`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import orjson

from site_builder.charts.figures import ChartResult, build_chart, files_of
from site_builder.site import cache_file

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

    def chart(self, spec: dict) -> ChartResult:
        """The chart of a spec that figures.check_spec has checked."""
        paths = [self.exports / rel for rel in files_of(spec)]
        if not all(p.is_file() for p in paths):
            return build_chart(spec, self.exports)  # pending: nothing worth caching
        key_source = orjson.dumps([spec, _code_hash(), [self.file_hash(p) for p in paths]], option=orjson.OPT_SORT_KEYS)
        key = hashlib.sha256(key_source).hexdigest()
        self.used.add(key)
        stored = cache_file.read(self.folder / f"{key}.json")
        if stored is not None:
            return ChartResult(orjson.loads(stored), self.read(key, ".csv"), cache_key=key)
        result = build_chart(spec, self.exports)
        if result.csv is not None:
            cache_file.write(self.folder / f"{key}.csv", result.csv)
        cache_file.write(self.folder / f"{key}.json", orjson.dumps(result.figure))
        result.cache_key = key
        return result

    def store(self, key: str, suffix: str, data: bytes) -> str:
        """Keep a file made from a cached chart (its page script) beside it; returns the key."""
        target = self.folder / f"{key}{suffix}"
        if key and not target.exists():
            cache_file.write(target, data)
        return key

    def read(self, key: str, suffix: str) -> bytes | None:
        """A cached chart's file: ".csv" (full data for download) or ".js" (None if it has none)."""
        return cache_file.read(self.folder / f"{key}{suffix}")

    def prune(self) -> None:
        """Drop entries this build did not use."""
        if not self.folder.exists():
            return
        for path in self.folder.iterdir():
            if path.stem not in self.used:
                path.unlink(missing_ok=True)
