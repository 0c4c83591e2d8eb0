"""`fetch` on real offline runs written by wandb itself: the export equals what was logged, value by value.

The runs are made once per session (wandb.init takes about a second each). If a wandb release
changes what `wandb leet inspect --json` prints, these tests fail: that CLI is the offline reader.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from site_builder import cli

wandb = pytest.importorskip("wandb")

QUIET_OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false",
                 "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true"}
STEPS = 3000
CONFIG = {"lr": 0.002, "model": {"depth": 4, "width": 192, "rope": "2d"}, "views": [2, 6], "seed": None,
          "max_tokens": 512, "hf_token": "hf_PLANTEDsecretTOKEN123", "notes": "resume: api_key=PLANTEDkey0123456789"}


def logged_rows() -> list[tuple[int, dict]]:
    """What the main run logs: per-step losses, per-epoch probe accuracy, a rare key, text, non-finite values."""
    rows = []
    for i in range(STEPS):
        step = 2 * i  # steps need not be consecutive
        row = {"train/loss": 1.0 / (i + 1) + 0.01 * math.sin(i), "train/lr": 0.002 * min(1.0, i / 300)}
        if i == 5:
            row["train/loss"] = float("nan")
        if i == 6:
            row["train/loss"] = float("inf")
        if i == 7:
            row["train/lr"] = float("-inf")
        if i % 100 == 99:
            row["epoch"] = i // 100
            row["probe/test_acc"] = round(0.01 + 0.3 * i / STEPS, 6)
        if i % 10 == 0:
            row["grad"] = {"norm": 1.0 + i / 7}  # wandb names nested keys "grad.norm"
        if i == 1234:
            row["rare/metric"] = 42
        if i % 500 == 0:
            row["sample/caption"] = f"text at {i}"  # not a number: left out of the table
        rows.append((step, row))
    return rows


def expected_columns(rows) -> dict[str, dict[int, float]]:
    columns: dict[str, dict[int, float]] = {}
    for step, row in rows:
        for key, value in row.items():
            if key == "grad":
                columns.setdefault("grad.norm", {})[step] = value["norm"]
            elif not isinstance(value, str):
                columns.setdefault(key, {})[step] = value
    return columns


def _make_run(root: Path, name: str, rows, config=None, summary=None, run_id=None) -> Path:
    run = wandb.init(mode="offline", dir=root, project="fetch-tests", name=name, config=config or {}, id=run_id,
                     resume="allow" if run_id else None,
                     settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True))
    for step, row in rows:
        wandb.log(row, step=step)
    run.summary.update(summary or {})  # as the trainer writes its final evaluation
    run.finish()
    return max(p for p in (root / "wandb").glob("offline-run-*") if p.name.endswith(run.id))


KILLED_RUN = """
import os, sys, time, wandb
KILLED_STEPS = int(os.environ["KILLED_STEPS"])
run = wandb.init(mode="offline", dir=sys.argv[1], project="fetch-tests", name="killed",
                 settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True))
for step in range(KILLED_STEPS):
    run.log({"loss": step / 2}, step=step)
time.sleep(1)  # let wandb's service catch up on a loaded machine (it writes full blocks only)
os.kill(os.getpid(), 9)  # a training killed mid-run (OOM, pre-emption): no exit record
"""
KILLED_STEPS = 2000  # wandb writes whole 32 KiB blocks; a kill loses the unwritten tail, not the first steps


def _make_killed_run(root: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # its own wandb service, not ours
    env["KILLED_STEPS"] = str(KILLED_STEPS)
    subprocess.run([sys.executable, "-c", KILLED_RUN, str(root)], env=env, capture_output=True)
    return next((root / "wandb").glob("offline-run-*"))


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Real offline runs: main (3000 steps), second (same wandb/ folder), clash (colliding names), empty,
    summary_only (no history: an untrained reference, `train --epochs 0`), killed (no exit record) and
    resumed (the killed run's folder plus a resumed segment)."""
    with pytest.MonkeyPatch.context() as env:  # session-scoped, so not the `monkeypatch` fixture
        for key, value in QUIET_OFFLINE.items():
            env.setenv(key, value)
        root = tmp_path_factory.mktemp("wandb-runs")
        made = {
            "main": _make_run(root, "lejepa-test", logged_rows(), CONFIG, {"final_probe/test_top1": 0.3125}),
            "second": _make_run(root, "infonce-test", [(s, {"train/loss": 2.0 - s / 10}) for s in range(20)]),
        }
        other = tmp_path_factory.mktemp("wandb-other")
        made["clash"] = _make_run(other, "clash", [(0, {"train loss": 1.0, "train_loss": 2.0})])
        made["empty"] = _make_run(other, "empty", [])
        made["summary_only"] = _make_run(other, "random-init", [], {"seed": 1}, SUMMARY_ONLY)
        made["killed"] = _make_killed_run(tmp_path_factory.mktemp("wandb-killed"))
        # Our training resumes a killed run under the same id: wandb starts a second offline-run-*-<id> folder.
        resumed = tmp_path_factory.mktemp("wandb-resumed")
        made["resumed"] = resumed / "wandb" / made["killed"].name
        shutil.copytree(made["killed"], made["resumed"])
        run_id = made["killed"].name.rsplit("-", 1)[1]
        _make_run(resumed, "killed", [(s, {"loss": 1000.0 + s}) for s in range(20, 60)], run_id=run_id)
        made["root"] = root / "wandb"
        yield made


