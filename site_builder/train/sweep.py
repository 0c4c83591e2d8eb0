"""Run a plan of training runs, resumably: `python -m site_builder.train.sweep PLAN.toml --data DIR`.

A plan (TOML) has `[defaults] args = [...]` given to every run and `[[run]]` tables with a `name` and
`args`. Runs whose checkpoints/<name>/final/ exists are skipped; the others start (or resume from
checkpoints/<name>/last) with `--time-limit-min`, `--parallel` at a time on the same GPU, each logging to
<out>/logs/<name>.log (inside the git-ignored checkpoint folder: a machine that mirrors the working tree
deletes untracked files elsewhere). Call it again after a time limit to continue where it stopped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from site_builder.errors import UserError


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("plan", type=Path)
    p.add_argument("--data", required=True)
    p.add_argument("--parallel", type=int, default=1, help="runs at a time on the one GPU")
    p.add_argument("--only", nargs="+", help="run only these names")
    p.add_argument("--time-limit-min", type=float, default=0.0, help="passed to each run (resumable stop)")
    p.add_argument("--out", default="checkpoints")
    p.add_argument("--logs", type=Path, help="folder of the runs' logs (default: <out>/logs)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    args, extra = p.parse_known_args(argv)
    try:
        runs = read_plan(args.plan)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    todo = [r for r in runs if (not args.only or r.name in args.only)
            and not (Path(args.out) / r.name / "final").exists()]
    logs = args.logs or Path(args.out) / "logs"
    commands = [[sys.executable, "-m", "site_builder", "train", "--name", r.name, "--data", args.data,
                 "--out", args.out, "--time-limit-min", str(args.time_limit_min), *r.args, *extra] for r in todo]
    print(f"{len(runs)} runs in the plan, {len(runs) - len(todo)} finished, {len(todo)} to run", flush=True)
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
