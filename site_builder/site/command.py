"""`python -m site_builder build`: content/ + exports/ + templates/ -> dist/."""

from __future__ import annotations

import argparse
import sys

from site_builder.site.build import build_site


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build the static site: chapters from content/*.md, data from exports/, layout from templates/, "
        "settings from site.toml. dist/ is replaced only when the build succeeds; a build whose inputs "
        "have not changed does nothing."
    )
    parser.add_argument("--root", default=".", help="project folder holding content/, exports/, site.toml (default: .)")
    parser.add_argument("--out", default=None, help="output folder (default: ROOT/dist)")
    parser.add_argument(
        "--base-url",
        default=None,
        help="where the site will be published, e.g. /lejepa-report/ (default: site.toml's base_url). "
        "Links in pages are relative either way; this only fills metadata that must be absolute.",
    )
    parser.add_argument("--force", action="store_true", help="rebuild and render every page again even if nothing changed")
    parser.add_argument("--jobs", type=int, default=None, help="Node processes rendering new formulas when there are many (default: one per core but one)")


def run(args: argparse.Namespace) -> int:
    result = build_site(args.root, args.out, base_url=args.base_url, force=args.force, jobs=max(1, args.jobs) if args.jobs else None)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.summary())
    return 0