SUMMARY_ONLY = {"final_probe/test_top1": 0.0871, "knn/test_top1": 0.0653, "repr/effective_rank": 12.5,
                "train/wall_s": 0.002, "train/epochs_done": 0}


def fetch(*args: str) -> int:
    return cli.main(["fetch", *args])


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def same_value(cell: float, expected: float) -> bool:
    return (math.isnan(cell) and math.isnan(expected)) or cell == expected


@pytest.fixture(scope="session")
def main_export(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "runs"
    assert fetch(str(runs["main"]), "--out", str(out)) == 0
    return out / "lejepa-test"


def test_history_csv_equals_logged_values(main_export):
    expected = expected_columns(logged_rows())
    with open(main_export / "history.csv", newline="") as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1:]
    metrics = [c for c in header if not c.startswith("_")]
    assert header[0] == "_step"
    assert metrics == sorted(expected)  # text key left out; nested key flattened; sorted
    assert [int(r[0]) for r in body] == [step for step, _ in logged_rows()]
    for row in body:
        step = int(row[0])
        for name in metrics:
            cell = row[header.index(name)]
            if step in expected[name]:
                assert same_value(float(cell), expected[name][step]), (name, step, cell)
            else:
                assert cell == "", (name, step, cell)
    assert body[5][header.index("train/loss")] == "nan"
    assert body[6][header.index("train/loss")] == "inf"
    assert body[7][header.index("train/lr")] == "-inf"


def test_history_json_matches_and_marks_not_logged_and_nonfinite(main_export):
    expected = expected_columns(logged_rows())
    doc = json.loads((main_export / "history.json").read_text())
    steps = doc["data"]["_step"]
    assert doc["columns"][0] == "_step" and set(doc["columns"]) == set(doc["data"])
    nonfinite = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    for name, by_step in expected.items():
        column = doc["data"][name]
        for step, value in zip(steps, column):
            if step not in by_step:
                assert value is None
            else:
                assert same_value(nonfinite.get(value, value), by_step[step]), (name, step, value)
    assert doc["data"]["train/loss"][5:7] == ["NaN", "Infinity"]
    assert doc["data"]["rare/metric"].count(None) == STEPS - 1


def test_config_summary_and_meta(main_export, runs):
    config = json.loads((main_export / "config.json").read_text())
    assert config == {"lr": 0.002, "model/depth": 4, "model/width": 192, "model/rope": "2d", "views": [2, 6], "seed": None,
                      "max_tokens": 512, "hf_token": "[redacted]", "notes": "[redacted]"}
    for data in tree(main_export.parent).values():
        assert b"PLANTED" not in data
    summary = json.loads((main_export / "summary.json").read_text())
    last_step, last_row = logged_rows()[-1]
    assert summary["final_probe/test_top1"] == 0.3125
    assert summary["train/loss"] == last_row["train/loss"] and summary["_step"] == last_step
    meta = json.loads((main_export / "meta.json").read_text())
    assert meta["rows"] == STEPS and meta["state"] == "finished" and meta["run_name"] == "lejepa-test"
    assert meta["source_kind"] == "offline" and meta["run_id"] in runs["main"].name
    assert not os.path.isabs(meta["source"]) and meta["source"].endswith(".wandb")
    assert meta["wandb_version"] == wandb.__version__
    assert meta["sha256"]["history.csv"] == hashlib.sha256((main_export / "history.csv").read_bytes()).hexdigest()
    assert "sample/caption" in meta["skipped_metrics"]
    assert meta["redacted"] == ["config.json#hf_token", "config.json#notes"]
    index = json.loads((main_export.parent / "index.json").read_text())
    assert [r["name"] for r in index["runs"]] == ["lejepa-test"] and index["runs"][0]["rows"] == STEPS


