"""Offline wandb runs (`wandb/offline-run-*/run-*.wandb`) read through wandb's own CLI.

wandb 0.31 prints a .wandb transaction log with `wandb leet inspect --json FILE`: one JSON record per
line (run, config, history, summary, exit ...). That CLI is the supported reader; the wandb version is
pinned in pyproject (`>=0.31,<0.32`) and tests/test_fetch_offline.py fails loudly if its output changes
(it also checks config, summary and state against `wandb leet inspect --summary --json`, which costs a
second process and is therefore not used here). The CLI exits 0 on a damaged file and only warns on
stderr, so any stderr output is an error.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from site_builder.errors import UserError
from site_builder.fetch.run_data import RunData


def find_run_file(path: Path) -> Path:
    """The run-*.wandb file of a run folder (or the file itself)."""
    if path.is_file():
        if path.suffix != ".wandb":
            raise UserError("not a .wandb file (expected wandb/offline-run-*/run-*.wandb or its folder)", path=path)
        return path
    if not path.is_dir():
        raise UserError("not a regular file (a FIFO or device)" if path.exists() else "no such file or folder", path=path)
    found = sorted(p for p in path.glob("run-*.wandb") if p.is_file())  # a FIFO would block the reader
    if len(found) != 1:
        what = "no run-*.wandb file" if not found else f"{len(found)} run-*.wandb files"
        raise UserError(f"{what} in this folder; give an offline run folder or use --all-offline", path=path)
    return found[0]


def find_offline_runs(folder: Path) -> list[Path]:
    """One run-*.wandb file per offline run under `folder` (`latest-run` links and resumed segments skipped)."""
    if not folder.is_dir():
        raise UserError("no such folder (expected the wandb/ folder of offline runs)", path=folder)
    runs = {(p.parent.parent, p.name): p for p in sorted(folder.rglob("run-*.wandb")) if "latest-run" not in p.parts and p.is_file()}
    if not runs:
        raise UserError("no offline runs (run-*.wandb files) under this folder", path=folder)
    return sorted(runs.values())


def run_segments(run_file: Path) -> list[Path]:
    """All files of one offline run, oldest first: each resume (same run id) starts a new offline-run-<time>-<id>/."""
    siblings = set(run_file.parent.parent.glob(f"offline-run-*/{run_file.name}")) | {run_file}
    return sorted(siblings, key=lambda p: p.parent.name)


def join_segments(parts: list[RunData]) -> RunData:
    """One run from its resumed segments: a later segment replaces earlier rows from its first step on
    (training went back to a checkpoint); summary values are updated in order; config and state are the last's."""
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for part in parts:
        first = next((r["_step"] for r in part.rows if isinstance(r.get("_step"), (int, float))), None)
        if first is not None:
            rows = [r for r in rows if not isinstance(r.get("_step"), (int, float)) or r["_step"] < first]
        rows += part.rows
        summary.update(part.summary)
    last = parts[-1]
    return replace(
        last, rows=rows, summary=summary, start_time=parts[0].start_time,
        source=" + ".join(p.source for p in parts), warnings=[w for p in parts for w in p.warnings],
    )


def read_offline_run(run_file: Path, allow_incomplete: bool = False) -> RunData:
    """Read one offline run, joining the segments of a resumed run (see `run_segments`).

    A segment before the last may be cut short: that is why the run was resumed (noted in warnings)."""
    segments = run_segments(run_file)
    return join_segments([read_run_file(p, allow_incomplete or p != segments[-1]) for p in segments])


def _quiet_offline_env() -> dict[str, str]:
    """Reading a local file must never reach the network (wandb-core's error reporting included)."""
    env = dict(os.environ)
    env.update(WANDB_MODE="offline", WANDB_ERROR_REPORTING="false", WANDB_SILENT="true")
    return env


