"""Run a plan of training runs, resumably: `python -m site_builder.train.sweep PLAN.toml --data DIR`.

A plan (TOML) has `[defaults] args = [...]` given to every run and `[[run]]` tables with a `name` and
`args`. Runs whose checkpoints/<name>/final/ exists are skipped; the others start (or resume from
checkpoints/<name>/last) with `--time-limit-min`, `--parallel` at a time on the same GPU, each logging to
<out>/logs/<name>.log (inside the git-ignored checkpoint folder: a machine that mirrors the working tree
deletes untracked files elsewhere). Call it again after a time limit to continue where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from site_builder.errors import UserError
from site_builder.fsutil import write_bytes_atomic

# Columns of the summary: (file, key) in each run's export (None where absent).
SUMMARY_COLUMNS = {
    "objective": ("config", "train/objective"), "lam": ("config", "train/lam"),
    "temperature": ("config", "train/temperature"), "lr": ("config", "train/lr"),
    "epochs": ("config", "train/epochs"), "batch_size": ("config", "train/batch_size"),
    "val_top1": ("summary", "final_probe/val_top1"), "val_top5": ("summary", "final_probe/val_top5"),
    "knn_val_top1": ("summary", "knn/val_top1"), "effective_rank": ("summary", "repr/effective_rank"),
    "probe_weight_decay": ("summary", "final_probe/weight_decay"), "wall_s": ("summary", "train/wall_s"),
    "git_commit": ("config", "code/git_commit"),
}
KNOB = {"lejepa": "lam", "infonce": "temperature"}  # the objective's own hyper-parameter


@dataclass(frozen=True)
class PlannedRun:
    name: str
    args: tuple[str, ...]


def read_plan(path: Path) -> list[PlannedRun]:
    try:
        plan = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read the plan ({exc})", path=path) from None
    defaults = [str(a) for a in plan.get("defaults", {}).get("args", [])]
    runs = []
    for i, run in enumerate(plan.get("run", [])):
        if not isinstance(run.get("name"), str) or not isinstance(run.get("args", []), list):
            raise UserError(f"[[run]] number {i + 1}: needs name = \"...\" and args = [...]", path=path)
        runs.append(PlannedRun(run["name"], tuple(defaults + [str(a) for a in run.get("args", [])])))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise UserError("two runs have the same name", path=path)
    return runs


def views_label(config: dict) -> str:
    """'2x32 + 6x16 (0.05-0.3)': global views x size + local views x size (local crop scale)."""
    g, gs = config.get("aug/global_views"), config.get("aug/global_size")
    n, ls, sc = config.get("aug/local_views"), config.get("aug/local_size"), config.get("aug/local_scale")
    label = f"{g}x{gs}"
    if n:
        label += f" + {n}x{ls} ({sc[0]:g}-{sc[1]:g})"
    return label


def summarize(runs: list[PlannedRun], exports: Path, out: Path) -> int:
    """One CSV row per exported run of the plan (sweep.csv), and, for charts, one CSV per (objective, view
    set-up) of validation top-1 against lambda (LeJEPA) or temperature (InfoNCE). Returns the rows written."""
    rows, series = [], {}
    for run in runs:
        folder = exports / "runs" / run.name
        if not (folder / "summary.json").exists():
            continue
        files = {"config": json.loads((folder / "config.json").read_text()),
                 "summary": json.loads((folder / "summary.json").read_text())}
        row = {"run": run.name, "views": views_label(files["config"]),
               **{col: files[where].get(key) for col, (where, key) in SUMMARY_COLUMNS.items()}}
        for objective, knob in KNOB.items():  # blank the other objective's knob: it did not act
            if row["objective"] != objective:
                row[knob] = None
        rows.append(row)
        knob = KNOB[row["objective"]]
        series.setdefault((row["objective"], row["views"], row["lr"]), []).append((row[knob], row["val_top1"]))

    def csv_bytes(header, table) -> bytes:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(table)
        return buf.getvalue().encode()

    write_bytes_atomic(out / "sweep.csv", csv_bytes(["run", "views", *SUMMARY_COLUMNS],
                                                    [[r[c] for c in ["run", "views", *SUMMARY_COLUMNS]] for r in rows]))
    for (objective, views, lr), points in series.items():
        slug = views.replace(" + ", "-").replace(" ", "").replace("(", "s").replace(")", "")
        write_bytes_atomic(out / f"{objective}-{slug}-lr{lr:g}.csv", csv_bytes([KNOB[objective], "val_top1"], sorted(points)))
    return len(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("plan", type=Path)
    p.add_argument("--data", help="CIFAR-100 folder (to run)")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time on the one GPU")
    p.add_argument("--only", nargs="+", help="run only these names")
    p.add_argument("--time-limit-min", type=float, default=0.0, help="passed to each run (resumable stop)")
    p.add_argument("--out", default="checkpoints")
    p.add_argument("--logs", type=Path, help="folder of the runs' logs (default: <out>/logs)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    p.add_argument("--summarize", type=Path, metavar="EXPORTS",
                   help="instead of running: summarize the plan's runs exported under EXPORTS/runs into "
                        "EXPORTS/sweeps/<plan name>/ (sweep.csv and one CSV per objective and view set-up)")
    args, extra = p.parse_known_args(argv)
    try:
        runs = read_plan(args.plan)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.summarize:
        out = args.summarize / "sweeps" / args.plan.stem
        print(f"{summarize(runs, args.summarize, out)} of {len(runs)} runs summarized into {out}")
        return 0
    todo = [r for r in runs if (not args.only or r.name in args.only)
            and not (Path(args.out) / r.name / "final").exists()]
    logs = args.logs or Path(args.out) / "logs"
    commands = [[sys.executable, "-m", "site_builder", "train", "--name", r.name, "--data", args.data,
                 "--out", args.out, "--time-limit-min", str(args.time_limit_min), *r.args, *extra] for r in todo]
    print(f"{len(runs)} runs in the plan, {len(runs) - len(todo)} finished, {len(todo)} to run", flush=True)
    if not args.data:
        print("error: --data is needed to run the plan", file=sys.stderr)
        return 1
    if args.dry_run:
        for cmd in commands:
            print(" ".join(cmd[1:]))
        return 0
    running: list[tuple[PlannedRun, subprocess.Popen, float]] = []
    queue = list(zip(todo, commands))
    failed = 0
    while queue or running:
        while queue and len(running) < args.parallel:
            run, cmd = queue.pop(0)
            logs.mkdir(parents=True, exist_ok=True)  # again before each run: someone may have removed it
            log = open(logs / f"{run.name}.log", "a")
            running.append((run, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time()))
            print(f"started {run.name}", flush=True)
        time.sleep(2)
        for item in list(running):
            run, proc, started = item
            if proc.poll() is not None:
                running.remove(item)
                done = (Path(args.out) / run.name / "final").exists()
                failed += proc.returncode != 0
                print(f"{run.name}: exit {proc.returncode}, {'finished' if done else 'stopped (resumable)'}, "
                      f"{time.time() - started:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