def test_refetch_unchanged_rewrites_nothing_and_keys_replace_the_folder(runs, tmp_path, capsys):
    out = tmp_path / "runs"
    assert fetch(str(runs["second"]), "--out", str(out), "--name", "b") == 0
    before = {p.name: p.stat().st_mtime_ns for p in (out / "b").iterdir()}
    inode = (out / "b").stat().st_ino
    capsys.readouterr()
    assert fetch(str(runs["second"]), "--out", str(out), "--name", "b") == 0
    assert "(unchanged)" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "b").iterdir()} == before
    assert (out / "b").stat().st_ino == inode

    assert fetch(str(runs["main"]), "--out", str(out), "--keys", "probe/*,epoch", "--name", "b") == 0
    doc = json.loads((out / "b" / "history.json").read_text())
    assert doc["columns"] == ["_step", "epoch", "probe/test_acc"]
    assert sorted(p.name for p in out.iterdir()) == ["b", "index.json"]  # no temporaries left


def test_all_offline_exports_every_good_run_and_reports_the_damaged_one(runs, tmp_path, capsys):
    wandb_dir = tmp_path / "wandb"
    shutil.copytree(runs["root"], wandb_dir, symlinks=True)
    crashed = wandb_dir / "offline-run-20260101_000000-crashed"
    crashed.mkdir()
    (crashed / "run-crashed.wandb").write_bytes(next(runs["second"].glob("run-*.wandb")).read_bytes()[:3000])
    shutil.copytree(runs["empty"], wandb_dir / runs["empty"].name)  # readable, but nothing to export
    out = tmp_path / "runs"
    capsys.readouterr()
    assert fetch("--all-offline", str(wandb_dir), "--out", str(out)) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err[:2])
    assert "run-crashed.wandb" in err[0] and "empty history (no logged steps) and no summary" in err[1] and err[2].startswith("2 run(s)")
    index = json.loads((out / "index.json").read_text())
    assert [r["name"] for r in index["runs"]] == ["infonce-test", "lejepa-test"]
    second = list(csv.reader(open(out / "infonce-test" / "history.csv")))
    loss = second[0].index("train/loss")
    assert [float(r[loss]) for r in second[1:]] == [2.0 - s / 10 for s in range(20)]


def test_a_run_with_a_summary_and_no_history_exports_an_empty_history(runs, tmp_path):
    """`train --epochs 0` logs no step, only its final evaluation: that is exported, with a header-only history."""
    from site_builder.charts.data import read_numeric_columns

    out = tmp_path / "runs"
    assert fetch(str(runs["summary_only"]), "--out", str(out)) == 0
    folder = out / "random-init"
    summary = json.loads((folder / "summary.json").read_text())
    assert {k: summary[k] for k in SUMMARY_ONLY} == SUMMARY_ONLY
    assert json.loads((folder / "config.json").read_text()) == {"seed": 1}
    assert (folder / "history.csv").read_text() == "_step\n"
    assert json.loads((folder / "history.json").read_text()) == {"columns": ["_step"], "data": {"_step": []}}
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["rows"] == 0 and meta["columns"] == ["_step"] and meta["state"] == "finished"
    for file in ("history.csv", "history.json"):  # what charts and values read: no rows, no error
        (step,) = read_numeric_columns(folder / file, file, ["_step"]).values()
        assert step.values.size == 0 and step.logged.size == 0


@pytest.mark.parametrize("run", ["main", "resumed"])
def test_config_summary_and_state_agree_with_wandbs_own_summary(run, runs):
    """Our reading of the records matches `wandb leet inspect --summary --json` (wandb's own computation)."""
    from site_builder.fetch.history import flatten
    from site_builder.fetch.offline import read_run_file

    run_file = next(runs[run].glob("run-*.wandb"))
    ours = read_run_file(run_file, allow_incomplete=True)
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(run_file)]
    wandbs = json.loads(subprocess.run(cmd, capture_output=True, check=True, env=dict(os.environ)).stdout)
    assert flatten(ours.config, "/") == flatten(wandbs["config"], "/")  # as config.json / summary.json hold them
    assert flatten(ours.summary, ".") == flatten(wandbs["summary"], ".")
    assert (ours.run_name, ours.project, ours.run_id, ours.start_time) == (
        wandbs["name"], wandbs["project"], wandbs["run_id"], wandbs["start_time"])
    assert ours.state == wandbs["state"] or (ours.state, wandbs["state"]) == ("crashed", "running")


