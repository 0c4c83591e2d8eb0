"""Rows of a wandb run -> the files of exports/runs/<run>/ (the README's "File formats" contract).

Online (`Run.scan_history()`) and offline (`wandb leet inspect --json`) rows both go through
`history_table`, so both paths export the same way. This module imports neither wandb nor torch.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Iterable

import orjson

from site_builder.errors import UserError

STEP = "_step"
# How wandb's JSON writes logged non-finite floats (and how history.json and summary.json keep them).
NONFINITE_FROM_JSON = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Column and key names may hold letters, digits, "_", ".", "/" and "-"; anything else (spaces, "#",
# "@", "|", quotes, commas) would clash with the chapter syntax `{{ file#key@agg | fmt }}`.
UNSAFE_NAME_CHARS = re.compile(r"[^\w./-]")
REDACTED = "[redacted]"
SECRET_NAME = re.compile(
    r"(?i)(^|[_-])(api[_-]?key|token|secret|password|passwd|pwd|passphrase|credentials?|auth|authorization|"
    r"private[_-]?key|access[_-]?key|cookie|dsn)($|[_-])"
)
# Credentials recognisable by their shape wherever they appear (a command line, a URL, a note)
SECRET_TEXT = re.compile(
    r"(?i:(api[_-]?key|token|secret|password|passwd)\s*[=:]\s*\S{8,})"  # api_key=..., password: ...
    r"|(?i:\bbearer\s+[\w.~+/=-]{8,})"  # an Authorization header
    r"|\b[a-zA-Z][\w+.-]*://[^/\s:@]+:[^/\s@]+@"  # user:password@ in a URL (postgres://u:pw@host)
    r"|\bhf_[A-Za-z0-9]{20,}"  # Hugging Face token
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_\w{30,}"  # GitHub tokens
    r"|\bsk-[A-Za-z0-9_-]{20,}"  # OpenAI-style keys
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


def sanitise_names(names: Iterable[str], what: str, where: str) -> dict[str, str]:
    """Map each original name to its safe form; two names that end up equal are a UserError."""
    safe: dict[str, str] = {}
    taken: dict[str, str] = {}
    for name in names:
        clean = UNSAFE_NAME_CHARS.sub("_", name)
        if clean in taken:
            raise UserError(
                f"{what} {taken[clean]!r} and {name!r} both become {clean!r} after replacing characters "
                "other than letters, digits and _ . / -; rename one in the run (or leave one out with --keys)",
                path=where,
            )
        taken[clean] = name
        safe[name] = clean
    return safe


def _number(value: Any) -> int | float | None:
    """The logged value as a number, or None when it is not a scalar number (text, media, lists)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return NONFINITE_FROM_JSON.get(value)
    return None


@dataclass
class HistoryTable:
    """A run's history aligned by `_step`: one row per step, one column per numeric metric."""

    columns: list[str]
    """`_step` first, then the metric names in sorted order (already sanitised)."""
    data: dict[str, list[int | float | None]]
    """column -> values, one per row; None where the metric was not logged at that step."""
    skipped: dict[str, str] = field(default_factory=dict)
    """metric -> why it is not a column (text, media, lists: not numbers)."""

    @property
    def rows(self) -> int:
        return len(self.data[STEP])


def history_table(rows: Iterable[dict[str, Any]], where: str, keys: list[str] | None = None) -> HistoryTable:
    """Align sparse history rows by `_step` (the one function both online and offline rows go through).

    A value of None (or a missing key) means "not logged at this step". The strings "NaN",
    "Infinity", "-Infinity" are wandb's JSON for logged non-finite floats and become floats. A row
    that repeats an earlier step (a resumed run) updates that step. `keys` (names or glob patterns,
    matched against the sanitised names) keeps only the matching metrics. No rows give a table of no
    rows (an untrained reference run, `train --epochs 0`, logs only its summary).
    """
    values: dict[str, dict[int, Any]] = {}  # raw metric name -> {step: value}
    steps: set[int] = set()
    for row in rows:
        step = row.get(STEP)
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        if not isinstance(step, int) or isinstance(step, bool):
            raise UserError(f"a history row has no integer {STEP} (got {step!r})", path=where)
        steps.add(step)
        for key, value in row.items():
            if value is not None and key != STEP:
                values.setdefault(key, {})[step] = value
    skipped: dict[str, str] = {}
    numeric: dict[str, dict[int, int | float]] = {}
    for key, by_step in values.items():
        converted = {s: _number(v) for s, v in by_step.items()}
        if any(v is None for v in converted.values()):
            skipped[key] = "not a number (text, media or list values)"
        else:
            numeric[key] = converted

    safe = sanitise_names(sorted(numeric), "metrics", where)
    if STEP in safe.values():
        raise UserError(f"a metric's name becomes {STEP!r} after sanitising", path=where)
    chosen = {safe[k]: k for k in numeric}
    if keys:
        unmatched = [p for p in keys if not any(fnmatchcase(c, p) for c in chosen)]
        if unmatched:
            raise UserError(
                f"--keys {', '.join(unmatched)} match no metric; the run has: {', '.join(sorted(chosen))}",
                path=where,
            )
        chosen = {c: k for c, k in chosen.items() if any(fnmatchcase(c, p) for p in keys)}

    ordered_steps = sorted(steps)
    columns = [STEP] + sorted(chosen)
    data: dict[str, list[int | float | None]] = {STEP: ordered_steps}
    for column in columns[1:]:
        by_step = numeric[chosen[column]]
        as_float = any(isinstance(v, float) for v in by_step.values())
        data[column] = [
            (float(v) if as_float else v) if (v := by_step.get(s)) is not None else None for s in ordered_steps
        ]
    return HistoryTable(columns=columns, data=data, skipped=dict(sorted(skipped.items())))


