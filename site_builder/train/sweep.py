"""Run a plan of training runs, resumably: `python -m site_builder.train.sweep PLAN.toml --data DIR`.

A plan (TOML) has `[defaults] args = [...]` given to every run and `[[run]]` tables with a `name`,
`args` and, for a sweep, an `axis`: "base" for a method's starting recipe, else the name of the one thing
the run changes from it ("lam", "views", "lr", ...). Runs whose checkpoints/<name>/final/ exists are
skipped; the others start (or resume from checkpoints/<name>/last) with `--time-limit-min`, `--parallel` at
a time on one GPU or one per GPU of `--gpus`, each logging to <out>/logs/<name>.log (inside the git-ignored
checkpoint folder: a machine that mirrors the working tree deletes untracked files elsewhere). Call it
again after a time limit to continue where it stopped.

Selection, always on the validation split (the exported `final_probe/val_top1`), writes the next plan:
`--combine EXPORTS --write P` (each method's best value on every axis, combined: the protocol's
"one change at a time, then the best combination") and `--final EXPORTS --seeds 1 2 3 --write P` (each
method's best run of the given plans, once per seed with `--eval-test`, plus the lambda = 0 and
random-initialisation references).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
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
    axis: str = ""  # "base", or what the run changes from its method's base run


def parse_flags(args: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """['--lam', '0.1', '--local-scale', '0.25', '0.6'] -> {'--lam': ('0.1',), '--local-scale': ('0.25', '0.6')};
    a later flag wins, as in argparse."""
    flags: dict[str, tuple[str, ...]] = {}
    key = None
    for a in args:
        if a.startswith("--"):
            key = a
            flags.pop(key, None)
            flags[key] = ()
        elif key is None:
            raise UserError(f"argument {a!r} comes before any --flag")
        else:
            flags[key] += (a,)
    return flags


def flags_to_args(flags: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(x for key, values in flags.items() for x in (key, *values))


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
        try:
            flags = parse_flags(tuple(defaults + [str(a) for a in run.get("args", [])]))
        except UserError as exc:
            raise UserError(f"[[run]] {run['name']}: {exc.message}", path=path) from None
        runs.append(PlannedRun(run["name"], flags_to_args(flags), str(run.get("axis", ""))))
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


def validation_scores(runs: list[PlannedRun], exports: Path) -> dict[str, float]:
    """Final linear-probe validation top-1 of each exported run of the plans (the selection criterion)."""
    scores = {}
    for run in runs:
        summary = exports / "runs" / run.name / "summary.json"
        if summary.exists():
            value = json.loads(summary.read_text()).get("final_probe/val_top1")
            if value is not None:
                scores[run.name] = float(value)
    return scores


def _method(run: PlannedRun) -> str:
    return parse_flags(run.args).get("--objective", ("lejepa",))[0]


def best_combinations(runs: list[PlannedRun], scores: dict[str, float]) -> list[tuple[PlannedRun, list[str]]]:
    """Per method (one `axis = "base"` run each): on every axis, the best of the base and the runs that change
    only that axis; the base's flags updated with each winner's changes. Returns the new runs with the reasons
    (no run where the combination is a run already made)."""
    out = []
    for base in (r for r in runs if r.axis == "base"):
        if base.name not in scores:
            raise UserError(f"the base run {base.name} has no exported validation score")
        base_flags = parse_flags(base.args)
        merged, why = dict(base_flags), []
        same = [r for r in runs if _method(r) == _method(base) and r.name in scores and r.axis not in ("", "base")]
        for axis in sorted({r.axis for r in same}):
            winner = max([base] + [r for r in same if r.axis == axis], key=lambda r: scores[r.name])
            merged.update({k: v for k, v in parse_flags(winner.args).items() if base_flags.get(k) != v})
            why.append(f"{axis}: {winner.name} (val top-1 {scores[winner.name]:.4f})")
        if any(parse_flags(r.args) == merged for r in runs):
            continue
        out.append((PlannedRun(f"{base.name.removesuffix('-base')}-best", flags_to_args(merged), "best"), why))
    return out


def final_runs(runs: list[PlannedRun], scores: dict[str, float], seeds: list[int]) -> list[tuple[PlannedRun, list[str]]]:
    """Each method's best run on validation, once per seed, scored on test (--eval-test); with LeJEPA's best
    recipe at lambda = 0 and untrained (--epochs 0) as references, first seed only."""
    best: dict[str, PlannedRun] = {}
    for run in runs:
        if run.name in scores and (_method(run) not in best or scores[run.name] > scores[best[_method(run)].name]):
            best[_method(run)] = run
    runs_out, refs = [], []
    for seed in seeds:  # seeds outer, methods inner: a plan cut short by the GPU budget stays a fair comparison
        for method, run in sorted(best.items()):
            flags = {**parse_flags(run.args), "--seed": (str(seed),), "--eval-test": ()}
            runs_out.append((PlannedRun(f"final-{method}-s{seed}", flags_to_args(flags), "final"),
                             [f"best on validation: {run.name} (val top-1 {scores[run.name]:.4f})"]))
    if "lejepa" in best:
        run = best["lejepa"]
        why = f"LeJEPA's best on validation: {run.name} (val top-1 {scores[run.name]:.4f})"
        ref = {**parse_flags(run.args), "--seed": (str(seeds[0]),), "--eval-test": ()}
        refs.append((PlannedRun(f"final-lejepa-lam0-s{seeds[0]}", flags_to_args({**ref, "--lam": ("0",)}),
                                "reference"), [why, "reference: lambda = 0 (no SIGReg)"]))
        refs.append((PlannedRun("final-random-init", flags_to_args({**ref, "--epochs": ("0",)}), "reference"),
                     [why, "reference: the same network untrained"]))
    return runs_out + refs


def plan_toml(planned: list[tuple[PlannedRun, list[str]]], header: str) -> str:
    """A plan file for `planned` (runs with their full arguments; the reasons as comments)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for run, why in planned:
        lines += ["", *(f"# {w}" for w in why), "[[run]]", f"name = {json.dumps(run.name)}",
                  f"axis = {json.dumps(run.axis)}", f"args = {json.dumps(list(run.args))}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("plan", type=Path, nargs="+", help="one or more plans, taken together")
    p.add_argument("--data", help="CIFAR-100 folder (to run)")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time on the one GPU")
    p.add_argument("--gpus", help="comma-separated GPU indices: one run at a time on each (instead of --parallel)")
    p.add_argument("--only", nargs="+", help="run only these names")
    p.add_argument("--time-limit-min", type=float, default=0.0, help="passed to each run (resumable stop)")
    p.add_argument("--out", default="checkpoints")
    p.add_argument("--logs", type=Path, help="folder of the runs' logs (default: <out>/logs)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    p.add_argument("--summarize", type=Path, metavar="EXPORTS",
                   help="instead of running: summarize the plan's runs exported under EXPORTS/runs into "
                        "EXPORTS/sweeps/<first plan's name>/ (sweep.csv and one CSV per objective and view set-up)")
    p.add_argument("--combine", type=Path, metavar="EXPORTS",
                   help="instead of running: write (--write) the plan of each method's best combination on validation")
    p.add_argument("--final", type=Path, metavar="EXPORTS",
                   help="instead of running: write (--write) the plan of each method's best run, once per --seeds")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3],
                   help="the final runs' seeds (not 0: the sweep ran seed 0, and its best run was picked for its score)")
    p.add_argument("--write", type=Path, help="the plan file --combine or --final writes")
    args, extra = p.parse_known_args(argv)
    try:
        runs = [run for plan in args.plan for run in read_plan(plan)]
        if len({r.name for r in runs}) != len(runs):
            raise UserError("two runs of the plans have the same name", path=args.plan[-1])
        if args.combine or args.final:
            if not args.write:
                raise UserError("--combine and --final need --write PLAN.toml")
            scores = validation_scores(runs, args.combine or args.final)
            planned = best_combinations(runs, scores) if args.combine else final_runs(runs, scores, args.seeds)
            header = (f"Written by `python -m site_builder.train.sweep {' '.join(map(str, args.plan))} "
                      f"{'--combine' if args.combine else '--final'} ...` from the validation scores of "
                      f"{len(scores)} exported runs; edit nothing here by hand.")
            write_bytes_atomic(args.write, plan_toml(planned, header).encode())
            print(f"{len(planned)} runs written to {args.write}")
            return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.summarize:
        out = args.summarize / "sweeps" / args.plan[0].stem
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
    # A slot is where a run can go: one per GPU of --gpus, or --parallel on the visible GPU.
    slots = ([{"CUDA_VISIBLE_DEVICES": g.strip()} for g in args.gpus.split(",")] if args.gpus
             else [{} for _ in range(args.parallel)])
    running: list[tuple[PlannedRun, subprocess.Popen, float, dict]] = []
    queue = list(zip(todo, commands))
    failed = 0
    while queue or running:
        while queue and len(running) < len(slots):
            run, cmd = queue.pop(0)
            slot = next(s for s in slots if all(s is not r[3] for r in running))
            logs.mkdir(parents=True, exist_ok=True)  # again before each run: someone may have removed it
            log = open(logs / f"{run.name}.log", "a")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **slot})
            running.append((run, proc, time.time(), slot))
            print(f"started {run.name}" + (f" on GPU {slot['CUDA_VISIBLE_DEVICES']}" if slot else ""), flush=True)
        time.sleep(2)
        for item in list(running):
            run, proc, started, _ = item
            if proc.poll() is not None:
                running.remove(item)
                done = (Path(args.out) / run.name / "final").exists()
                failed += proc.returncode != 0
                print(f"{run.name}: exit {proc.returncode}, {'finished' if done else 'stopped (resumable)'}, "
                      f"{time.time() - started:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
