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
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import orjson

from site_builder.errors import UserError

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
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _named(exc, path)


def _named(exc: BaseException, path: Path) -> BaseException:
    """An OSError without a file name (a failed write: disk full) gets the output's name, so the CLI can
    report it in one line; every other exception is returned as it is."""
    if isinstance(exc, OSError) and not exc.filename:
        named = OSError(exc.errno, exc.strerror or str(exc), str(path))
        named.__cause__ = exc
        return named
    return exc


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


def remove_tree(path: Path) -> None:
    """Delete a folder we own even where its sub-folders were made read-only (the old dist/ after a
    swap); what still cannot be deleted is left for the next run's sweep rather than failing a finished build."""

    def writable_then_retry(function, failed, exc_info) -> None:
        try:
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed, ignore_errors=True)
            else:
                function(failed)
        except OSError:
            pass

    shutil.rmtree(path, onerror=writable_then_retry)


def replace_dir(new: Path, target: Path) -> None:
    """Put the finished folder `new` at `target`, replacing what was there.

    With an atomic exchange a reader always sees a whole old or a whole new folder. Where the kernel
    lacks it, the old folder is moved aside first; `recover_dir` puts it back after a crash in between.
    """
    new, target = Path(new), Path(target)
    if target.exists() and _renameat2_exchange(new, target):
        remove_tree(new)  # `new` now holds the old contents
        return
    old = target.with_name(target.name + TMP_MARK + "old")
    if old.exists():
        remove_tree(old)
    if target.exists():
        os.rename(target, old)
    os.rename(new, target)
    if old.exists():
        remove_tree(old)


def recover_dir(target: Path) -> None:
    """Undo a crash between the two renames of `replace_dir`, and sweep stale temporary siblings."""
    target = Path(target)
    old = target.with_name(target.name + TMP_MARK + "old")
    if old.exists() and not target.exists():
        os.rename(old, target)
    for stale in target.parent.glob(target.name + TMP_MARK + "*"):
        if stale.is_dir() and not stale.is_symlink():
            remove_tree(stale)
        else:
            stale.unlink(missing_ok=True)


@contextmanager
def exclusive_lock(target: str | Path) -> Iterator[None]:
    """Serialise writers of one output folder (two builds at once wait for each other).

    The lock file lives in the system temp folder, keyed by the target's absolute path, so no lock
    files clutter the project; the kernel releases it if the process dies. The holder deletes the file
    when done (so they do not pile up); a waiter that then gets the lock of a deleted file tries again.
    """
    key = hashlib.sha1(str(Path(target).resolve()).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"site_builder-{key}.lock"
    while True:
        lock = open(path, "a")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            same = os.path.samestat(os.fstat(lock.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        lock.close()  # the previous holder removed this file: lock the new one
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # still holding the lock: nobody else holds this file
        lock.close()


STALE_TEMP_SECONDS = 600  # a temporary file this old belongs to a killed process (writes take seconds)


def sweep_stale_temps(folder: Path, older_than: float = STALE_TEMP_SECONDS) -> None:
    """Delete temporary siblings (`*.tmp-*`) under `folder` left by a process killed mid-write."""
    if not folder.is_dir():
        return
    cutoff = time.time() - older_than
    for stale in folder.rglob(f"*{TMP_MARK}*"):
        try:
            if stale.lstat().st_mtime < cutoff:
                remove_tree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink()
        except OSError:
            pass  # gone already, or not ours to delete: only a little disk space


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def check_output_dir(out: Path, *, flag: str, inputs: list[Path], project: Path, marker: str | tuple[str, ...] | None) -> None:
    """Refuse an output folder whose replacement would delete something that is not an earlier output.

    `out` is replaced whole, so it may not be, contain or lie inside an input, nor be or contain the
    project folder; a folder that already exists must be empty or hold `marker` (a file every output of
    this command has, or one of several; None: `out` only receives new sub-folders and is never replaced).
    Checked before anything is written.
    """
    where = Path(os.path.abspath(out))
    resolved = where.resolve()
    for folder in [where, *where.parents]:  # an output path under a regular file
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                raise UserError(f"{flag} {out}: {folder} is not a folder")
            break
    project = project.resolve()
    if resolved == project or project.is_relative_to(resolved):
        raise UserError(f"{flag} {out}: that is the project folder or holds it; its contents would be replaced. Choose a new folder such as dist/")
    for item in inputs:
        if item.exists() and _overlaps(resolved, item.resolve()):
            raise UserError(f"{flag} {out}: overlaps the input {item}, which replacing it would delete. Choose another folder")
    markers = (marker,) if isinstance(marker, str) else marker or ()
    if markers and resolved.is_dir() and not any((resolved / m).is_file() for m in markers) and any(resolved.iterdir()):
        raise UserError(f"{flag} {out}: the folder exists and was not written by this command (no {markers[0]}); "
                        "it would be replaced whole. Choose a new or empty folder")


def read_regular_bytes(path: Path, shown: str | Path, what: str = "this") -> bytes:
    """The bytes of a regular file; a FIFO, device, folder or dangling link is a UserError (reading a
    FIFO would block forever)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        kind = "a link to a missing file" if path.is_symlink() else "missing"
        raise UserError(f"{what} is {kind}", path=shown) from None
    except IsADirectoryError:
        raise UserError(f"{what} is a folder, not a file", path=shown) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{what} is not a regular file (a folder, FIFO or device)", path=shown)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as f:
        return f.read()


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
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _named(exc, target)
        os.chmod(tmp, 0o755)
        replace_dir(tmp, target)