def test_same_rows_through_the_online_row_converter_give_the_same_csv(main_export):
    """The online path: wandb's own scan_history row decoder (proto HistoryRow -> dict) feeds history_table."""
    from wandb.apis.public.history import HistoryScan
    from wandb.proto import wandb_api_pb2 as pb

    from site_builder.fetch.history import history_csv, history_table

    def as_proto(step, row):
        flat = {"_step": step, **{("grad.norm" if k == "grad" else k): (v["norm"] if k == "grad" else v)
                                  for k, v in row.items()}}
        proto = pb.HistoryRow()
        for key, value in flat.items():
            proto.history_items.add(key=key, value_json=json.dumps(value))  # json.dumps writes NaN as wandb does
        return proto

    online_rows = [HistoryScan._convert_history_row_to_dict(as_proto(s, r)) for s, r in logged_rows()]
    metrics = sorted(expected_columns(logged_rows()))
    offline_csv = list(csv.reader(open(main_export / "history.csv")))
    keep = [offline_csv[0].index(c) for c in ["_step", *metrics]]
    offline_part = [[row[i] for i in keep] for row in offline_csv]
    online_csv = list(csv.reader(history_csv(history_table(online_rows, "online", metrics)).decode().splitlines()))
    assert online_csv == offline_part


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])  # more shapes of damage: test_hostile_runs.py
def test_damaged_wandb_file_is_a_one_line_error_and_exports_stay(damage, runs, main_export, tmp_path, capsys):
    out = tmp_path / "runs"
    shutil.copytree(main_export.parent, out)
    before = tree(out)
    run_dir = tmp_path / runs["main"].name
    run_dir.mkdir()
    data = next(runs["main"].glob("run-*.wandb")).read_bytes()
    middle = len(data) // 2
    if damage == "truncated":
        data = data[:middle]
    else:
        data = data[:middle] + bytes(b ^ 0x5A for b in data[middle:middle + 200]) + data[middle + 200:]
    (run_dir / "run-damaged.wandb").write_bytes(data)
    capsys.readouterr()
    assert fetch(str(run_dir), "--out", str(out), "--name", "lejepa-test") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "run-damaged.wandb" in err
    assert tree(out) == before


def test_a_killed_run_needs_allow_incomplete(runs, tmp_path, capsys):
    """A run killed mid-way leaves a clean file without an exit record: refused unless asked for."""
    out = tmp_path / "runs"
    assert fetch(str(runs["killed"]), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "--allow-incomplete" in err and err.count("\n") == 1 and not out.exists()
    assert fetch(str(runs["killed"]), "--out", str(out), "--allow-incomplete") == 0
    table = list(csv.reader(open(out / "killed" / "history.csv")))
    loss = table[0].index("loss")
    assert [(int(r[0]), float(r[loss])) for r in table[1:]] == [(s, s / 2) for s in range(len(table) - 1)]
    assert 20 <= len(table) - 1 < KILLED_STEPS
    assert json.loads((out / "killed" / "meta.json").read_text())["warnings"]


def test_a_killed_then_resumed_run_is_joined_from_its_segments(runs, tmp_path):
    """The resumed segment replaces the killed one's rows from its first step (20) on."""
    assert fetch(str(runs["resumed"]), "--out", str(tmp_path / "runs")) == 0
    table = list(csv.reader(open(tmp_path / "runs" / "killed" / "history.csv")))
    loss = table[0].index("loss")
    rows = [(int(r[0]), float(r[loss])) for r in table[1:]]
    assert rows == [(s, s / 2) for s in range(20)] + [(s, 1000.0 + s) for s in range(20, 60)]
    meta = json.loads((tmp_path / "runs" / "killed" / "meta.json").read_text())
    assert meta["source"].count(".wandb") == 2 and meta["warnings"] and meta["state"] == "finished"


def test_colliding_metric_names_are_a_one_line_error_without_a_folder(runs, tmp_path, capsys):
    # (a run with neither history nor summary is the same kind of error: see the --all-offline test)
    assert fetch(str(runs["clash"]), "--out", str(tmp_path / "runs")) == 1
    err = capsys.readouterr().err
    assert "'train loss' and 'train_loss' both become 'train_loss'" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unknown_keys_list_the_metrics_the_run_has():
    from site_builder.errors import UserError
    from site_builder.fetch.history import history_table

    rows = [{"_step": 0, "train/loss": 1.0, "probe/test_acc": 0.5}]
    with pytest.raises(UserError, match=r"--keys train/los match no metric; the run has: probe/test_acc, train/loss"):
        history_table(rows, "run", ["train/los"])


@pytest.mark.parametrize("file", ["history.csv", "history.json"])
def test_the_builder_charts_the_export_directly(main_export, file):
    """Per-epoch probe accuracy shares the file with per-step losses; both reach the chart intact."""
    from site_builder.charts.figures import build_chart

    expected = expected_columns(logged_rows())["probe/test_acc"]
    rel = f"runs/{main_export.name}/{file}"
    figure = build_chart({"source": rel, "y": ["probe/test_acc", "train/loss"], "type": "scatter"}, main_export.parent.parent).figure
    probe, loss = figure["traces"]
    assert probe["x"] == sorted(expected) and probe["y"] == [expected[s] for s in sorted(expected)]
    assert len(loss["x"]) == STEPS - 2  # the nan and inf steps are not drawable
