"""Two versions of site_builder on the same corpus, interleaved: cold, one-chapter-changed and no-op builds.

    python -m benchmarks.compare /path/to/other/checkout [--reps 5] [--chapters 12]

Each repetition builds with both trees in turn (alternating which goes first), so a machine whose load
drifts affects both alike; prints medians of wall and CPU seconds (the build and its child processes:
Node, Pagefind) and the ratios this tree / the other. The other tree needs its own node_modules/.
Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import corpus
from benchmarks.build import print_table

REPO = Path(__file__).resolve().parent.parent
KINDS = ("cold", "one change", "no-op")


def timed_build(tree: Path, root: Path) -> tuple[float, float]:
    """(wall s, CPU s) of `python -m site_builder build` with `tree` on the path."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "site_builder", "build", "--root", str(root)], cwd=root,
                   env=dict(os.environ, PYTHONPATH=str(tree)), check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout of this repository (e.g. main)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--chapters", type=int, default=12)
    args = parser.parse_args()
    trees = {"this": REPO, "other": args.other.resolve()}
    with tempfile.TemporaryDirectory(prefix="site_builder-compare-") as work:
        source = corpus.write_corpus(Path(work) / "corpus", args.chapters)
        roots = {name: Path(shutil.copytree(source, Path(work) / name)) for name in trees}
        samples = {(name, kind): [] for name in trees for kind in KINDS}
        for rep in range(args.reps):
            for name in list(trees)[:: 1 if rep % 2 == 0 else -1]:
                root = roots[name]
                shutil.rmtree(root / "dist", ignore_errors=True)
                shutil.rmtree(root / ".cache", ignore_errors=True)
                samples[(name, "cold")].append(timed_build(trees[name], root))
                corpus.touch_chapter(root, 1, edit=rep)
                samples[(name, "one change")].append(timed_build(trees[name], root))
                samples[(name, "no-op")].append(timed_build(trees[name], root))
    rows = []
    for kind in KINDS:
        med = {(name, i): statistics.median(s[i] for s in samples[(name, kind)]) for name in trees for i in (0, 1)}
        rows.append([kind, f"{med[('this', 0)]:.3f}", f"{med[('other', 0)]:.3f}", f"{med[('this', 0)] / med[('other', 0)]:.2f}",
                     f"{med[('this', 1)]:.3f}", f"{med[('other', 1)]:.3f}", f"{med[('this', 1)] / med[('other', 1)]:.2f}"])
    print_table(f"This tree vs {trees['other']}: medians of {args.reps} interleaved runs ({args.chapters} chapters; "
                f"load now {' '.join(f'{x:.2f}' for x in os.getloadavg())})",
                ["build", "this wall s", "other wall s", "ratio", "this cpu s", "other cpu s", "ratio"], rows)


if __name__ == "__main__":
    main()
