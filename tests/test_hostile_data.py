"""Hostile and broken export data (issue 9): odd values and names are drawn or escaped, never executed;
broken files are one-line errors naming the chapter line and the exports file, with dist/ unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import chart_figures
from test_hostile_content import GOOD, XSS, assert_rejected, build, chapter, scan, site, write  # noqa: F401 (site: fixture)

NONFINITE = "_step,a,empty\n0,1.0,\n1,nan,\n2,inf,\n3,0.5,\n4,-inf,\n5,,\n"


chart_json = chart_figures  # each chart's figure, from the data/charts/<id>.js file the page names


def csv_link(page: Path) -> str:
    """The page's only chart-data download link."""
    (link,) = re.findall(r'<a class="download" href="(data/[^"]+\.csv)"', page.read_text(encoding="utf-8"))
    return link


def test_nan_inf_and_empty_columns(site):
    """Non-finite values are not drawn (Plotly cannot), an all-empty column is an empty trace, the JSON stays valid."""
    body = (
        "```chart\nsource: runs/n/history.csv\ny: [a, empty]\n```\n\n"
        "Max {{ runs/n/history.csv#a@max | .2f }}, last {{ runs/n/history.csv#a@last | .2f }}, "
        "first {{ runs/n/history.csv#a@first | .2f }}."
    )
    write(site, {"exports/runs/n/history.csv": NONFINITE, "content/b.md": chapter(body, "B", 2)})
    rc, _, err = build(site)
    assert rc == 0, err
    (figure,) = chart_json(site / "dist/b.html")
    a, empty = figure["traces"]
    assert (a["x"], a["y"]) == ([0.0, 3.0], [1.0, 0.5])
    assert (empty["x"], empty["y"]) == ([], [])
    text = re.sub(r"<[^>]+>", "", (site / "dist/b.html").read_text())
    assert "Max ∞, last −∞, first 1.00." in text  # max over logged values: inf was logged, NaN is skipped
    downloaded = list(csv.reader(io.StringIO((site / "dist" / csv_link(site / "dist/b.html")).read_text())))
    assert downloaded[0] == ["_step", "a", "empty"]
    assert [row[1] for row in downloaded[1:]] == ["1", "nan", "inf", "0.5", "-inf"]  # every logged value, as logged


def test_aggregate_of_a_column_with_no_logged_values(site):
    body = "Best {{ runs/n/history.csv#empty@max | .2f }}."
    write(site, {"exports/runs/n/history.csv": NONFINITE})
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "'empty'", "runs/n/history.csv", "no logged values")


def test_one_row_and_zero_row_runs(site):
    body = (
        "```chart\nsource: {one: runs/one/history.csv, zero: runs/zero/history.csv}\ny: train/loss\n```\n\n"
        "```table\nsource: runs/zero/history.csv\n```\n\n"
        "Only value {{ runs/one/history.csv#train/loss@last | .2f }}."
    )
    write(site, {
        "exports/runs/one/history.csv": "_step,train/loss\n7,0.25\n",
        "exports/runs/zero/history.csv": "_step,train/loss\n",
        "content/b.md": chapter(body, "B", 2),
    })
    rc, _, err = build(site)
    assert rc == 0, err
    (figure,) = chart_json(site / "dist/b.html")
    assert [(t["x"], t["y"]) for t in figure["traces"]] == [([7.0], [0.25]), ([], [])]
    assert ">0.25</span>" in (site / "dist/b.html").read_text()
    zero_value = "Last {{ runs/zero/history.csv#train/loss@last | .2f }}."
    assert_rejected(site, {"content/b.md": chapter(zero_value, "B", 2)}, "content/b.md:6", "runs/zero/history.csv", "no logged values")


HOSTILE_NAMES = ["a/b", "with space", 'say "hi"', "it's", "</script><script>alert(1)</script>", "ünïcode σ ∞", "<b onclick=alert(2)>x"]


def test_hostile_metric_names_are_data_everywhere(site):
    header = ["_step", *HOSTILE_NAMES]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for step in range(3):
        writer.writerow([step, *[step + i / 10 for i in range(len(HOSTILE_NAMES))]])
    ys = json.dumps(HOSTILE_NAMES)  # YAML flow sequence
    body = (
        f"```chart\nsource: runs/h/history.csv\ny: {ys}\ntitle: {json.dumps(HOSTILE_NAMES[4])}\n```\n\n"
        f"```table\nsource: runs/h/history.csv\n```\n\n"
        f"```table\nsource: runs/h/config.json\nkeys: {json.dumps(HOSTILE_NAMES)}\n```\n"
    )
    config = {name: name for name in HOSTILE_NAMES}
    write(site, {"exports/runs/h/history.csv": out.getvalue(), "exports/runs/h/config.json": json.dumps(config),
                 "content/b.md": chapter(body, "B", 2)})
    rc, _, err = build(site)
    assert rc == 0, err
    page = site / "dist/b.html"
    found = scan(page.read_text())
    assert not found.handlers
    (figure,) = chart_json(page)
    assert [t["name"] for t in figure["traces"]] == HOSTILE_NAMES
    assert figure["title"] == HOSTILE_NAMES[4]
    assert all("alert(" not in text for attrs, text in found.scripts if attrs.get("type") != "application/json")
    downloaded = list(csv.reader(io.StringIO((site / "dist" / csv_link(site / "dist/b.html")).read_text(encoding="utf-8"))))
    assert downloaded[0] == header
    text = page.read_text()
    for name in HOSTILE_NAMES:
        assert name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#x27;") in text


