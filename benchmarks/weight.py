"""Page weight of a built site, per page: what headless Chromium downloads on a first visit before the
reader scrolls and after scrolling to the end (gzip KB; issue 16's goals: <= 600 and <= 1,500).

    python -m benchmarks.weight dist/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import measure
from benchmarks.build import kb, print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path, help="a built site folder")
    args = parser.parse_args()
    pages = sorted(p.name for p in args.dist.glob("*.html"))
    rows = []
    for load in measure.browser_loads(args.dist, pages):
        rows.append([load.page, kb(load.total("document")[0]), kb(load.gzip_total(before_scroll=True)), kb(load.gzip_total()),
                     sum(len(v) for v in load.by_type.values())])
    print_table(f"Page weight of {args.dist} (KB; gzip before scrolling / after scrolling to the end)",
                ["page", "HTML raw", "gz before scroll", "gz after", "files"], rows)


if __name__ == "__main__":
    main()
