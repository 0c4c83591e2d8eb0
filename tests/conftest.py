"""Shared fixtures: small fixture sites written into tmp folders (never the real content/).

`write_site(root, files)` writes {relative path: text}; `fixture_site` is a two-page site with math,
cross-references, a footnote, a callout, a table, inline values, two line charts (one far down the page,
to test lazy drawing), a panels chart and a pending chart, over a history in the README's format.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
from pathlib import Path

# Triton kernels (train/packed_attention.py) run in Triton's interpreter, on the CPU: set before the first
# import of triton, which decides at each kernel's definition.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

N_STEPS = 3000  # > 2,000 so line traces are downsampled


def history_csv(n_steps: int = N_STEPS, metric: str = "train/loss") -> str:
    """A history.csv in the README's format: `_step` first, sparse per-epoch columns, one logged NaN."""
    rows = [f"_step,epoch,probe/test_acc,{metric},train/sigreg"]
    for step in range(n_steps):
        epoch = acc = ""
        if step % 500 == 0:
            epoch, acc = str(step // 500), repr(0.1 + 0.05 * (step // 500))
        loss = 2 * math.exp(-step / 800) + 0.1 * math.sin(step * 0.7)
        if step == 1500:
            loss = 9.0  # a spike that downsampling must keep
        sigreg = "nan" if step == 10 else repr(0.5 + 0.3 * math.cos(step * 0.05))
        rows.append(f"{step},{epoch},{acc},{loss!r},{sigreg}")
    return "\n".join(rows) + "\n"


def panels_json() -> str:
    panels = [
        {"title": "head 1", "frame": "1", "z": [[0.1, 0.9], [0.5, 0.2]]},
        {"title": "PCA", "frame": "1", "rgb": [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [9, 9, 9]]]},
        {"title": "head 1", "frame": "2", "z": [[0.3, 0.3], [0.1, 0.7]]},
        {"title": "PCA", "frame": "2", "rgb": [[[0, 0, 0], [255, 255, 255]], [[1, 2, 3], [4, 5, 6]]]},
    ]
    return json.dumps({"title": "Attention", "frame_label": "layer", "panels": panels})


FILLER = "\n\n".join(f"Paragraph {i} of filler text that pushes the next figure far below the fold." for i in range(80))

FIXTURE_FILES = {
    "site.toml": 'title = "Fixture report"\n',
    "content/index.md": """---
title: Home
summary: The fixture home page.
---

Welcome. Read [the chapter](chapter.md#the-loss), see \\eqref{eq:sigreg} and \\ref{fig:loss}.
Final top-1: {{ runs/a/summary.json#final_probe/test_top1 | .1% }}.
""",
    "content/chapter.md": f"""---
title: The chapter
order: 1
summary: Math, charts and tables.
---

## The loss

Inline $\\lambda \\in [0, 1]$ and a numbered formula:

$$
\\mathcal{{L}} = \\lambda\\,\\mathrm{{SIGReg}} + (1-\\lambda)\\,\\mathcal{{L}}_\\text{{inv}} \\label{{eq:sigreg}}
$$

As \\eqref{{eq:sigreg}} shows, with a best probe accuracy of {{{{ runs/a/history.csv#probe/test_acc@max | .1% }}}}.[^1]

::: note Read this
A callout with $x^2$.
:::

```chart
id: fig:loss
source: runs/a/history.csv
y: [train/loss, train/sigreg]
title: Training loss
x_title: training step
y_title: loss
caption: See \\ref{{tbl:hparams}}.
smoothing: 0.6
```

```table
id: tbl:hparams
source: runs/a/config.json
keys: [model/depth, model/width]
caption: Hyper-parameters.
```

```chart
id: fig:pending
source: runs/not-yet/history.csv
y: train/loss
title: Not yet
x_title: training step
y_title: loss
```

## Far below

{FILLER}

```chart
id: fig:runs
source: {{A: runs/a/history.csv, B: runs/b/history.csv}}
x: _step
y: probe/test_acc
title: Probe accuracy of two runs
x_title: training step
y_title: test accuracy (fraction)
```

```chart
id: fig:attention
type: panels
source: figures/a/attention.json
title: Attention maps
```

```chart
id: fig:probe
type: bar
source: figures/a/probe.csv
x: method
y: top1
title: Probe accuracy by method
x_title: method
y_title: top-1 accuracy (fraction)
```

[^1]: A footnote.
""",
    "exports/runs/a/history.csv": history_csv(),
    "exports/runs/b/history.csv": history_csv(1200),
    "exports/runs/a/summary.json": json.dumps({"final_probe/test_top1": 0.4567, "final_probe/test_top5": 0.75}),
    "exports/runs/a/config.json": json.dumps({"model/depth": 6, "model/width": 192}),
    "exports/figures/a/attention.json": panels_json(),
    "exports/figures/a/probe.csv": 'method,top1\nLeJEPA,0.41\n"Info, NCE",0.38\nnot run,\n',
}


def sigint_as_in_a_terminal() -> None:
    """`preexec_fn` of a command that a test stops with Ctrl-C (SIGINT): its default action back, as in a
    terminal. A shell starts a background job with SIGINT ignored, every process under it inherits that, and
    Python then never raises KeyboardInterrupt: run that way, the test would wait for a build that ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_site(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def fixture_site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site", FIXTURE_FILES)


@pytest.fixture(scope="session")
def built_fixture_site(tmp_path_factory) -> Path:
    """The fixture site built once per test session; returns its dist/ (treat it as read-only)."""
    from site_builder.site.build import build_site

    root = write_site(tmp_path_factory.mktemp("built") / "site", FIXTURE_FILES)
    build_site(root)
    return root / "dist"


CHART_SCRIPT_RE = re.compile(rb'siteChartData\("([0-9a-f]{16})", (.*)\);\n', re.S)


def chart_figures(page: Path) -> list[dict]:
    """The figure of each chart on a built page, in page order, read from the data/charts/<id>.js it names
    (a script that hands siteChartData its id and the figure as JSON, and does nothing else)."""
    out = []
    for chart_id, src in re.findall(r'data-chart="([0-9a-f]+)" data-src="([^"]+)"', page.read_text(encoding="utf-8")):
        match = CHART_SCRIPT_RE.fullmatch((page.parent / src).read_bytes())
        assert match and match.group(1).decode() == chart_id, src
        out.append(json.loads(match.group(2)))
    return out
