"""Offline wandb runs (`wandb/offline-run-*/run-*.wandb`) read through wandb's own CLI.

wandb 0.31 prints a .wandb transaction log with `wandb leet inspect --json FILE` (one JSON record
per line) and `wandb leet inspect --summary --json FILE` (state, name, config, summary). That CLI is
the supported reader; the wandb version is pinned in pyproject (`>=0.31,<0.32`) and
tests/test_fetch_offline.py fails loudly if its output changes shape. The two commands run in
parallel. Both exit 0 on a damaged file and only warn on stderr, so any stderr output is an error.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
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
        raise UserError("no such file or folder", path=path)
    found = sorted(path.glob("run-*.wandb"))
    if len(found) != 1:
        what = "no run-*.wandb file" if not found else f"{len(found)} run-*.wandb files"
        raise UserError(f"{what} in this folder; give an offline run folder or use --all-offline", path=path)
    return found[0]


def find_offline_runs(folder: Path) -> list[Path]:
    """One run-*.wandb file per offline run under `folder` (`latest-run` links and resumed segments skipped)."""
    if not folder.is_dir():
        raise UserError("no such folder (expected the wandb/ folder of offline runs)", path=folder)
    runs = {(p.parent.parent, p.name): p for p in sorted(folder.rglob("run-*.wandb")) if "latest-run" not in p.parts}
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


def _quiet_offline_env() -> dict[str, str]:
    """Reading a local file must never reach the network (wandb-core's error reporting included)."""
    env = dict(os.environ)
    env.update(WANDB_MODE="offline", WANDB_ERROR_REPORTING="false", WANDB_SILENT="true")
    return env


def _inspect(run_file: Path, *flags: str) -> subprocess.Popen:
    if importlib.util.find_spec("wandb") is None:
        raise ModuleNotFoundError("wandb is needed to read offline runs", name="wandb")  # cli.py: install hint
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *flags, str(run_file)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_quiet_offline_env())


def _finish(proc: subprocess.Popen, run_file: Path, allow_incomplete: bool) -> tuple[bytes, list[str]]:
    out, err = proc.communicate()
    message = " ".join(err.decode("utf-8", "replace").split())
    if proc.returncode != 0:
        raise UserError(f"cannot read this .wandb file: {message or f'wandb exited with {proc.returncode}'}", path=run_file)
    if message and not allow_incomplete:
        raise UserError(
            f"the .wandb file is damaged or incomplete ({message}); if the run was cut off, "
            "--allow-incomplete exports the records before the damage",
            path=run_file,
        )
    return out, [message] if message else []


def read_offline_run(run_file: Path, allow_incomplete: bool = False) -> RunData:
    """Read one offline run, joining the segments of a resumed run (see `run_segments`).

    A segment before the last may be cut short: that is why the run was resumed (noted in warnings)."""
    segments = run_segments(run_file)
    return join_segments([read_run_file(p, allow_incomplete or p != segments[-1]) for p in segments])


def read_run_file(run_file: Path, allow_incomplete: bool = False) -> RunData:
    """Read one .wandb file: history rows, config, summary and provenance."""
    procs = [_inspect(run_file), _inspect(run_file, "--summary")]  # in parallel: two cores, two readers
    try:
        (records, warnings), (summary_out, _) = [_finish(p, run_file, allow_incomplete) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    rows: list[dict[str, Any]] = []
    header = None
    exited = False
    for line in records.splitlines():
        if b'"type":"history"' in line:
            rows.append(orjson.loads(line)["history"]["item"])
        elif header is None and b'"type":"header"' in line:
            header = orjson.loads(line)["header"]
        elif b'"type":"exit"' in line:
            exited = True
    if header is None:
        raise UserError("no records in this .wandb file (empty, or the run was killed before wandb wrote any)", path=run_file)
    if not exited:
        # A file cut between two records reads cleanly; only the missing exit record tells.
        if not allow_incomplete:
            raise UserError(
                "the .wandb file has no exit record: it was cut short, the run was killed, or it is still "
                "running; wait for it to finish, or --allow-incomplete exports the records it has",
                path=run_file,
            )
        warnings.append("no exit record (run cut short, killed or still running)")
    try:
        info = orjson.loads(summary_out)
        producer = header.get("version_info", {}).get("producer", "")
        return RunData(
            rows=rows,
            config=info.get("config") or {},
            summary=info.get("summary") or {},
            where=str(run_file),
            source=_portable(run_file),
            kind="offline",
            run_id=info["run_id"],
            run_name=info.get("name") or "",
            project=info.get("project") or "",
            entity=info.get("entity") or "",
            state=info.get("state") or "unknown",
            start_time=info.get("start_time") or "",
            logged_with_wandb=producer.split("+")[0],
            warnings=warnings,
        )
    except (orjson.JSONDecodeError, KeyError, AttributeError) as exc:
        raise UserError(f"unexpected output from `wandb leet inspect --summary --json` ({exc})", path=run_file)


def _portable(path: Path) -> str:
    """The run file's path relative to the working folder, or from its offline-run-* folder on (no machine paths)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(*resolved.parts[-2:]).as_posix()
