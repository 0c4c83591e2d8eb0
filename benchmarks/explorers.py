"""Data size and time to first draw of the explorers (issue 15), on this project's own exports.

    python -m benchmarks.explorers [--reps 3]

Prints, per model folder under exports/explorers/, the bytes of embedding_map.json and
attention_viewer.json raw and gzipped (level 9, what a static host sends) against the issue's budgets
(1.5 MB and 1 MB gzip per model), and the atlas. Then builds the site into a temporary folder, serves it
on 127.0.0.1 and opens each page with an explorer in headless Chromium (/usr/bin/chromium): for each
explorer, the median over --reps fresh page loads of the time from the figure scrolling near to its
first complete draw (the figure's data-first-draw-ms, which includes loading its data script and,
for the embedding map, the first model's WebGL scatter). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import statistics
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {"embedding_map.json": 1.5e6, "attention_viewer.json": 1.0e6}


def sizes() -> None:
    base = ROOT / "exports" / "explorers"
    if not base.is_dir():
        print("  none yet: run `python -m site_builder analyze ... --explorers`")
        return
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if folder.name == "cifar100-test":
            tiles = sorted(folder.glob("atlas-*.jpg"))
            total = sum(t.stat().st_size for t in tiles)
            print(f"  atlas ({len(tiles)} tiles, shared): {total / 1e6:.2f} MB, {total / max(len(tiles), 1) / 1e3:.1f} KB "
                  "per tile (JPEG; fetched only for the images shown)")
            continue
        for name, budget in BUDGET.items():
            f = folder / name
            if f.exists():
                raw = f.read_bytes()
                gz = len(gzip.compress(raw, 9))
                print(f"  {folder.name:<28} {name:<22} {len(raw) / 1e3:8.0f} KB raw {gz / 1e3:7.0f} KB gzip "
                      f"= {gz / budget:.2f} x the {budget / 1e6:.1f} MB budget")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def first_draw(reps: int) -> None:
    from playwright.sync_api import sync_playwright

    from site_builder.site.build import build_site

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dist"
        build_site(ROOT, out, force=True)
        handler = functools.partial(_QuietHandler, directory=str(out))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}/"
        pages = sorted(p.name for p in out.glob("*.html") if "data-explorer=" in p.read_text())
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"], headless=True)
            for name in pages:
                times: dict[str, list[int]] = {}
                for _ in range(reps):
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    page.goto(base + name, wait_until="load")
                    for fig in page.locator("figure[data-explorer]").all():
                        fig.scroll_into_view_if_needed()
                        page.wait_for_function("f => f.dataset.firstDrawMs !== undefined", arg=fig.element_handle(), timeout=60000)
                        key = f"{fig.get_attribute('data-explorer')} #{fig.get_attribute('id')}"
                        times.setdefault(key, []).append(int(fig.get_attribute("data-first-draw-ms")))
                    page.close()
                for key, values in times.items():
                    print(f"  {name:<18} {key:<36} first draw: median {statistics.median(values):6.0f} ms "
                          f"(min {min(values)}, max {max(values)}, {len(values)} loads)")
            browser.close()
        server.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    print("explorer data per model:")
    sizes()
    print("time to first draw in headless Chromium (served over HTTP from 127.0.0.1):")
    first_draw(args.reps)


if __name__ == "__main__":
    main()
