"""`python -m site_builder fetch`: wandb runs (online, or offline run files) -> exports/runs/<run>/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from site_builder.errors import UserError
from site_builder.fsutil import check_output_dir

EPILOG = """\
examples:
  python -m site_builder fetch entity/project/t5axw0jr          online (WANDB_API_KEY or `wandb login`)
  python -m site_builder fetch wandb/offline-run-20261125_101500-abc123
  python -m site_builder fetch --all-offline wandb/             every offline run under wandb/

The folder is named after the run (--name to choose). Fetching an unchanged run rewrites nothing.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "runs", nargs="*", metavar="RUN",
        help="entity/project/run_id or a run URL (online); an offline run folder or its run-*.wandb file",
    )
    parser.add_argument("--all-offline", metavar="DIR", type=Path, help="export every offline run under DIR (e.g. wandb/)")
    parser.add_argument("--name", help="folder name under exports/runs/ (one run only; default: the run's name, else its id)")
    parser.add_argument(
        "--keys", metavar="KEY,KEY", action="append",
        help="keep only these metrics, comma-separated names or glob patterns ('train/*,epoch'); _step is always kept",
    )
    parser.add_argument("--out", type=Path, default=Path("exports/runs"), help="output folder (default: exports/runs)")
    parser.add_argument(
        "--retries", type=int, default=5, metavar="N",
        help="online: retry network errors and HTTP 429/5xx N times, waiting 1, 2, 4 ... s (default: 5)",
    )
    parser.add_argument(
        "--allow-incomplete", action="store_true",
        help="export a truncated or damaged offline file up to the damage instead of stopping (noted in meta.json)",
    )


def _newest_per_name(runs: list, name_of) -> list:
    """With --all-offline, several runs may share a name (a restarted training): keep the newest of each."""
    newest: dict[str, object] = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        key = name_of(run)
        if key in newest:
            print(f"note: {newest[key].where} and {run.where} are both named {key!r}; exporting the newer one",
                  file=sys.stderr)
        newest[key] = run
    return list(newest.values())


def run(args: argparse.Namespace) -> int:
    from site_builder.fetch.export import export_run, folder_name, update_index

    if not args.runs and args.all_offline is None:
        raise UserError("name at least one run (entity/project/run_id or an offline run folder) or use --all-offline DIR")
    if args.name is not None and (len(args.runs) != 1 or args.all_offline is not None):
        raise UserError("--name names one run's folder; give exactly one RUN with it (not --all-offline)")
    keys = [k.strip() for group in args.keys or [] for k in group.split(",") if k.strip()] or None
    # With several runs, one bad run (a crashed training) does not hold back the others: each error is
    # printed, the rest are exported, and the exit code is 1. A single run's error is the usual one line.
    several = args.all_offline is not None or len(args.runs) > 1
    inputs = [Path(s) for s in args.runs if Path(s).exists()] + ([args.all_offline] if args.all_offline else [])
    check_output_dir(args.out, flag="--out", inputs=inputs, project=Path.cwd(), marker=None)
    failed = 0

    def attempt(action, *params):
        nonlocal failed
        try:
            return action(*params)
        except UserError as exc:
            if not several or args.debug:
                raise
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            return None

    runs = [attempt(_read, source, args.allow_incomplete, args.retries) for source in args.runs]
    if args.all_offline is not None:
        from site_builder.fetch.offline import find_offline_runs, read_offline_run

        found = [attempt(read_offline_run, p, args.allow_incomplete) for p in find_offline_runs(args.all_offline)]
        runs += _newest_per_name([r for r in found if r], lambda r: folder_name(r, None))

    exported = 0
    for data in filter(None, runs):
        result = attempt(export_run, data, args.out, args.name, keys)
        if data.kind == "online" and sys.stderr.isatty():
            print(file=sys.stderr)  # end the progress line
        if result is None:
            continue
        folder, written, meta = result
        exported += 1
        status = "written" if written else "unchanged"
        print(f"{data.where} -> {args.out / folder}: {meta['rows']} rows x {len(meta['columns'])} columns ({status})")
        for warning in data.warnings:
            print(f"warning: {data.where}: {warning}", file=sys.stderr)
    if exported:
        update_index(args.out)
    if failed:
        print(f"{failed} run(s) could not be exported (see the errors above)", file=sys.stderr)
    return 1 if failed else 0


def _read(source: str, allow_incomplete: bool, retries: int):
    """Offline when `source` exists on disk, else online (entity/project/run_id or a URL)."""
    path = Path(source)
    if path.exists():
        from site_builder.fetch.offline import find_run_file, read_offline_run

        return read_offline_run(find_run_file(path), allow_incomplete)
    from site_builder.fetch.online import parse_run_path, read_online_run

    run_path = parse_run_path(source)
    if run_path is None:
        raise UserError(
            f"{source!r} is neither an existing offline run (folder or .wandb file) nor entity/project/run_id"
        )
    return read_online_run(run_path, retries, progress=_progress(run_path))


def _progress(label: str):
    """Rows fetched so far, on one updating line when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None

    def show(rows: int) -> None:
        print(f"\r{label}: {rows:,} rows", end="", file=sys.stderr, flush=True)

    return show
