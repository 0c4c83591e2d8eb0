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


SWEEP = """
[defaults]
args = ["--epochs", "20"]
[[run]]
name = "l-base"
axis = "base"
args = ["--objective", "lejepa", "--lam", "0.02"]
[[run]]
name = "l-lam0.05"
axis = "lam"
args = ["--objective", "lejepa", "--lam", "0.05"]
[[run]]
name = "l-4g"
axis = "views"
args = ["--objective", "lejepa", "--lam", "0.02", "--global-views", "4", "--local-views", "0"]
[[run]]
name = "l-lr2e-3"
axis = "lr"
args = ["--objective", "lejepa", "--lam", "0.02", "--lr", "2e-3"]
[[run]]
name = "i-base"
axis = "base"
args = ["--objective", "infonce", "--temperature", "0.2"]
[[run]]
name = "i-t0.1"
axis = "temperature"
args = ["--objective", "infonce", "--temperature", "0.1"]
"""


def _scores(root, scores):
    for name, value in scores.items():
        (root / "runs" / name).mkdir(parents=True)
        (root / "runs" / name / "summary.json").write_text(json.dumps({"final_probe/val_top1": value}))


def test_the_best_combination_takes_each_axis_winner_and_skips_a_combination_already_run(tmp_path):
    plan = tmp_path / "sweep.toml"
    plan.write_text(SWEEP)
    # LeJEPA: lambda 0.05 and four global views each beat the base, a higher lr does not;
    # InfoNCE: only the temperature moved, so its best combination is a run already made.
    _scores(tmp_path, {"l-base": 0.40, "l-lam0.05": 0.45, "l-4g": 0.42, "l-lr2e-3": 0.39, "i-base": 0.5, "i-t0.1": 0.52})
    out = tmp_path / "combine.toml"
    assert sweep.main([str(plan), "--combine", str(tmp_path), "--write", str(out)]) == 0
    (run,) = sweep.read_plan(out)
    assert run.name == "l-best" and run.axis == "best"
    assert sweep.parse_flags(run.args) == {"--epochs": ("20",), "--objective": ("lejepa",), "--lam": ("0.05",),
                                           "--global-views": ("4",), "--local-views": ("0",)}
    assert "lam: l-lam0.05 (val top-1 0.4500)" in out.read_text()


def test_final_runs_repeat_each_methods_best_validation_run_over_new_seeds_with_the_test_split(tmp_path):
    plan = tmp_path / "sweep.toml"
    plan.write_text(SWEEP)
    _scores(tmp_path, {"l-base": 0.40, "l-lam0.05": 0.45, "i-base": 0.5, "i-t0.1": 0.48})
    out = tmp_path / "final.toml"
    assert sweep.main([str(plan), "--final", str(tmp_path), "--seeds", "1", "2", "--write", str(out)]) == 0
    runs = {r.name: sweep.parse_flags(r.args) for r in sweep.read_plan(out)}
    assert sorted(runs) == ["final-infonce-s1", "final-infonce-s2", "final-lejepa-lam0-s1", "final-lejepa-s1",
                            "final-lejepa-s2", "final-random-init"]
    assert runs["final-infonce-s2"]["--temperature"] == ("0.2",) and runs["final-infonce-s2"]["--seed"] == ("2",)
    assert runs["final-lejepa-s1"]["--lam"] == ("0.05",) and "--eval-test" in runs["final-lejepa-s1"]
    assert runs["final-lejepa-lam0-s1"]["--lam"] == ("0",)
    assert runs["final-random-init"]["--epochs"] == ("0",) and "--eval-test" in runs["final-random-init"]


def test_combining_without_a_scored_base_run_is_a_one_line_error(tmp_path, capsys):
    plan = tmp_path / "sweep.toml"
    plan.write_text(SWEEP)
    _scores(tmp_path, {"l-lam0.05": 0.45})
    assert sweep.main([str(plan), "--combine", str(tmp_path), "--write", str(tmp_path / "c.toml")]) == 1
    assert capsys.readouterr().err.strip() == "error: the base run l-base has no exported validation score"
    assert not (tmp_path / "c.toml").exists()


def test_gpus_give_each_run_its_own_device(tmp_path, monkeypatch):
    plan = tmp_path / "p.toml"
    plan.write_text(PLAN)
    seen = []

    class FakeProcess:  # records where each run was sent; the runs themselves are not under test
        def __init__(self, cmd, stdout, stderr, env):
            seen.append((cmd[cmd.index("--name") + 1], env["CUDA_VISIBLE_DEVICES"]))
            self.returncode = 0

        def poll(self):
            return 0

    monkeypatch.setattr(sweep.subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(sweep.time, "sleep", lambda s: None)
    assert sweep.main([str(plan), "--data", "D", "--out", str(tmp_path / "ck"), "--gpus", "0,1"]) == 0
    assert seen == [("a", "0"), ("b", "1")]