def test_a_column_of_strings(site):
    write(site, {"exports/runs/s/history.csv": "_step,label\n0,cat\n1,dog\n"})
    body = "```chart\nsource: runs/s/history.csv\ny: label\n```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "runs/s/history.csv")
    body = "Last {{ runs/s/history.csv#label@last | .2f }}."
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "runs/s/history.csv")


def test_a_json_column_of_strings(site):
    write(site, {"exports/runs/s/history.json": json.dumps({"columns": ["_step", "label"], "data": {"_step": [0, 1], "label": ["cat", "dog"]}})})
    body = "```chart\nsource: runs/s/history.json\ny: label\n```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "'label'", "runs/s/history.json", "not numeric")


TRUNCATED = {
    "runs/t/summary.json": ('{"final_probe/test_top1": 0.45, "final_pr', "Top-1 {{ runs/t/summary.json#final_probe/test_top1 | .1% }}."),
    "runs/t/history.json": ('{"columns": ["_step", "train/loss"], "data": {"_step": [0, 1], "train/lo',
                            "```chart\nsource: runs/t/history.json\ny: train/loss\n```"),
    "runs/t/config.json": ('{"lr": 0.1', "```table\nsource: runs/t/config.json\nkeys: [lr]\n```"),
    "figures/t/attention.json": ('{"title": "x", "panels": [{"z": [[0.1, 0.', "```chart\ntype: panels\nsource: figures/t/attention.json\n```"),
}


@pytest.mark.parametrize("rel", sorted(TRUNCATED))
def test_a_truncated_json_export(site, rel):
    data, body = TRUNCATED[rel]
    write(site, {f"exports/{rel}": data})
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", rel, "invalid JSON")


SHAPES = {
    "a column listed but missing from data": {"columns": ["_step", "train/loss"], "data": {"_step": [0, 1]}},
    "columns of different lengths": {"columns": ["_step", "train/loss"], "data": {"_step": [0, 1, 2], "train/loss": [1.0]}},
    "data that is a list": {"columns": ["_step", "train/loss"], "data": [[0, 1.0]]},
    "columns that is not a list": {"columns": "_step", "data": {"_step": [0]}},
    "a column name that is not text": {"columns": ["_step", ["train/loss"]], "data": {"_step": [0]}},
}


@pytest.mark.parametrize("what", sorted(SHAPES))
def test_a_columnar_json_of_the_wrong_shape(site, what):
    write(site, {"exports/runs/w/history.json": json.dumps(SHAPES[what])})
    body = "```chart\nsource: runs/w/history.json\ny: train/loss\n```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "runs/w/history.json")


# --- a 1 GB history.csv ----------------------------------------------------------------------------

BIG_BYTES = 1 << 30


METRICS = ["train/loss", "train/sigreg", "train/inv", "train/lr", *[f"probe/m{i}" for i in range(12)]]


def write_big_history(path: Path, target_bytes: int) -> int:
    """A history.csv of about `target_bytes`: strictly increasing _step and 16 metrics (only one is charted).

    One block of 10,000 rows is made once; each copy gets its own step prefix by a bytes replace, and
    copies are written 16 at a time, so 1 GB takes seconds (mostly the disk)."""
    rows = []
    for i in range(10_000):
        v = 2 * math.exp(-i / 3000) + 0.1 * math.sin(i * 0.7)
        rows.append(f"@@@@@{i:04d}," + ",".join(f"{v / k:.9f}" for k in range(1, len(METRICS) + 1)) + "\n")
    block = "".join(rows).encode()
    written = 0
    with open(path, "wb") as f:
        f.write(",".join(["_step", *METRICS]).encode() + b"\n")
        prefix = 0
        while written < target_bytes:
            chunk = b"".join(block.replace(b"@@@@@", b"%05d" % (prefix + k)) for k in range(16))
            f.write(chunk)
            written += len(chunk)
            prefix += 16
    return written


# Runs a command and writes its peak RSS (KiB) to a file. The command is started from this small
# process, not from pytest: a child's peak counts the memory of the process it was forked from.
LAUNCHER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(rc)"
)


def peak_rss_of(cmd: list[str], cwd: Path) -> tuple[int, float, subprocess.CompletedProcess]:
    """Run `cmd`; (its peak resident memory in bytes, seconds, result)."""
    report = cwd / "peak-rss.txt"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *cmd], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = int(report.read_text()) * 1024
    report.unlink()
    return peak, seconds, result


