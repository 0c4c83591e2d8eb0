"""Write exports/runs/<name>/ from a RunData, and keep exports/runs/index.json in step with the folders.

All files are made in memory first. When they equal what is on disk (fetch time aside) nothing is
written; otherwise the folder is replaced whole through `fsutil.staged_dir`.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import orjson

from site_builder import __version__
from site_builder.errors import UserError
from site_builder.fetch.history import (
    config_dict,
    history_csv,
    history_json,
    history_table,
    summary_dict,
)
from site_builder.fetch.run_data import RunData
from site_builder.fsutil import check_output_dir, exclusive_lock, json_bytes, staged_dir, write_bytes_atomic

FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
INDEX_FIELDS = ("run_name", "run_id", "source", "state", "start_time", "rows", "columns")


def folder_name(run: RunData, name: str | None) -> str:
    """--name, else the run's display name, else its id; made safe for a folder and a URL."""
    if name is not None:
        if not FOLDER_NAME.fullmatch(name):
            raise UserError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (starting with a letter or digit)")
        return name
    for text in (run.run_name, run.run_id):  # both come from the run's author: never a path
        candidate = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
        if candidate:
            return candidate
    raise UserError(f"neither the run's name {run.run_name!r} nor its id {run.run_id!r} makes a folder name; use --name", path=run.where)


def render(run: RunData, keys: list[str] | None) -> tuple[dict[str, bytes], dict]:
    """The data files' bytes and meta.json's content (without its fetch time)."""
    table = history_table(run.rows, run.where, keys)
    secrets = [os.environ.get("WANDB_API_KEY", ""), *run.secrets]
    config, redacted_config = config_dict(run.config, run.where, secrets)
    summary, redacted_summary = summary_dict(run.summary, run.where, secrets)
    if not table.rows and all(key.startswith("_") for key in summary):  # wandb writes `_runtime` into every summary
        raise UserError("the run has an empty history (no logged steps) and no summary; nothing to export", path=run.where)
    files = {
        "history.csv": history_csv(table),
        "history.json": history_json(table),
        "config.json": json_bytes(config),
        "summary.json": json_bytes(summary),
    }
    meta = {
        "source": run.source,
        "source_kind": run.kind,
        "run_id": run.run_id,
        "run_name": run.run_name,
        "project": run.project,
        "entity": run.entity,
        "state": run.state,
        "start_time": run.start_time,
        "wandb_version": version("wandb"),
        "logged_with_wandb": run.logged_with_wandb,
        "fetched_with": f"site_builder {__version__}",
        "rows": table.rows,
        "columns": table.columns,
        "keys": keys or [],
        "skipped_metrics": table.skipped,
        "redacted": redacted_config + redacted_summary,
        "warnings": run.warnings,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    return files, meta


def _unchanged(out: Path, files: dict[str, bytes], meta: dict) -> bool:
    try:
        old_meta = orjson.loads((out / "meta.json").read_bytes())
        if any((out / name).read_bytes() != data for name, data in files.items()):
            return False
    except (OSError, orjson.JSONDecodeError):
        return False
    old_meta.pop("fetched_at", None)
    return old_meta == meta


def export_run(run: RunData, runs_dir: Path, name: str | None = None, keys: list[str] | None = None) -> tuple[str, bool, dict]:
    """Export one run to runs_dir/<name>/; returns (name, whether anything was written, meta)."""
    folder = folder_name(run, name)
    files, meta = render(run, keys)
    out = runs_dir / folder
    check_output_dir(out, flag="--out", inputs=[], project=Path.cwd(), marker="meta.json")  # a folder named like the run
    if _unchanged(out, files, meta):
        return folder, False, meta
    meta["fetched_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with staged_dir(out) as tmp:
        for file_name, data in files.items():
            (tmp / file_name).write_bytes(data)
        (tmp / "meta.json").write_bytes(json_bytes(meta))
    return folder, True, meta


def update_index(runs_dir: Path) -> bool:
    """Rewrite runs_dir/index.json from the meta.json of every exported run; False when it was current."""
    index_path = runs_dir / "index.json"
    with exclusive_lock(index_path):
        runs = []
        for meta_path in sorted(runs_dir.glob("*/meta.json")):
            if ".tmp-" in meta_path.parent.name:
                continue
            try:
                meta = orjson.loads(meta_path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise UserError(f"not valid JSON ({exc}); fetch this run again", path=meta_path)
            runs.append({"name": meta_path.parent.name, **{k: meta.get(k) for k in INDEX_FIELDS}})
        data = json_bytes({"runs": runs})
        if index_path.exists() and index_path.read_bytes() == data:
            return False
        write_bytes_atomic(index_path, data)
        return True
