"""Chart / table directives and inline values: the figure JSON, the CSV download, escaping, errors."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re

import numpy as np
import pytest

from site_builder.charts.figures import MAX_POINTS, downsample
from site_builder.errors import UserError
from site_builder.site.build import build_site
from tests.conftest import chart_figures, history_csv, write_site


DOWNLOAD = r'<a class="download" href="(data/[^"]+\.csv)" download="[^"]+">'


figures_in = chart_figures


def test_downsample_keeps_extremes_and_order():
    x = np.arange(100_000, dtype=np.float64)
    y = np.sin(x / 500.0)
    y[31_337], y[77_777] = 50.0, -50.0
    xs, ys = downsample(x, y, MAX_POINTS)
    assert len(xs) <= MAX_POINTS
    assert 50.0 in ys and -50.0 in ys
    assert xs[0] == 0 and xs[-1] == 99_999
    assert np.all(np.diff(xs) > 0)
    short_x, short_y = downsample(x[:10], y[:10], MAX_POINTS)
    assert short_x.tolist() == x[:10].tolist()


def test_line_chart_json_and_full_csv(built_fixture_site):
    page = (built_fixture_site / "chapter.html").read_text()
    loss = figures_in(built_fixture_site / "chapter.html")[0]
    assert loss["type"] == "line" and loss["smoothing"] == 0.6
    names = [t["name"] for t in loss["traces"]]
    assert names == ["train/loss", "train/sigreg"]
    loss_trace, sigreg_trace = loss["traces"]
    assert len(loss_trace["x"]) <= MAX_POINTS < 3000
    assert 9.0 in loss_trace["y"]  # the spike at step 1500 survives downsampling
    assert all(isinstance(v, float) and math.isfinite(v) for v in sigreg_trace["y"])
    # the CSV beside the chart has every row, the logged NaN included
    link = re.search(DOWNLOAD, page).group(1)
    rows = list(csv.DictReader(io.StringIO((built_fixture_site / link).read_text())))
    assert len(rows) == 3000
    assert list(rows[0]) == ["_step", "train/loss", "train/sigreg"]
    assert rows[10]["train/sigreg"].lower() == "nan"
    assert float(rows[1500]["train/loss"]) == 9.0


def test_sparse_metrics_and_several_runs(built_fixture_site):
    runs = figures_in(built_fixture_site / "chapter.html")[1]
    a, b = runs["traces"]
    assert a["name"] == "A" and b["name"] == "B"  # one column: the legend names the runs
    # logged every 500 steps: 3000 steps -> 6 points, 1200 steps -> 3 points
    assert a["x"] == [0.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0]
    assert a["y"] == pytest.approx([0.1 + 0.05 * k for k in range(6)])
    assert b["x"] == [0.0, 500.0, 1000.0]
    link = re.findall(DOWNLOAD, (built_fixture_site / "chapter.html").read_text())[1]  # figure 3: figure 2 (panels) has no CSV
    rows = list(csv.reader(io.StringIO((built_fixture_site / link).read_text())))
    assert rows[0] == ["run", "_step", "probe/test_acc"]
    assert [(r[0], r[1]) for r in rows[1:]] == [("A", str(500 * k)) for k in range(6)] + [("B", str(500 * k)) for k in range(3)]


def test_panels_figure_groups_frames(built_fixture_site):
    panels = figures_in(built_fixture_site / "chapter.html")[2]
    assert panels["type"] == "panels" and panels["frame_label"] == "layer"
    assert [f["label"] for f in panels["frames"]] == ["1", "2"]
    # titles without an image name: one column, a view per title, each a sprite of both frames
    assert panels["images"] == [""] and panels["views"] == ["head 1", "PCA"]
    (row,) = panels["rows"]
    heat, image = row["views"]["head 1"], row["views"]["PCA"]
    assert heat["kind"] == "z" and heat["range"] == [[[0.1, 0.9]], [[0.1, 0.7]]]
    assert image["kind"] == "rgb" and image["cell"] == [2, 2]
    assert image["png"].startswith("data:image/png;base64,")


def test_bar_chart_over_categories(built_fixture_site):
    page = (built_fixture_site / "chapter.html").read_text()
    bar = figures_in(built_fixture_site / "chapter.html")[3]
    assert bar["type"] == "bar"
    assert bar["traces"] == [{"name": "top1", "x": ["LeJEPA", "Info, NCE"], "y": [0.41, 0.38]}]
    link = re.findall(DOWNLOAD, page)[-1]
    rows = list(csv.reader(io.StringIO((built_fixture_site / link).read_text())))
    assert rows == [["method", "top1"], ["LeJEPA", "0.41"], ["Info, NCE", "0.38"], ["not run", ""]]


def test_charts_of_the_same_data_share_one_csv(tmp_path):
    block = "```chart\nsource: runs/a/history.csv\ny: train/loss\ntitle: {}\n```\n\n"
    other = "```chart\nsource: runs/a/history.csv\ny: [train/loss, epoch]\n```\n"
    root = one_chart_site(tmp_path, block.format("First") + block.format("Second") + other)
    build_site(root)
    page = (root / "dist/index.html").read_text()
    links = re.findall(DOWNLOAD, page)
    assert len(links) == 3 and links[0] == links[1] != links[2]
    assert sorted(p.name for p in (root / "dist/data").glob("*.csv")) == sorted({links[0][5:], links[2][5:]})
    assert re.findall(r'download="([^"]+)"', page) == ["index-figure-1.csv", "index-figure-2.csv", "index-figure-3.csv"]
    header = next(csv.reader(io.StringIO((root / "dist" / links[2]).read_text())))
    assert header == ["_step", "train/loss", "epoch"]


def test_values_tables_and_pending(built_fixture_site):
    chapter = (built_fixture_site / "chapter.html").read_text()
    index = (built_fixture_site / "index.html").read_text()
    assert '<span class="value" title="runs/a/summary.json#final_probe/test_top1">45.7%</span>' in index
    assert ">35.0%</span>" in chapter  # max of 0.1 + 0.05 k, k < 6
    assert "<tr><td>model/depth</td><td class=\"num\">6</td></tr>" in chapter  # numbers right-aligned
    assert "<tr><td>model/width</td><td class=\"num\">192</td></tr>" in chapter
    assert '<span class="figure-number">Table 1.1</span>' in chapter
    assert 'class="pending-box"' in chapter and "exports/runs/not-yet/history.csv" in chapter
    assert '<a class="xref" href="chapter.html#fig:loss">Figure 1.1</a>' in index


def test_pending_source_is_a_warning_not_an_error(fixture_site):
    result = build_site(fixture_site)
    assert result.warnings == ["content/chapter.md:39: pending: exports/runs/not-yet/history.csv does not exist yet"]


def one_chart_site(tmp_path, block: str, files: dict | None = None):
    site = {"content/index.md": f"---\ntitle: Home\n---\n\n{block}\n", "exports/runs/a/history.csv": history_csv(20)}
    site.update(files or {})
    return write_site(tmp_path / "site", site)


def test_missing_column_lists_the_columns_that_exist(tmp_path):
    root = one_chart_site(tmp_path, "```chart\nsource: runs/a/history.csv\ny: [train/los]\n```")
    with pytest.raises(UserError) as err:
        build_site(root)
    message = str(err.value)
    assert message.startswith("content/index.md:5: column 'train/los' is not in runs/a/history.csv. Did you mean 'train/loss'?")
    assert message.endswith("Columns there: _step, epoch, probe/test_acc, train/loss, train/sigreg")


def test_chart_typos_are_errors(tmp_path):
    root = one_chart_site(tmp_path / "a", "```chart\nsource: runs/a/history.csv\ny: train/loss\nsmoothin: 0.5\n```")
    with pytest.raises(UserError, match=r"content/index.md:5: chart: unknown key 'smoothin'. Did you mean 'smoothing'\?"):
        build_site(root)
    root = one_chart_site(tmp_path / "b", "```chart\nsource: runs/a/history.csv\ny: [a, b\n```")
    with pytest.raises(UserError, match=r"content/index.md:\d+: chart block: invalid YAML"):
        build_site(root)
    root = one_chart_site(tmp_path / "h", "```chart\nsource: runs/a/history.csv\ny: train/loss\nheight: tall\n```")
    with pytest.raises(UserError, match=r"content/index.md:5: chart: height must be a whole number of pixels"):
        build_site(root)
    root = one_chart_site(tmp_path / "x", "```chart\nsource: runs/a/history.csv\nx: 5\ny: train/loss\n```")
    with pytest.raises(UserError, match=r"content/index.md:5: chart: 'x' must be a column name, got 5"):
        build_site(root)
    root = one_chart_site(tmp_path / "k", "```table\nsource: runs/a/config.json\nkeys: 5\n```", {"exports/runs/a/config.json": "{}"})
    with pytest.raises(UserError, match=r"content/index.md:5: table: 'keys' must be a list"):
        build_site(root)
    root = one_chart_site(tmp_path / "c", "```chart\nsource: ../../etc/passwd\ny: x\n```")
    with pytest.raises(UserError, match="must be a path inside exports/"):
        build_site(root)


def test_data_values_are_escaped(tmp_path):
    evil = 'x</script><img src=x onerror=alert(1)>"é'
    history = f'_step,"{evil.replace(chr(34), chr(34) * 2)}"\n0,1.0\n1,2.0\n'
    root = one_chart_site(
        tmp_path,
        f"```chart\nsource: runs/a/evil.csv\ny: '{evil}'\n```\n\n```table\nsource: runs/a/evil.csv\n```\n",
        {"exports/runs/a/evil.csv": history},
    )
    build_site(root)
    page = (root / "dist" / "index.html").read_text()
    assert "<img src=x" not in page
    assert page.count("</script>") == page.count("<script")
    assert figures_in(root / "dist" / "index.html")[0]["traces"][0]["name"] == evil
    assert f"<th class=\"num\">{html.escape(evil)}</th>" in page  # a column of numbers


def test_inline_value_errors(tmp_path):
    summary = {"exports/runs/a/summary.json": json.dumps({"final_probe/test_top1": 0.5, "final_probe/test_top5": 0.8})}
    root = one_chart_site(tmp_path / "a", "{{ runs/a/summary.json#final_probe/top1 | .1% }}", summary)
    with pytest.raises(UserError, match=r"key 'final_probe/top1' is not in runs/a/summary.json.*Keys there: final_probe/test_top1, final_probe/test_top5"):
        build_site(root)
    root = one_chart_site(tmp_path / "b", "{{ runs/a/history.csv#train/loss | .2f }}")
    with pytest.raises(UserError, match=r"content/index.md:5: a history column needs an aggregate: train/loss@last"):
        build_site(root)
    root = one_chart_site(tmp_path / "c", "last {{ runs/a/history.csv#epoch@last | d }} first {{ runs/a/history.csv#train/loss@first | .3f }}")
    build_site(root)
    page = (root / "dist" / "index.html").read_text()
    assert ">0</span>" in page  # epoch logged only at step 0 in a 20-step history
    assert ">2.000</span>" in page  # 2 * exp(0) + 0.1 * sin(0)


def test_chart_cache_skips_unchanged_sources_and_follows_changed_ones(fixture_site, monkeypatch):
    from site_builder.charts import cache

    calls = []
    real = cache.build_chart
    monkeypatch.setattr(cache, "build_chart", lambda spec, exports: calls.append(spec["source"]) or real(spec, exports))
    build_site(fixture_site)
    assert len(calls) == 5  # four drawable charts + the pending one
    calls.clear()
    chapter = fixture_site / "content/chapter.md"  # the page with the charts is rendered again
    chapter.write_text(chapter.read_text() + "\nMore prose.\n")
    build_site(fixture_site)
    assert calls == ["runs/not-yet/history.csv"]  # only the pending chart is looked at again
    calls.clear()
    (fixture_site / "exports/runs/b/history.csv").write_text(history_csv(600))
    build_site(fixture_site)
    assert calls == ["runs/not-yet/history.csv", {"A": "runs/a/history.csv", "B": "runs/b/history.csv"}]
    runs = figures_in(fixture_site / "dist/chapter.html")[1]
    assert runs["traces"][1]["x"] == [0.0, 500.0]


def test_values_from_columnar_json_and_keys_with_at_signs(tmp_path):
    files = {
        "exports/runs/a/history.json": json.dumps({"columns": ["_step", "acc"], "data": {"_step": [0, 1, 2], "acc": [0.2, None, "NaN"]}}),
        "exports/runs/a/summary.json": json.dumps({"probe@epoch10": 0.25}),
    }
    block = "{{ runs/a/history.json#acc@last | .2f }} {{ runs/a/history.json#acc@max | .2f }} {{ runs/a/summary.json#probe@epoch10 | .0% }}"
    root = one_chart_site(tmp_path, block, files)
    build_site(root)
    page = (root / "dist" / "index.html").read_text()
    values = re.findall(r'<span class="value"[^>]*>([^<]*)</span>', page)
    assert values == ["NaN", "0.20", "25%"]


def test_a_difference_of_fractions_prints_in_percentage_points(tmp_path):
    files = {"exports/runs/a/summary.json": json.dumps({"gap": -0.04617, "up": 0.0112})}
    root = one_chart_site(tmp_path, "{{ runs/a/summary.json#gap | .1pp }} and {{ runs/a/summary.json#up | +.2pp }}", files)
    build_site(root)
    values = re.findall(r'<span class="value"[^>]*>([^<]*)</span>', (root / "dist" / "index.html").read_text())
    assert values == ["-4.6 points", "+1.12 points"]


def test_tables_take_labels_and_per_row_formats(tmp_path):
    summary = {"exports/runs/a/summary.json": json.dumps({"final_probe/test_top1": 0.5667, "train/wall_s": 1234.5})}
    block = (
        "```table\nsource: {A: runs/a/summary.json}\nkeys: [final_probe/test_top1, train/wall_s]\n"
        "labels: {key: metric, final_probe/test_top1: top-1 accuracy}\nformats: {final_probe/test_top1: .1%, train/wall_s: ',.0f'}\n```\n"
    )
    build_site(one_chart_site(tmp_path, block, summary))
    page = (tmp_path / "site/dist/index.html").read_text()
    # the values column is numeric: right-aligned (class "num"), the key column is not
    assert '<thead><tr><th>metric</th><th class="num">A</th></tr></thead>' in page
    assert '<tr><td>top-1 accuracy</td><td class="num">56.7%</td></tr>' in page
    assert '<tr><td>train/wall_s</td><td class="num">1,234</td></tr>' in page  # no label: the key itself


def test_table_labels_must_name_rows_or_columns_that_exist(tmp_path):
    block = "```table\nsource: runs/a/history.csv\ncolumns: [_step, train/loss]\nlabels: {train/los: loss}\n```\n"
    with pytest.raises(UserError, match=r"labels/formats name 'train/los'.*_step, train/loss"):
        build_site(one_chart_site(tmp_path, block))


def test_charts_without_axis_titles_are_warned_about(tmp_path):
    block = (
        "```chart\nsource: runs/a/history.csv\ny: train/loss\n```\n\n"
        "```chart\nsource: runs/a/history.csv\ny: train/loss\nx_title: training step\ny_title: loss\n```\n\n"
        "```chart\nsource: runs/a/history.csv\ny: train/loss\nx_title: training step\n```\n"
    )
    result = build_site(one_chart_site(tmp_path, block))
    titles = [w for w in result.warnings if "axis" in w]
    assert titles == [
        "content/index.md:5: chart has no x_title or y_title: name each axis in words with its unit "
        "(e.g. x_title: 'training step', y_title: 'test accuracy (%)'), not by its metric key",
        "content/index.md:17: chart has no y_title: name each axis in words with its unit "
        "(e.g. x_title: 'training step', y_title: 'test accuracy (%)'), not by its metric key",
    ]


def test_legend_names_replace_column_keys(tmp_path):
    block = "```chart\nsource: runs/a/history.csv\ny: [train/loss, train/sigreg]\nnames: {train/loss: loss}\nx_title: step\ny_title: value\n```\n"
    build_site(one_chart_site(tmp_path, block))
    (figure,) = figures_in(tmp_path / "site/dist/index.html")
    assert [t["name"] for t in figure["traces"]] == ["loss", "train/sigreg"]


BAND_CURVES = {  # final_curves-like files: epoch 3 has a mean but no drawable band, epoch 4 an infinite bound
    "exports/curves/a.csv": "epoch,val_acc_mean,val_acc_min,val_acc_max\n1,0.2,0.1,0.3\n2,0.3,0.2,0.4\n3,0.35,,\n4,0.5,0.45,inf\n",
    "exports/curves/b.csv": "epoch,val_acc_mean,val_acc_min,val_acc_max\n1,0.5,0.5,0.6\n",
}


def test_a_band_is_drawn_from_two_columns_and_kept_in_the_csv(tmp_path):
    block = ("```chart\nsource: {A: curves/a.csv, B: curves/b.csv}\nx: epoch\ny: [val_acc_mean, val_acc_min]\n"
             "band: {val_acc_mean: [val_acc_min, val_acc_max]}\nx_title: epoch\ny_title: accuracy\n```\n")
    root = one_chart_site(tmp_path, block, BAND_CURVES)
    build_site(root)
    (figure,) = figures_in(root / "dist/index.html")
    a_mean, a_min, b_mean, b_min = figure["traces"]
    assert a_mean["x"] == [1.0, 2.0, 3.0, 4.0] and a_mean["band"] == {"x": [1.0, 2.0], "lo": [0.1, 0.2], "hi": [0.3, 0.4]}
    assert b_mean["band"] == {"x": [1.0], "lo": [0.5], "hi": [0.6]}
    assert "band" not in a_min and "band" not in b_min  # only the series the band belongs to
    link = re.search(DOWNLOAD, (root / "dist/index.html").read_text()).group(1)
    rows = list(csv.reader(io.StringIO((root / "dist" / link).read_text())))
    assert rows[0] == ["run", "epoch", "val_acc_mean", "val_acc_min", "val_acc_max"]
    assert rows[3] == ["A", "3", "0.35", "", ""] and rows[4] == ["A", "4", "0.5", "0.45", "inf"] and len(rows) == 6


def test_a_band_over_a_long_history_keeps_both_envelopes_extremes(tmp_path):
    block = "```chart\nsource: runs/a/history.csv\ny: train/sigreg\nband: {train/sigreg: [train/sigreg, train/loss]}\n```\n"
    root = one_chart_site(tmp_path, block, {"exports/runs/a/history.csv": history_csv(3000)})
    build_site(root)
    (figure,) = figures_in(root / "dist/index.html")
    band = figure["traces"][0]["band"]
    assert MAX_POINTS < len(band["x"]) <= 2 * MAX_POINTS and band["x"] == sorted(set(band["x"]))
    assert 9.0 in band["hi"] and band["hi"][band["x"].index(1500.0)] == 9.0  # the loss spike at step 1500
    assert 10.0 not in band["x"]  # the low bound is nan there: no band at step 10
    assert len(band["lo"]) == len(band["hi"]) == len(band["x"])


@pytest.mark.parametrize("band,message", [
    ("{val_acc_mean: [val_acc_mn, val_acc_max]}", r"content/index.md:5: column 'val_acc_mn' is not in curves/a.csv. Did you mean 'val_acc_min'\?"),
    ("{val_acc_max: [val_acc_min, val_acc_max]}", r"content/index.md:5: chart: 'band' names 'val_acc_max', which is not one of the chart's y columns: val_acc_mean"),
    ("{val_acc_mean: val_acc_min}", r"content/index.md:5: chart: 'band' must be a mapping \{y column: \[low column, high column\]\}"),
    ("[val_acc_min, val_acc_max]", r"content/index.md:5: chart: 'band' must be a mapping"),
])
def test_band_mistakes_are_one_line_errors(band, message, tmp_path):
    block = f"```chart\nsource: curves/a.csv\nx: epoch\ny: val_acc_mean\nband: {band}\n```\n"
    with pytest.raises(UserError, match=message) as err:
        build_site(one_chart_site(tmp_path, block, BAND_CURVES))
    assert "\n" not in str(err.value)


def test_a_band_on_a_bar_chart_is_an_error(tmp_path):
    block = "```chart\ntype: bar\nsource: curves/a.csv\nx: epoch\ny: val_acc_mean\nband: {val_acc_mean: [val_acc_min, val_acc_max]}\n```\n"
    with pytest.raises(UserError, match=r"content/index.md:5: chart: 'band' is for line and scatter charts, not type 'bar'"):
        build_site(one_chart_site(tmp_path, block, BAND_CURVES))