@pytest.mark.slow
def test_a_1gb_history_is_not_loaded_whole(tmp_path):
    """The build reads only the charted columns, in blocks: its peak memory stays well under the file size.

    17 columns of ~12 characters: the file's numbers alone, as float64, are 0.67 x its size, so a build
    that parsed it whole would pass 0.67 x; one that reads the two charted columns holds those, the
    full-data CSV it writes for download, and allocator slack. We ask the peak above the interpreter's
    own footprint to stay under 0.5 x the file size. Runs in CI: about 20-35 s on 2 cores."""
    root = write(tmp_path / "site", {
        "content/index.md": "---\ntitle: Big\n---\n\n```chart\nsource: runs/big/history.csv\ny: train/loss\n```\n",
    })
    big = root / "exports/runs/big/history.csv"
    big.parent.mkdir(parents=True)
    try:
        size = write_big_history(big, BIG_BYTES)
        python = [sys.executable, "-c"]
        baseline, _, _ = peak_rss_of([*python, "import site_builder.site.render, site_builder.charts.figures"], root)
        peak, seconds, result = peak_rss_of([sys.executable, "-m", "site_builder", "build", "--root", str(root)], root)
    finally:
        big.unlink(missing_ok=True)  # pytest keeps recent tmp folders: do not leave 1 GB behind
        shutil.rmtree(root / ".cache", ignore_errors=True)  # the chart cache holds the full-data CSV
    print(f"\n1 GB history: {size / 1e6:.0f} MB file, build {seconds:.1f} s, peak RSS {peak / 1e6:.0f} MB "
          f"(imports alone {baseline / 1e6:.0f} MB), (peak - imports) / file = {(peak - baseline) / size:.2f}")
    assert result.returncode == 0, result.stderr
    (figure,) = chart_json(root / "dist/index.html")
    assert len(figure["traces"][0]["x"]) <= 2000  # downsampled
    assert peak - baseline < 0.5 * size


BAD_PANELS = {
    "z of strings": {"panels": [{"title": "a", "z": [["x", "y"], ["z", "w"]]}]},
    "ragged z": {"panels": [{"title": "a", "z": [[1, 2], [3]]}]},
    "rgb of strings": {"panels": [{"title": "a", "rgb": [[["r", "g", "b"]]]}]},
    "rgb out of 0-255": {"panels": [{"title": "a", "rgb": [[[300, -5, 1e12]]]}]},
    "panel that is a number": {"panels": [7]},
    "panels not a list": {"panels": {"title": "a"}},
}


@pytest.mark.parametrize("what", sorted(BAD_PANELS))
def test_a_panels_file_with_bad_values(site, what):
    write(site, {"exports/figures/p/panels.json": json.dumps(BAD_PANELS[what])})
    body = "```chart\ntype: panels\nsource: figures/p/panels.json\n```"
    assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "figures/p/panels.json")


def test_panel_titles_and_frame_labels_are_data(site):
    panels = {"title": XSS, "frame_label": XSS, "panels": [
        {"title": XSS, "frame": XSS, "z": [[0.1, 0.2], [0.3, 0.4]]},
        {"title": "b", "frame": "2", "z": [[0.1, 0.2], [0.3, 0.4]]},
    ]}
    write(site, {"exports/figures/p/panels.json": json.dumps(panels),
                 "content/b.md": chapter("```chart\ntype: panels\nsource: figures/p/panels.json\n```", "B", 2)})
    rc, _, err = build(site)
    assert rc == 0, err
    found = scan((site / "dist/b.html").read_text())
    assert not found.handlers
    assert all("alert(" not in text for attrs, text in found.scripts if attrs.get("type") != "application/json")
    (figure,) = chart_json(site / "dist/b.html")
    assert figure["frames"][0]["label"] == XSS


ODD_CSVS = {
    "duplicate column names": ("_step,train/loss,train/loss\n0,1.0,2.0\n1,0.5,0.25\n", False),
    "a byte-order mark": ("\ufeff_step,train/loss\n0,1.0\n1,0.5\n", True),
    "CRLF line ends": ("_step,train/loss\r\n0,1.0\r\n1,0.5\r\n", True),
    "a ragged row": ("_step,train/loss\n0,1.0\n1,0.5,9.9\n", False),
    "a quoted newline in a name": ('_step,"train/\nloss"\n0,1.0\n', False),
}


@pytest.mark.parametrize("what", sorted(ODD_CSVS))
def test_odd_csv_files(site, what):
    """Spreadsheet quirks either read correctly (BOM, CRLF) or are one-line errors naming the file."""
    text, readable = ODD_CSVS[what]
    write(site, {"exports/runs/odd/history.csv": text})
    body = "```chart\nsource: runs/odd/history.csv\ny: train/loss\n```"
    if not readable:
        assert_rejected(site, {"content/b.md": chapter(body, "B", 2)}, "content/b.md:6", "runs/odd/history.csv")
        return
    write(site, {"content/b.md": chapter(body, "B", 2)})
    rc, _, err = build(site)
    assert rc == 0, err
    (figure,) = chart_json(site / "dist/b.html")
    assert (figure["traces"][0]["x"], figure["traces"][0]["y"]) == ([0.0, 1.0], [1.0, 0.5])