def history_csv(table: HistoryTable) -> bytes:
    """history.csv: empty cell = not logged; `nan`, `inf`, `-inf` = logged as such (repr round-trips)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    cells = [[("" if v is None else repr(v)) for v in table.data[c]] for c in table.columns]
    writer.writerows(zip(*cells))
    return out.getvalue().encode("utf-8")


def json_safe(value: Any) -> Any:
    """Non-finite floats as the strings "NaN", "Infinity", "-Infinity" (JSON has no literal for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def history_json(table: HistoryTable) -> bytes:
    """history.json: `{"columns": [...], "data": {column: [...]}}`, compact (one line), null = not logged."""
    data = {}
    for column in table.columns:
        col = table.data[column]
        data[column] = col if all(v is None or math.isfinite(v) for v in col) else [json_safe(v) for v in col]
    return orjson.dumps({"columns": table.columns, "data": data}) + b"\n"


def flatten(mapping: dict[str, Any], sep: str, prefix: str = "") -> dict[str, Any]:
    """{"model": {"depth": 4}} -> {"model<sep>depth": 4}; wandb's internal `_wandb` entries are left out."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if key == "_wandb" or key.startswith("_wandb."):
            continue
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, dict) and "_type" not in value:
            flat.update(flatten(value, sep, name))
        else:
            flat[name] = value
    return flat


def redact(flat: dict[str, Any], secrets: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Replace credentials with REDACTED: text under a secret-like name (`hf_token`, `db/password`,
    `wandb_api_key`), text that contains one of `secrets` (the API key in use) or reads like
    `api_key=...`. Numbers are never credentials (`max_tokens: 512` stays). Returns the names redacted."""
    out, redacted = {}, []
    for key, value in flat.items():
        *parents, leaf = re.split(r"[/.]", key)  # flattened: {db: {password: ..}} is db/password
        if _holds_secret(value, leaf, secrets, any(SECRET_NAME.search(p) for p in parents)):
            out[key] = REDACTED
            redacted.append(key)
        else:
            out[key] = value
    return out, redacted


def _holds_secret(value: Any, name: str, secrets: list[str], under_secret_name: bool = False) -> bool:
    """Whether text anywhere inside `value` (lists and mappings at any depth: `servers: [{password: ...}]`)
    is a credential: under a secret-like name at any level above, shaped like one (SECRET_TEXT), or one
    of `secrets`."""
    under_secret_name = under_secret_name or bool(SECRET_NAME.search(name))
    if isinstance(value, dict):
        return any(_holds_secret(v, str(k), secrets, under_secret_name) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_secret(v, name, secrets, under_secret_name) for v in value)
    if not isinstance(value, str):
        return False  # numbers are never credentials (max_tokens: 512)
    return under_secret_name or bool(SECRET_TEXT.search(value)) or any(s and s in value for s in secrets)


def config_dict(config: dict[str, Any], where: str, secrets: list[str]) -> tuple[dict[str, Any], list[str]]:
    """config.json: nested hyper-parameters flattened with "/" (`model/depth`), names sanitised, secrets redacted."""
    flat = flatten(config, "/")
    safe = sanitise_names(sorted(flat), "config keys", where)
    clean, redacted = redact({safe[k]: json_safe(v) for k, v in flat.items()}, secrets)
    return clean, [f"config.json#{k}" for k in redacted]


def summary_dict(summary: dict[str, Any], where: str, secrets: list[str]) -> tuple[dict[str, Any], list[str]]:
    """summary.json: final values flattened with "." (as wandb names nested history keys); media left out."""
    flat = {k: v for k, v in flatten(summary, ".").items() if not (isinstance(v, dict) and "_type" in v)}
    safe = sanitise_names(sorted(flat), "summary keys", where)
    clean, redacted = redact({safe[k]: json_safe(v) for k, v in flat.items()}, secrets)
    return clean, [f"summary.json#{k}" for k in redacted]
