"""Broken and hostile wandb runs (issue 9), on real offline runs written by wandb itself: damaged files
are one-line errors naming the file with exports/ left byte-identical; no credential ever reaches
exports/ or dist/; a missing key or an unreachable server is a clear error, not a hang or a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
from pathlib import Path

import pytest

from site_builder import cli
from site_builder.errors import UserError
from test_hostile_content import build, chapter, scan, snapshot, write

wandb = pytest.importorskip("wandb")

QUIET_OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false",
                 "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true"}
PLANTED_KEY = "0123456789abcdef0123456789abcdef01234567"  # a WANDB_API_KEY-shaped value (40 hex digits)
SECRETS = {
    "hf_token": "hf_PLANTEDtokenPLANTEDtokenPLANTED1",
    "wandb_api_key": PLANTED_KEY,
    "db": {"password": "PLANTED-password-9f8e7d"},
    "aws_secret_access_key": "PLANTEDawsSECRETkey/abc+def",
    "notes": f"resume with WANDB_API_KEY={PLANTED_KEY} later",  # a secret inside an innocent-looking value
}
HOSTILE_METRICS = {"train loss": 1.0, 'say "hi"': 2.0, "</script><script>alert(1)</script>": 3.0, "ünï/σ": 4.0}


def planted_values() -> list[str]:
    return [PLANTED_KEY, SECRETS["hf_token"], SECRETS["db"]["password"], SECRETS["aws_secret_access_key"]]


def _make_run(root: Path, name: str, steps: int, config: dict, extra: dict | None = None) -> Path:
    run = wandb.init(mode="offline", dir=root, project="hostile-tests", name=name, config=config,
                     settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True))
    for step in range(steps):
        wandb.log({"train/loss": 1.0 / (step + 1), **(extra if step == 0 and extra else {})}, step=step)
    run.summary["api_token"] = SECRETS["hf_token"]
    run.summary["final/acc"] = 0.5
    run.finish()
    (folder,) = [p for p in (root / "wandb").glob("offline-run-*") if p.name.endswith(run.id)]
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real offline runs: 'secret' (planted credentials, hostile metric names) and 'plain' (50 steps)."""
    with pytest.MonkeyPatch.context() as env:  # module-scoped, so not the `monkeypatch` fixture
        for key, value in {**QUIET_OFFLINE, "WANDB_API_KEY": PLANTED_KEY}.items():
            env.setenv(key, value)
        root = tmp_path_factory.mktemp("hostile-wandb")
        yield {
            "secret": _make_run(root, "secret-run", 5, {"lr": 0.1, **SECRETS}, HOSTILE_METRICS),
            "plain": _make_run(root, "plain-run", 50, {"lr": 0.1}),
        }


def fetch(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["fetch", *args])
    return rc, out.getvalue(), err.getvalue()


def assert_fetch_rejected(exports: Path, args: list[str], *where: str) -> str:
    """fetch fails with one line naming `where`, and exports/ is byte-identical afterwards."""
    before = snapshot(exports)
    rc, out, err = fetch(*args, "--out", str(exports / "runs"))
    lines = err.strip().splitlines()
    assert rc == 1, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for part in where:
        assert part in lines[0], (part, lines[0])
    assert snapshot(exports) == before
    return lines[0]


