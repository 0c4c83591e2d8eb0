"""How every build cache under .cache/build/ stores a file (formulas, charts, outlines, pages, cards).

A cache must be fast, not durable: entries are written atomically (temporary file + rename) but not
fsynced, which costs ~5 ms a file. A crash can then leave a renamed file whose data never reached the
disk, so each file ends with the SHA-256 of its content and `read` treats a file that fails the check as
missing: the worst a crash does is a slower next build.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from site_builder.fsutil import write_bytes_atomic

_CHECK = 32  # bytes of SHA-256 at the end of each file


def write(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data + hashlib.sha256(data).digest(), fsync=False)


def read(path: Path) -> bytes | None:
    """The file's content, or None when it is missing or damaged."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    data, check = raw[:-_CHECK], raw[-_CHECK:]
    return data if len(raw) >= _CHECK and hashlib.sha256(data).digest() == check else None