def _inspect(run_file: Path, allow_incomplete: bool) -> tuple[bytes, list[str]]:
    """`wandb leet inspect --json FILE`: the records, and its warnings (a damaged file) when allowed."""
    if importlib.util.find_spec("wandb") is None:
        raise ModuleNotFoundError("wandb is needed to read offline runs", name="wandb")  # cli.py: install hint
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)]
    with tempfile.TemporaryFile() as out:  # a file, not a pipe: wandb writes line by line (tens of thousands)
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, env=_quiet_offline_env())
        out.seek(0)
        records = out.read()
    message = " ".join(proc.stderr.decode("utf-8", "replace").split())
    if proc.returncode != 0:
        raise UserError(f"cannot read this .wandb file: {message or f'wandb exited with {proc.returncode}'}", path=run_file)
    if message and not allow_incomplete:
        raise UserError(
            f"the .wandb file is damaged or incomplete ({message}); if the run was cut off, "
            "--allow-incomplete exports the records before the damage",
            path=run_file,
        )
    return records, [message] if message else []


def _merge(target: dict[str, Any], change: dict[str, Any]) -> None:
    """Apply a config or summary record: `update` merges nested dicts, `remove` drops keys."""
    update = change.get("update") or {}
    if not any(isinstance(value, dict) for value in update.values()):
        target.update(update)  # the usual record: flat metric values
    else:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                _merge(target[key], {"update": value})
            else:
                target[key] = value
    for item in change.get("remove") or []:
        path = item.get("nested_key") or [item.get("key")]
        node = target
        for part in path[:-1]:
            node = node.get(part) if isinstance(node.get(part), dict) else {}
        node.pop(path[-1], None)


def read_run_file(run_file: Path, allow_incomplete: bool = False) -> RunData:
    """Read one .wandb file: history rows, config, summary (records applied in order) and provenance."""
    records, warnings = _inspect(run_file, allow_incomplete)
    rows: list[dict[str, Any]] = []
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    header = run = exit_record = None
    try:
        for line in records.splitlines():
            if b'"type":"history"' in line:  # most lines: checked first, parsed only when needed
                rows.append(orjson.loads(line)["history"]["item"])
            elif b'"type":"summary"' in line:
                _merge(summary, orjson.loads(line)["summary"])
            elif b'"type":"config"' in line:
                _merge(config, orjson.loads(line)["config"])
            elif b'"type":"run"' in line and run is None:
                run = orjson.loads(line)["run"]
                _merge(config, run.get("config") or {})
            elif b'"type":"header"' in line and header is None:
                header = orjson.loads(line)["header"]
            elif b'"type":"exit"' in line:
                exit_record = orjson.loads(line)["exit"]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"unexpected output from `wandb leet inspect --json` ({exc!r}); is wandb 0.31 installed?", path=run_file)
    if header is None or run is None:
        raise UserError("no run in this .wandb file (empty, or the run was killed before wandb wrote it)", path=run_file)
    if exit_record is None:
        # A file cut between two records reads cleanly; only the missing exit record tells.
        if not allow_incomplete:
            raise UserError(
                "the .wandb file has no exit record: it was cut short, the run was killed, or it is still "
                "running; wait for it to finish, or --allow-incomplete exports the records it has",
                path=run_file,
            )
        warnings.append("no exit record (run cut short, killed or still running)")
        state = "crashed"
    else:
        state = "finished" if not exit_record.get("exit_code") else "failed"
    return RunData(
        rows=rows,
        config=config,
        summary=summary,
        where=str(run_file),
        source=_portable(run_file),
        kind="offline",
        run_id=run.get("run_id") or "",
        run_name=run.get("display_name") or "",
        project=run.get("project") or "",
        entity=run.get("entity") or "",
        state=state,
        start_time=_trim_fraction(run.get("start_time") or ""),
        logged_with_wandb=(header.get("version_info") or {}).get("producer", "").split("+")[0],
        warnings=warnings,
    )


def _trim_fraction(timestamp: str) -> str:
    """2026-11-25T16:52:31.504750Z -> ...31.50475Z, as `wandb leet inspect --summary` writes it (stable exports)."""
    match = re.fullmatch(r"(.*T[\d:]+)(\.\d+)?(Z|[+-][\d:]+)", timestamp)
    if not match:
        return timestamp
    fraction = (match.group(2) or "").rstrip("0").rstrip(".")
    return match.group(1) + fraction + match.group(3)


def _portable(path: Path) -> str:
    """The run file's path relative to the working folder, or from its offline-run-* folder on (no machine paths)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(*resolved.parts[-2:]).as_posix()
