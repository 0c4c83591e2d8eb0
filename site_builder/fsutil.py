"""Atomic file and folder writes shared by every stage.

A stage never leaves a half-written output: files are written to a temporary sibling and renamed over
the target; whole folders (dist/, exports/runs/<run>/) are built beside the target and swapped in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import orjson

TMP_MARK = ".tmp-"  # every temporary sibling carries this in its name (and .gitignore ignores it)


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix.
    `fsync=False` skips the flush to disk (caches, which check their own contents: site.cache_file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + TMP_MARK, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    """Deterministic JSON (sorted keys, 2-space indent, trailing newline) for files kept in git."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_bytes_atomic(path, json_bytes(obj))


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def replace_dir(new: Path, target: Path) -> None:
    """Put the finished folder `new` at `target`, replacing what was there.

    With an atomic exchange a reader always sees a whole old or a whole new folder. Where the kernel
    lacks it, the old folder is moved aside first; `recover_dir` puts it back after a crash in between.
    """
    new, target = Path(new), Path(target)
    if target.exists() and _renameat2_exchange(new, target):
        shutil.rmtree(new)  # `new` now holds the old contents
        return
    old = target.with_name(target.name + TMP_MARK + "old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.rename(target, old)
    os.rename(new, target)
    if old.exists():
        shutil.rmtree(old)


def recover_dir(target: Path) -> None:
    """Undo a crash between the two renames of `replace_dir`, and sweep stale temporary siblings."""
    target = Path(target)
    old = target.with_name(target.name + TMP_MARK + "old")
    if old.exists() and not target.exists():
        os.rename(old, target)
    for stale in target.parent.glob(target.name + TMP_MARK + "*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextmanager
def exclusive_lock(target: str | Path) -> Iterator[None]:
    """Serialise writers of one output folder (two builds at once wait for each other).

    The lock file lives in the system temp folder, keyed by the target's absolute path, so no lock
    files clutter the project; the kernel releases it if the process dies.
    """
    key = hashlib.sha1(str(Path(target).resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"site_builder-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty sibling folder to fill; on success it replaces `target`, on error it is removed.

    Usage: `with staged_dir(out) as tmp: write files under tmp`. Holds `exclusive_lock(target)`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target):
        recover_dir(target)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + TMP_MARK, dir=target.parent))
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        os.chmod(tmp, 0o755)
        replace_dir(tmp, target)
