"""Online wandb runs through the public API (`wandb.Api().run(path)`), full-resolution history.

`Run.history()` samples ~500 rows; `Run.scan_history()` pages through every step, and its rows go
through the same `history_table` as offline rows. Network errors and HTTP 429/5xx are retried with
exponential back-off; a scan that fails mid-way resumes after the last step it delivered. The API key
is left to wandb (WANDB_API_KEY or `wandb login`): it is never read, printed or written here.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlparse

from site_builder.errors import UserError
from site_builder.fetch.run_data import RunData

T = TypeVar("T")
DEFAULT_BASE_URL = "https://api.wandb.ai"
RETRIES = 5  # default: waits of 1, 2, 4, 8, 16 s before giving up
PAGE_SIZE = 1000
# Words of a transient failure in the messages that wandb / wandb-core / requests give.
TRANSIENT = re.compile(
    r"\b(429|5\d\d)\b|too many requests|rate limit|timed? ?out|temporar|connection (refused|reset|aborted)"
    r"|unreachable|did not respond|service unavailable|bad gateway",
    re.IGNORECASE,
)
RUN_PATH = re.compile(r"^([^/\s]+)/([^/\s]+)/(?:runs/)?([^/\s]+)$")


def parse_run_path(text: str) -> str | None:
    """`entity/project/run_id` or a run URL `https://wandb.ai/entity/project/runs/run_id` -> path."""
    if text.startswith(("http://", "https://")):
        text = urlparse(text).path.strip("/")
    match = RUN_PATH.match(text)
    return "/".join(match.groups()) if match else None


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: connection problems, timeouts, HTTP 429 and 5xx."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500
    return bool(TRANSIENT.search(str(exc)))


def with_retries(call: Callable[[], T], what: str, retries: int = RETRIES, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `call`, retrying transient failures with back-off (1, 2, 4 ... s); the last failure propagates."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == retries or not is_transient(exc):
                raise
            delay = 2.0**attempt
            print(f"{what}: {_one_line(exc)}; retrying in {delay:.0f} s", file=sys.stderr)
            sleep(delay)
    raise AssertionError("unreachable")


def scan_rows(
    run: Any, where: str, retries: int = RETRIES, sleep: Callable[[float], None] = time.sleep, page_size: int = PAGE_SIZE
) -> Iterator[dict]:
    """Every history row of `run` via `scan_history`, resuming after the last delivered step on failure."""
    next_step = 0
    failures = 0
    while True:
        try:
            # use_cache=False: wandb's local copy of a run's history would hide rows added since
            for row in run.scan_history(page_size=page_size, min_step=next_step, use_cache=False):
                failures = 0
                step = row.get("_step")
                if isinstance(step, (int, float)):
                    next_step = int(step) + 1
                yield row
            return
        except Exception as exc:
            failures += 1
            if failures > retries or not is_transient(exc):
                raise UserError(f"reading the history failed after step {next_step - 1}: {_one_line(exc)}", path=where)
            delay = 2.0 ** (failures - 1)
            print(f"{where}: {_one_line(exc)}; resuming at step {next_step} in {delay:.0f} s", file=sys.stderr)
            sleep(delay)


def check_reachable(base_url: str, retries: int = RETRIES, sleep: Callable[[float], None] = time.sleep) -> None:
    """Fail fast and clearly when the wandb server cannot be reached (wandb itself waits long and says "busy")."""
    url = urlparse(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)

    def connect() -> None:
        socket.create_connection((url.hostname, port), timeout=10).close()

    try:
        with_retries(connect, f"connecting to {base_url}", retries, sleep)
    except OSError as exc:
        raise UserError(f"cannot reach the wandb server {base_url} ({_one_line(exc)}); check the network or WANDB_BASE_URL")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def read_online_run(run_path: str, retries: int = RETRIES, progress: Callable[[int], None] | None = None) -> RunData:
    """Load run metadata through wandb.Api and return a RunData whose rows stream from scan_history."""
    base_url = os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
    check_reachable(base_url, retries)
    import wandb
    from wandb.apis.public.runs import RunNotFoundError

    try:
        api = with_retries(lambda: wandb.Api(timeout=30), "wandb login", retries)
    except wandb.errors.UsageError as exc:
        raise UserError(f"no wandb API key ({_one_line(exc)}); set WANDB_API_KEY or run `wandb login`")
    except wandb.errors.CommError as exc:
        raise UserError(f"wandb rejected the login or could not be reached: {_one_line(exc)}")
    try:
        run = with_retries(lambda: api.run(run_path), f"loading {run_path}", retries)
    except (RunNotFoundError, wandb.errors.CommError) as exc:
        # wandb wraps RunNotFoundError in a CommError (its `exc`)
        if isinstance(exc, RunNotFoundError) or isinstance(getattr(exc, "exc", None), RunNotFoundError):
            raise UserError(f"run not found on {base_url}; check entity/project/run_id", path=run_path)
        raise UserError(f"could not load the run: {_one_line(exc)}", path=run_path)

    def rows() -> Iterator[dict]:
        for count, row in enumerate(scan_rows(run, run_path, retries), 1):
            if progress and count % PAGE_SIZE == 0:
                progress(count)
            yield row

    return RunData(
        rows=rows(),
        config=dict(run.config),
        summary=dict(run.summary_metrics),
        where=run_path,
        source=run_path,
        kind="online",
        run_id=run.id,
        run_name=run.name or "",
        project=run.project,
        entity=run.entity,
        state=run.state or "unknown",
        start_time=str(getattr(run, "created_at", "") or ""),
        secrets=[api.api_key or ""],
    )
