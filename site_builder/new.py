"""`site-builder new DIR`: a minimal report that builds at once.

Copies the starter project (site_builder/starter/: site.toml, two chapters, references.bib, an image,
a templates/ README, a GitHub Pages workflow) and writes a small synthetic example run to exports/, so
that `site-builder build` in DIR works straight away. Nothing in DIR is overwritten.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from site_builder import __version__
from site_builder.errors import UserError
from site_builder.fsutil import TMP_MARK

STARTER = Path(__file__).resolve().parent / "starter"
RENAMES = {"dot-gitignore": ".gitignore", "dot-github": ".github"}  # dotfiles travel badly as package data


def example_run(steps: int = 500) -> dict[str, bytes]:
    """exports/runs/example/: a made-up, clearly labelled training curve (an exponential decay with a
    slow ripple) so the starter's chart, table and values have data to read."""
    rows = []
    for step in range(0, steps + 1, 5):
        loss = 0.15 + 2.2 * math.exp(-step / 120) + 0.04 * math.sin(step / 9)
        rows.append((step, round(loss, 5)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["_step", "loss"])
    writer.writerows(rows)
    config = {"lr": 0.001, "batch_size": 128, "steps": steps, "lambda": 0.05}
    summary = {"loss": rows[-1][1]}
    meta = {"source": "site-builder new (synthetic example data)", "fetched_with": f"site_builder {__version__}"}
    return {
        "history.csv": out.getvalue().encode(),
        "config.json": json.dumps(config, indent=2).encode() + b"\n",
        "summary.json": json.dumps(summary, indent=2).encode() + b"\n",
        "meta.json": json.dumps(meta, indent=2).encode() + b"\n",
    }


def create_project(target: Path) -> list[Path]:
    """Write the starter into `target` (which must not exist or be empty); returns the files written."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target}: already exists and is not empty; choose a new folder name")
    files: dict[Path, bytes] = {}
    for source in sorted(STARTER.rglob("*")):
        if source.is_file() and "__pycache__" not in source.parts:
            rel = Path(*(RENAMES.get(part, part) for part in source.relative_to(STARTER).parts))
            files[rel] = source.read_bytes()
    for name, data in example_run().items():
        files[Path("exports/runs/example") / name] = data
    files[Path("requirements.txt")] = (
        "# What the Pages workflow installs. site_builder is not on PyPI: point this at the repository or\n"
        "# wheel you installed it from, e.g. site-builder @ git+https://github.com/OWNER/REPO@TAG\n"
        f"site-builder=={__version__}\n"
    ).encode()
    # written beside the target and renamed into place: an interrupted `new` leaves no half project
    target.absolute().parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + TMP_MARK, dir=target.absolute().parent))
    try:
        for rel, data in files.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_bytes(data)
        os.chmod(staging, 0o755)
        if target.exists():
            target.rmdir()  # empty (checked above)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(target / rel for rel in files)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Create a new report in DIR: site.toml, two short chapters (math, a chart, a table, a "
        "cross-reference, a citation, an image), example data in exports/ and a GitHub Pages workflow. "
        "Then: cd DIR && site-builder build (or serve)."
    )
    parser.add_argument("dir", help="folder to create (must not exist, or be empty)")


def run(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    files = create_project(target)
    print(f"created {target}/ ({len(files)} files). Next: cd {target} && site-builder serve")
    return 0
