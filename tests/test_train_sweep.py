"""The sweep runner's plan, its skipping of finished runs, and its summary of exported runs."""

from __future__ import annotations

import csv
import json

from site_builder.train import sweep

PLAN = """
[defaults]
args = ["--epochs", "20"]
[[run]]
name = "a"
args = ["--objective", "lejepa", "--lam", "0.05"]
[[run]]
name = "b"
args = ["--objective", "infonce", "--temperature", "0.1"]
"""


def _export(root, name, objective, lam, temperature, val_top1):
    folder = root / "runs" / name
    folder.mkdir(parents=True)
    config = {"train/objective": objective, "train/lam": lam, "train/temperature": temperature, "train/lr": 1e-3,
              "aug/global_views": 2, "aug/global_size": 32, "aug/local_views": 6, "aug/local_size": 16,
              "aug/local_scale": [0.05, 0.3]}
    (folder / "config.json").write_text(json.dumps(config))
    # summary's train/lr is the last logged learning rate: it must not replace the configured one
    (folder / "summary.json").write_text(json.dumps({"final_probe/val_top1": val_top1, "train/lr": 1e-6}))


def test_finished_runs_are_skipped_and_the_rest_get_defaults_then_their_args(tmp_path, capsys):
    plan = tmp_path / "p.toml"
    plan.write_text(PLAN)
    (tmp_path / "ck" / "a" / "final").mkdir(parents=True)
    assert sweep.main([str(plan), "--data", "D", "--out", str(tmp_path / "ck"), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 runs in the plan, 1 finished, 1 to run"
    assert out[1].endswith("--epochs 20 --objective infonce --temperature 0.1") and "--name b" in out[1]


def test_a_plan_with_a_repeated_name_is_a_one_line_error(tmp_path, capsys):
    plan = tmp_path / "p.toml"
    plan.write_text(PLAN.replace('name = "b"', 'name = "a"'))
    assert sweep.main([str(plan), "--data", "D", "--dry-run"]) == 1
    assert capsys.readouterr().err.strip().endswith("two runs have the same name")


def test_summary_rows_and_series_come_from_the_exports(tmp_path):
    plan = tmp_path / "p.toml"
    plan.write_text(PLAN + '[[run]]\nname = "c"\nargs = []\n')  # c was never exported: no row
    _export(tmp_path, "a", "lejepa", 0.05, 0.2, 0.5)
    _export(tmp_path, "b", "infonce", 0.02, 0.1, 0.56)
    assert sweep.main([str(plan), "--summarize", str(tmp_path)]) == 0
    out = tmp_path / "sweeps" / "p"
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [(r["run"], r["lam"], r["temperature"], r["lr"]) for r in rows] == [("a", "0.05", "", "0.001"),
                                                                                ("b", "", "0.1", "0.001")]
    assert rows[0]["views"] == "2x32 + 6x16 (0.05-0.3)"
    lejepa = list(csv.reader(open(out / "lejepa-2x32-6x16s0.05-0.3-lr0.001.csv")))
    assert lejepa == [["lam", "val_top1"], ["0.05", "0.5"]]
