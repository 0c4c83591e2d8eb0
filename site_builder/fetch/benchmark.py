"""Benchmark: export a 20,000-step offline run (budget: under 5 s on a 2-core machine).

    python -m site_builder.fetch.benchmark [--steps 20000] [--repeat 3]

Logs a real offline run with wandb (our training's metric set: six per-step metrics, two per-epoch
ones), then times the whole CLI, `python -m site_builder fetch RUN`, in a fresh process (start-up and
wandb's CLI included): a first export, a re-fetch of the unchanged run, and `wandb leet inspect
--json` alone (the reader's share).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 5.0
QUIET = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false"}


def make_run(root: Path, steps: int) -> Path:
    import wandb

    run = wandb.init(mode="offline", dir=root, project="bench", name="bench-run", config={"steps": steps},
                     settings=wandb.Settings(console="off", x_disable_stats=True))
    for i in range(steps):
        row = {"train/loss": 1 / (i + 1), "train/sigreg": math.exp(-i / 5000), "train/inv": 0.5 + 0.1 * math.sin(i),
               "train/infonce": 2 / (i + 2), "train/lr": 1e-3 * min(1, i / 500), "probe/train_loss": 3 / (i + 3)}
        if i % 100 == 99:
            row.update(epoch=i // 100, **{"probe/test_acc": i / steps})
        wandb.log(row, step=i)
    run.finish()
    return next((root / "wandb").glob("offline-run-*"))


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, child processes included) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(QUIET)
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        run_dir = make_run(tmp, args.steps)
        print(f"logged {args.steps} steps with wandb offline in {time.perf_counter() - start:.2f} s; "
              f".wandb file {next(run_dir.glob('*.wandb')).stat().st_size / 1e6:.1f} MB; {os.cpu_count()} cores")
        out = tmp / "runs"
        load = os.getloadavg()[0]
        fetch = [sys.executable, "-m", "site_builder", "fetch", str(run_dir), "--out", str(out)]
        inspect = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(next(run_dir.glob("*.wandb")))]
        first, again, reader = [], [], []
        for _ in range(args.repeat):
            shutil.rmtree(out, ignore_errors=True)
            first.append(timed(fetch, env))
            again.append(timed(fetch, env))
            reader.append(timed(inspect, env))
        size = sum(p.stat().st_size for p in (out / "bench-run").iterdir()) / 1e6
        print(f"load average: {load:.1f} before timing, {os.getloadavg()[0]:.1f} after (other processes share the cores)")
        for label, times in [("export (new folder)", first), ("re-fetch (unchanged)", again),
                             ("wandb leet inspect --json alone", reader)]:
            wall, cpu = min(t[0] for t in times), min(t[1] for t in times)
            print(f"{label:34s} wall best {wall:.2f} s ({wall / BUDGET_S:.0%} of the {BUDGET_S:.0f} s budget; "
                  f"runs {', '.join(f'{t[0]:.2f}' for t in times)})  cpu best {cpu:.2f} s")
        print(f"export size {size:.1f} MB (history.csv + history.json + config/summary/meta)")


if __name__ == "__main__":
    main()
