"""`fetch` of online runs: the real wandb client (wandb.Api, Run, scan_history, wandb-core) against a
local stand-in for the wandb server, plus the retry logic with a scripted failing run.

The stand-in answers the GraphQL queries wandb 0.31 sends (Viewer, Run, RunHistoryKeys,
RunParquetHistory, HistoryPage) and serves the history either in pages or as a parquet file; real
accounts, the live tail of a running run (`liveData`) and real rate limits are not exercised here.
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from site_builder.errors import UserError
from site_builder.fetch.online import is_transient, parse_run_path, scan_rows

pytest.importorskip("wandb")

API_KEY = "sitebuildertest" + "0" * 25  # 40 characters, like a real key; must never be echoed
ROWS = 2500


def served_row(step: int) -> dict:
    row = {"_step": step, "train/loss": 1.0 / (step + 1), "_runtime": step * 0.5}
    if step == 3:
        row["train/loss"] = float("nan")
    if step == 4:
        row["train/loss"] = float("-inf")
    if step % 100 == 99:
        row["probe/test_acc"] = step / 10000
    return row


class FakeWandb(BaseHTTPRequestHandler):
    """Answers like api.wandb.ai for one run, ent/proj/abc123; `fail` holds HTTP codes to answer first."""

    run_found = True
    parquet = False  # serve the history as a parquet file (the cloud's route for most runs) or in pages
    fail: list[int] = []
    seen_auth: set[str] = set()

    def do_GET(self):
        if FakeWandb.fail:
            return self._send({}, FakeWandb.fail.pop(0))
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [served_row(s) for s in range(ROWS)]
        table = pa.table({k: [r.get(k) for r in rows] for k in ["_step", "_runtime", "train/loss", "probe/test_acc"]})
        out = pa.BufferOutputStream()
        pq.write_table(table, out)
        self._send_bytes(out.getvalue().to_pybytes(), "application/octet-stream")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/graphql":
            return self._send({})  # wandb-core's own telemetry
        query = json.loads(body)
        text = query.get("query", "")
        FakeWandb.seen_auth.add(self.headers.get("Authorization", ""))
        if "HistoryPage" in text and FakeWandb.fail:
            return self._send({}, FakeWandb.fail.pop(0))
        if "viewer" in text:
            data = {"viewer": {"id": "VXNlcjox", "entity": "ent", "username": "u", "flags": "{}", "teams": {"edges": []}}}
        elif not FakeWandb.run_found:
            data = {"project": {"run": None}}
        elif "HistoryPage" in text:
            v = query["variables"]
            steps = range(v["minStep"], min(v["maxStep"], v["minStep"] + v["pageSize"], ROWS))
            data = {"project": {"run": {"history": [json.dumps(served_row(s)) for s in steps]}}}
        elif "parquetHistory" in text:
            urls = [f"http://127.0.0.1:{self.server.server_address[1]}/history.parquet"] if FakeWandb.parquet else []
            data = {"project": {"run": {"parquetHistory": {"parquetUrls": urls, "liveData": []}}}}
        else:
            data = {"project": {"run": {
                "id": "UnVuOjE=", "name": "abc123", "displayName": "online-run", "state": "finished",
                "config": json.dumps({"lr": {"value": 0.1}, "model": {"value": {"depth": 4}}, "_wandb": {"value": {}},
                                      "cmd": {"value": f"train.py --key {API_KEY}"}}),
                "summaryMetrics": json.dumps({"final_probe/test_top1": 0.375}), "historyKeys": {"lastStep": ROWS - 1},
                "historyLineCount": ROWS, "createdAt": "2026-11-25T10:00:00", "tags": [], "projectId": "1",
                "user": {"name": "u", "username": "u"}, "systemMetrics": "{}",
            }}}
        self._send({"data": data})

    def _send(self, body: dict, status: int = 200):
        self._send_bytes(json.dumps(body).encode(), "application/json", status)

    def _send_bytes(self, raw: bytes, content_type: str, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    FakeWandb.run_found, FakeWandb.parquet, FakeWandb.fail, FakeWandb.seen_auth = True, False, [], set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeWandb)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def fetch(tmp_path: Path, base_url: str, *args: str, api_key: str | None = API_KEY) -> subprocess.CompletedProcess:
    """The CLI in a fresh process with a private HOME (no ~/.netrc), wandb pointed at `base_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path / "home"), WANDB_BASE_URL=base_url, WANDB_SILENT="true",
               WANDB_CONFIG_DIR=str(tmp_path / "home" / ".config"), WANDB_CACHE_DIR=str(tmp_path / "home" / ".cache"))
    if api_key:
        env["WANDB_API_KEY"] = api_key
    cmd = [sys.executable, "-m", "site_builder", "fetch", "--out", str(tmp_path / "runs"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def assert_key_never_written(tmp_path: Path, result: subprocess.CompletedProcess) -> None:
    assert API_KEY not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("route", ["pages", "parquet"])
def test_online_run_is_exported_with_every_row_through_a_429(route, server, tmp_path):
    FakeWandb.parquet = route == "parquet"
    FakeWandb.fail = [429]  # wandb-core retries 429 and 5xx itself, with back-off
    result = fetch(tmp_path, server, "ent/proj/abc123")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "runs" / "online-run"
    table = list(csv.reader(open(out / "history.csv")))
    assert table[0] == ["_step", "_runtime", "probe/test_acc", "train/loss"]
    assert len(table) - 1 == ROWS
    for cells in table[1:]:
        expected = served_row(int(cells[0]))
        for name, cell in zip(table[0], cells):
            if name not in expected:
                assert cell == ""
            elif math.isnan(expected[name]):
                assert cell == "nan"
            else:
                assert float(cell) == expected[name]
    assert json.loads((out / "config.json").read_text()) == {"lr": 0.1, "model/depth": 4, "cmd": "[redacted]"}
    assert json.loads((out / "summary.json").read_text()) == {"final_probe/test_top1": 0.375}
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["source"], meta["source_kind"], meta["rows"], meta["state"]) == ("ent/proj/abc123", "online", ROWS, "finished")
    assert any(API_KEY.encode() in __import__("base64").b64decode(a.split()[-1]) for a in FakeWandb.seen_auth if a)
    assert_key_never_written(tmp_path, result)


def test_run_not_found_is_one_line_and_writes_nothing(server, tmp_path):
    FakeWandb.run_found = False
    result = fetch(tmp_path, server, "https://wandb.ai/ent/proj/runs/abc123")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ent/proj/abc123: run not found") and result.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()
    assert_key_never_written(tmp_path, result)


def test_no_api_key_is_one_line(server, tmp_path):
    result = fetch(tmp_path, server, "ent/proj/abc123", api_key=None)
    assert result.returncode == 1
    assert "no wandb API key" in result.stderr and result.stderr.count("\n") == 1


def test_unreachable_server_is_retried_then_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    result = fetch(tmp_path, closed, "ent/proj/abc123", "--retries", "1")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "retrying in 1 s" in lines[0]
    assert lines[-1].startswith(f"error: cannot reach the wandb server {closed}") and len(lines) == 2
    assert not (tmp_path / "runs").exists()
    assert_key_never_written(tmp_path, result)


class ScriptedRun:
    """scan_history that raises the scripted errors at the scripted rows, then goes on from min_step."""

    def __init__(self, steps: int, failures: dict[int, Exception]):
        self.steps, self.failures, self.calls = steps, dict(failures), []

    def scan_history(self, page_size: int, min_step: int, use_cache: bool):
        self.calls.append(min_step)
        for step in range(min_step, self.steps):
            if step in self.failures:
                raise self.failures.pop(step)
            yield {"_step": step, "loss": float(step)}


def test_scan_resumes_after_the_last_delivered_step_with_back_off():
    run = ScriptedRun(50, {10: ConnectionError("connection reset by peer"), 30: RuntimeError("HTTP 429: Too Many Requests")})
    sleeps: list[float] = []
    rows = list(scan_rows(run, "e/p/r", retries=3, sleep=sleeps.append))
    assert [r["_step"] for r in rows] == list(range(50))  # every step once, in order
    assert run.calls == [0, 10, 30] and sleeps == [1.0, 1.0]


def test_scan_gives_up_after_retries_and_not_on_permanent_errors():
    sleeps: list[float] = []
    failing = ScriptedRun(50, {5: ConnectionError("refused")})
    failing.scan_history = lambda **kwargs: (_ for _ in ()).throw(TimeoutError("timed out"))
    with pytest.raises(UserError, match="timed out"):
        list(scan_rows(failing, "e/p/r", retries=2, sleep=sleeps.append))
    assert sleeps == [1.0, 2.0]
    with pytest.raises(UserError, match="HTTP 403"):
        list(scan_rows(ScriptedRun(9, {2: RuntimeError("HTTP 403 Forbidden")}), "e/p/r", sleep=sleeps.append))
    assert sleeps == [1.0, 2.0]


def test_transient_errors_and_run_paths():
    class Response:
        def __init__(self, status_code):
            self.status_code = status_code

    class HTTPError(Exception):
        def __init__(self, status):
            self.response = Response(status)

    assert is_transient(HTTPError(429)) and is_transient(HTTPError(503)) and not is_transient(HTTPError(404))
    assert is_transient(ConnectionRefusedError()) and not is_transient(ValueError("bad key"))
    assert parse_run_path("https://wandb.ai/ent/proj/runs/abc123?workspace=x") == "ent/proj/abc123"
    assert parse_run_path("ent/proj/abc123") == "ent/proj/abc123"
    assert parse_run_path("not-a-run") is None