@pytest.fixture(scope="module")
def plain_export(runs, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plain") / "exports"
    rc, _, err = fetch(str(runs["plain"]), "--out", str(folder / "runs"))
    assert rc == 0, err
    return folder


@pytest.fixture
def exports(plain_export, tmp_path) -> Path:
    """exports/ holding a good export of the plain run (what a bad fetch must leave alone)."""
    return shutil.copytree(plain_export, tmp_path / "site" / "exports")


def damaged_copy(run: Path, tmp_path: Path, damage) -> Path:
    copy = tmp_path / "damaged" / run.name
    shutil.copytree(run, copy)
    (run_file,) = copy.glob("run-*.wandb")
    data = run_file.read_bytes()
    run_file.write_bytes(damage(data))
    return copy


@pytest.mark.parametrize("how", ["empty", "cut 7 bytes short"])
def test_truncated_wandb_file(runs, exports, tmp_path, how):
    cut = {"empty": lambda d: b"", "cut 7 bytes short": lambda d: d[:-7]}[how]
    copy = damaged_copy(runs["plain"], tmp_path, cut)
    assert_fetch_rejected(exports, [str(copy), "--name", "plain-run"], "run-", ".wandb")


def test_corrupt_wandb_file(runs, exports, tmp_path):
    def scramble(data: bytes) -> bytes:
        middle = len(data) // 2
        return data[:middle] + bytes(255 - b for b in data[middle : middle + 200]) + data[middle + 200 :]

    copy = damaged_copy(runs["plain"], tmp_path, scramble)
    assert_fetch_rejected(exports, [str(copy), "--name", "plain-run"], "run-", ".wandb")


def test_not_a_wandb_file_at_all(exports, tmp_path):
    fake = tmp_path / "offline-run-x" / "run-x.wandb"
    fake.parent.mkdir()
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a wandb log" * 100)
    assert_fetch_rejected(exports, [str(fake)], "run-x.wandb")


def test_run_folder_without_a_wandb_file(runs, exports, tmp_path):
    copy = tmp_path / "no-log" / runs["plain"].name
    shutil.copytree(runs["plain"], copy)
    for run_file in copy.glob("run-*.wandb"):
        run_file.unlink()
    assert_fetch_rejected(exports, [str(copy)], str(copy), "no run-*.wandb")
    assert_fetch_rejected(exports, ["--all-offline", str(copy.parent)], "no offline runs")


def test_no_api_key(exports, tmp_path, monkeypatch):
    """Online fetch with no WANDB_API_KEY and no ~/.netrc, against a local server that accepts connections."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.delenv("WANDB_API_KEY", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
        monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert_fetch_rejected(exports, ["someone/project/abc123", "--retries", "0"], "API key")


def test_network_down(exports, monkeypatch):
    """An unreachable server (a closed local port) fails at once with a clear message, no retries asked."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    monkeypatch.setenv("WANDB_API_KEY", PLANTED_KEY)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    line = assert_fetch_rejected(exports, ["someone/project/abc123", "--retries", "0"], "cannot reach", f"127.0.0.1:{port}")
    assert PLANTED_KEY not in line


@pytest.fixture(scope="module")
def secret_export(runs, tmp_path_factory) -> Path:
    """exports/ of the secret run, fetched once with WANDB_API_KEY set to the planted key."""
    folder = tmp_path_factory.mktemp("secret") / "exports"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_API_KEY", PLANTED_KEY)
        rc, _, err = fetch(str(runs["secret"]), "--out", str(folder / "runs"))
    assert rc == 0, err
    return folder


def test_no_secret_reaches_exports_or_dist(secret_export, tmp_path, monkeypatch):
    """Credentials planted in the run's config and summary, and WANDB_API_KEY itself, never leave the run."""
    monkeypatch.setenv("WANDB_API_KEY", PLANTED_KEY)  # also present while building
    site = tmp_path / "site"
    shutil.copytree(secret_export, site / "exports")
    exported = snapshot(site / "exports")
    config = json.loads(exported["runs/secret-run/config.json"])
    assert config["lr"] == 0.1  # ordinary hyper-parameters are kept
    body = (
        "```table\nsource: runs/secret-run/config.json\nkeys: [lr]\n```\n\n"
        "```table\nsource: runs/secret-run/history.csv\n```\n\n"
        "Accuracy {{ runs/secret-run/summary.json#final/acc | .0% }}.\n"
    )
    write(site, {"content/index.md": chapter(body, "Home", 0)})
    rc, _, err = build(site)
    assert rc == 0, err
    everything = {**{f"exports/{k}": v for k, v in exported.items()}, **{f"dist/{k}": v for k, v in snapshot(site / "dist").items()}}
    everything.update({f".cache/{k}": v for k, v in snapshot(site / ".cache").items()})
    for secret in planted_values():
        leaks = [name for name, data in everything.items() if secret.encode() in data]
        assert not leaks, (secret, leaks)
    for name in ("hf_token", "wandb_api_key", "db/password", "aws_secret_access_key"):
        assert config.get(name) in (None, "[redacted]"), (name, config.get(name))


def test_hostile_metric_names_from_a_real_run(secret_export, tmp_path):
    """Names wandb accepted (spaces, quotes, </script>, unicode) are exported under safe names and drawn as data."""
    site = tmp_path / "site"
    shutil.copytree(secret_export, site / "exports")
    columns = (site / "exports/runs/secret-run/history.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert all(set(c) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-ünïσ") for c in columns), columns
    body = "```chart\nsource: runs/secret-run/history.csv\ny: [" + ", ".join(json.dumps(c) for c in columns[1:]) + "]\n```\n"
    write(site, {"content/index.md": chapter(body, "Home", 0)})
    rc, _, err = build(site)
    assert rc == 0, err
    found = scan((site / "dist/index.html").read_text())
    assert not found.handlers
    assert all("alert(" not in text for attrs, text in found.scripts if attrs.get("type") != "application/json")


@pytest.mark.parametrize("run_name, run_id", [("../../etc", "abc123"), ("/abs/path", "abc123"), ("a/../../b", "abc123"),
                                              ("..", "abc123"), ("<script>", "abc123"), ("名前 with spaces", "abc123"),
                                              ("", "abc123"), ("", "../../evil"), ("..", "..")])
def test_a_hostile_run_name_becomes_one_safe_folder(run_name, run_id):
    """The folder under exports/runs/ comes from the run's name, which the run's author chose."""
    from site_builder.fetch.export import folder_name
    from site_builder.fetch.run_data import RunData

    run = RunData(rows=[], config={}, summary={}, where="w", source="s", kind="offline", run_id=run_id,
                  run_name=run_name, project="p", entity="e", state="finished", start_time="")
    if run_id == "..":  # nothing usable: an error that says to use --name
        with pytest.raises(UserError, match="--name"):
            folder_name(run, None)
        return
    name = folder_name(run, None)
    assert name and "/" not in name and name not in (".", "..") and not name.startswith(".")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"), name
