"""Synthetic but realistic site: N chapters of ~2,000 words and 6 runs of 20,000 logged steps.

The chapters use every feature of the README's chapter syntax that costs build time: inline and display
math (aligned, matrices, \\operatorname, \\mathbb, \\label / \\eqref), pipe tables, fenced code,
footnotes, cross-chapter links with anchors, callouts, data values in prose, data tables and charts.
Formulas vary from chapter to chapter (random indices and constants), so a formula cache only helps
where a real site would repeat itself. Everything is seeded: the same N gives the same bytes.

Chapters with an even number carry charts; odd ones have none, so page weight can be compared with and
without charts.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import orjson

from site_builder.fsutil import json_bytes

RUNS = [f"bench-lejepa-{i}" for i in (1, 2, 3)] + [f"bench-infonce-{i}" for i in (1, 2, 3)]
STEPS = 20_000
EPOCH_EVERY = 200  # sparse metrics (epoch, probe/test_acc) are logged once per "epoch"
WORDS_PER_CHAPTER = 2_000

VOCAB = (
    "the a of to and in is that for with as by on from this we an are be which model embedding "
    "embeddings projection projections isotropic gaussian distribution collapse loss invariance views "
    "view encoder predictor representation representations statistic test directions slices batch "
    "training step steps learning rate probe linear accuracy downstream features covariance spectrum "
    "eigenvalue eigenvalues dimension dimensions augmentation augmentations crop crops teacher student "
    "stop gradient heuristic heuristics objective regularizer penalty characteristic function knots "
    "quadrature weight weights sample samples empirical estimate estimator bias variance stable "
    "unstable scale scaling width depth patch patches token tokens attention head heads layer layers "
    "transformer vision images image dataset labels supervised self-supervised pretraining "
    "hyperparameter sweep schedule warmup cosine decay optimizer momentum norm normalization whitening "
    "marginal marginals univariate multivariate random uniform sphere unit vector matrix mean "
    "expectation moment moments tail tails curve curves run runs seed seeds plateau gap measured "
    "observed shows suggests implies because therefore however while although unlike similar simple "
    "cheap fast slow small large memory compute cost linear quadratic time per epoch final best worst"
).split()

HEADINGS = (
    "Setup and notation", "The invariance term", "Why embeddings collapse", "Random projections",
    "The Epps Pulley statistic", "Choosing the knots", "Isotropic Gaussian targets", "Batch size effects",
    "Learning rate and warmup", "Linear probe protocol", "What the spectrum shows", "Attention maps",
    "Comparison with InfoNCE", "Cost per step", "Failure modes", "Open questions",
)

METRICS_SPARSE = ["epoch", "probe/test_acc"]


def slugify(title: str) -> str:
    """Heading anchor as markdown-it's anchors plugin and MkDocs' toc both make it for plain ASCII text."""
    return "-".join(title.lower().split())


def chapter_slug(i: int) -> str:
    return f"ch-{i:04d}"


# ---------------------------------------------------------------------------------------------- runs


def _run_history(rng: np.random.Generator, infonce: bool) -> dict[str, np.ndarray]:
    steps = np.arange(STEPS)
    t = steps / STEPS
    noise = lambda scale: rng.normal(0.0, scale, STEPS)  # noqa: E731
    lr = np.where(steps < 1000, steps / 1000, 0.5 * (1 + np.cos(np.pi * (steps - 1000) / (STEPS - 1000)))) * 5e-4
    inv = 0.9 * np.exp(-4 * t) + 0.05 + noise(0.02)
    sigreg = 2.5 * np.exp(-6 * t) + 0.1 + np.abs(noise(0.05))
    infonce_loss = 6.0 * np.exp(-3 * t) + 1.2 + noise(0.08)
    loss = (infonce_loss if infonce else 0.95 * inv + 0.05 * sigreg) + noise(0.01)
    acc = 0.45 * (1 - np.exp(-5 * t)) + 0.01 + noise(0.004)
    # each run logs only its own objective's terms, like the real LeJEPA and InfoNCE runs
    objective = {"train/infonce": infonce_loss} if infonce else {"train/sigreg": sigreg}
    return {
        "_step": steps,
        "train/lr": lr,
        "train/inv": inv,
        **objective,
        "train/loss": loss,
        "probe/train_loss": 4.6 * np.exp(-2 * t) + 1.0 + noise(0.05),
        "probe/test_acc": acc,
        "epoch": steps // EPOCH_EVERY,
    }


def _cell(value: float, logged: bool) -> str:
    if not logged:
        return ""
    if np.isnan(value):
        return "nan"
    return f"{value:.6g}"


def write_runs(root: Path, seed: int = 0) -> None:
    """exports/runs/<run>/ for each of the 6 runs, in the README's contract (CSV + columnar JSON + meta)."""
    runs_dir = root / "exports" / "runs"
    index = []
    for k, run in enumerate(RUNS):
        rng = np.random.default_rng(seed * 100 + k)
        cols = _run_history(rng, infonce=run.startswith("bench-infonce"))
        columns = ["_step"] + sorted(c for c in cols if c != "_step")
        sparse_rows = (cols["_step"] + 1) % EPOCH_EVERY == 0
        lines = [",".join(columns)]
        json_data: dict[str, list] = {c: [] for c in columns}
        for r in range(STEPS):
            row = []
            for c in columns:
                logged = c not in METRICS_SPARSE or bool(sparse_rows[r])
                v = cols[c][r]
                if c in ("_step", "epoch"):
                    row.append(str(int(v)) if logged else "")
                    json_data[c].append(int(v) if logged else None)
                else:
                    row.append(_cell(float(v), logged))
                    json_data[c].append(
                        None if not logged else ("NaN" if np.isnan(v) else float(row[-1]))
                    )
            lines.append(",".join(row))
        out = runs_dir / run
        out.mkdir(parents=True, exist_ok=True)
        csv_bytes = ("\n".join(lines) + "\n").encode()
        (out / "history.csv").write_bytes(csv_bytes)
        (out / "history.json").write_bytes(orjson.dumps({"columns": columns, "data": json_data}))
        config = {"model/depth": 6, "model/width": 192, "train/batch_size": 256, "train/lr": 5e-4,
                  "sigreg/lambda": 0.05, "sigreg/slices": 1024, "seed": k}
        (out / "config.json").write_bytes(json_bytes(config))
        acc = [a for a, keep in zip(cols["probe/test_acc"], sparse_rows) if keep]
        summary = {"final_probe/test_top1": float(acc[-1]), "final_probe/test_top5": float(min(1, acc[-1] * 1.9))}
        (out / "summary.json").write_bytes(json_bytes(summary))
        # README's meta.json shape; source_kind says plainly that no wandb run is behind these numbers
        meta = {"source": "benchmarks/corpus.py", "source_kind": "synthetic", "run_id": run, "run_name": run,
                "state": "finished", "start_time": None, "rows": STEPS, "columns": columns,
                "sha256": {"history.csv": hashlib.sha256(csv_bytes).hexdigest()}}
        (out / "meta.json").write_bytes(json_bytes(meta))
        index.append({k: meta[k] for k in ("run_name", "run_id", "source", "state", "start_time", "rows", "columns")}
                     | {"name": run})
    index.sort(key=lambda r: r["name"])
    (runs_dir / "index.json").write_bytes(json_bytes({"runs": index}))


# ---------------------------------------------------------------------------------------------- math


def _inline_formula(rng: random.Random) -> str:
    i, j = rng.choice("ijkmn"), rng.choice("pqrst")
    a, b = rng.randint(2, 64), round(rng.uniform(0.01, 0.99), 2)
    return rng.choice([
        f"\\lambda = {b}",
        f"z_{{{i}}} \\in \\mathbb{{R}}^{{{a}}}",
        f"\\operatorname{{SIGReg}}(Z_{{{i}}})",
        f"\\|f_\\theta(x_{{{i}}}) - f_\\theta(x_{{{j}}})\\|_2^2",
        f"\\mathbb{{E}}[z_{{{i}}} z_{{{j}}}^\\top] = I_{{{a}}}",
        f"\\mathcal{{N}}(0, {b} I)",
        f"M = {a}",
        f"t_{{{i}}} \\in [-{a % 7 + 1}, {a % 7 + 1}]",
        f"\\operatorname{{tr}}(\\Sigma_{{{i}}}) \\approx {a}",
        f"O(N^{{{i}}} {a})",
    ])


def _display_formula(rng: random.Random, label: str | None) -> str:
    i, j = rng.choice("ijkmn"), rng.choice("pqrst")
    a, b, c = rng.randint(2, 1024), round(rng.uniform(0.01, 0.99), 3), rng.randint(2, 17)
    lab = f"\\label{{{label}}}\n" if label else ""
    body = rng.choice([
        f"\\begin{{aligned}}\n\\mathcal{{L}} &= (1 - \\lambda)\\,\\mathcal{{L}}_{{\\text{{inv}}}} + \\lambda\\,"
        f"\\operatorname{{SIGReg}}(Z) \\\\\n\\mathcal{{L}}_{{\\text{{inv}}}} &= \\frac{{1}}{{{c}}}\\sum_{{{i}=1}}^{{{c}}}"
        f" \\|z_{{{i}}} - \\bar z\\|_2^2, \\qquad \\lambda = {b}\n\\end{{aligned}}",
        f"\\operatorname{{EP}}(u) = {a} \\int_{{-\\infty}}^{{\\infty}} \\bigl| \\hat\\varphi_{{{j}}}(t) - "
        f"e^{{-t^2/2}} \\bigr|^2 w(t)\\, \\mathrm{{d}}t",
        f"\\Sigma_{{{i}}} = \\begin{{pmatrix}} \\sigma_{{11}} & {b} & \\cdots \\\\ {b} & \\sigma_{{22}} & \\cdots "
        f"\\\\ \\vdots & \\vdots & \\ddots \\end{{pmatrix}} \\in \\mathbb{{R}}^{{{a} \\times {a}}}",
        f"\\begin{{aligned}}\n\\hat\\varphi(t) &= \\frac{{1}}{{N}} \\sum_{{n=1}}^{{N}} e^{{i t \\langle a_{{{j}}}, "
        f"z_n \\rangle}} \\\\\n&\\approx \\mathbb{{E}}_{{z}}\\left[ e^{{i t u}} \\right], \\quad t \\in [{-c}, {c}]\n"
        f"\\end{{aligned}}",
        f"W_{{{i}}} = \\begin{{bmatrix}} w_{{11}} & w_{{12}} \\\\ w_{{21}} & w_{{22}} \\end{{bmatrix}}, \\qquad "
        f"\\det W_{{{i}}} = {b}",
        f"\\operatorname{{acc}}@{c} = \\frac{{1}}{{{a}}} \\sum_{{{i}=1}}^{{{a}}} \\mathbb{{1}}"
        f"\\left[ y_{{{i}}} \\in \\operatorname{{top}}_{{{c}}}(W h_{{{i}}}) \\right]",
        f"f(x) = \\begin{{cases}} {b} x & x < {c} \\\\ x^2 / {a} & \\text{{otherwise}} \\end{{cases}}",
    ])
    return f"$$\n{lab}{body}\n$$"


# ---------------------------------------------------------------------------------------------- chapters


def _sentence(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(VOCAB) for _ in range(n_words)]
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


CODE_SNIPPETS = [
    "def sigreg(z, directions, knots):\n    proj = z @ directions\n    phi = torch.exp(1j * proj[..., None] * knots)"
    ".mean(0)\n    target = torch.exp(-0.5 * knots ** 2)\n    return ((phi - target).abs() ** 2 @ weights).mean()\n",
    "for step, (views, _) in enumerate(loader):\n    z = encoder(views.flatten(0, 1))\n    loss = (1 - lam) * inv(z)"
    " + lam * sigreg(z)\n    loss.backward()\n    opt.step(); opt.zero_grad(set_to_none=True)\n",
    "@dataclass\nclass Config:\n    depth: int = 6\n    width: int = 192\n    lr: float = 5e-4\n    slices: int = 1024\n",
]


def _chart_block(rng: random.Random, ident: str, kind: int) -> str:
    if kind == 0:
        source = "\n".join(f"  {run}: runs/{run}/history.csv" for run in RUNS)
        return (f"```chart\nid: {ident}\nsource:\n{source}\nx: _step\ny: [train/loss]\n"
                f"title: Training loss, six runs\ncaption: {_sentence(rng, 12)}\nsmoothing: 0.6\nlog_y: true\n```")
    if kind == 1:
        source = "\n".join(f"  {run}: runs/{run}/history.csv" for run in RUNS[:3])
        return (f"```chart\nid: {ident}\nsource:\n{source}\nx: _step\ny: [train/sigreg, train/inv]\n"
                f"title: SIGReg and invariance\ncaption: {_sentence(rng, 12)}\nsmoothing: 0.8\n```")
    return (f"```chart\nid: {ident}\nsource: runs/{rng.choice(RUNS)}/history.csv\nx: epoch\ny: [probe/test_acc]\n"
            f"title: Online probe accuracy\ncaption: {_sentence(rng, 12)}\ntype: scatter\n```")


def _pipe_table(rng: random.Random) -> str:
    rows = ["| setting | slices | knots | top-1 |", "| --- | ---: | ---: | ---: |"]
    for _ in range(rng.randint(4, 8)):
        rows.append(f"| {rng.choice(VOCAB)} {rng.choice(VOCAB)} | {rng.choice([64, 256, 1024])} | "
                    f"{rng.choice([9, 17, 33])} | {rng.uniform(20, 45):.1f} |")
    return "\n".join(rows)


def make_chapter(i: int, n: int, headings: dict[int, list[str]], rng: random.Random) -> str:
    """Chapter i of n (1-based); `headings` gives every chapter's section titles for cross-links."""
    has_charts = i % 2 == 0
    parts = [f"---\ntitle: Synthetic chapter {i}\norder: {i}\nsummary: {_sentence(rng, 14)}\n---\n",
             f"# Synthetic chapter {i}\n"]
    words = 0
    footnotes: list[str] = []
    n_eq = n_fig = 0
    sections = headings[i]
    per_section = WORDS_PER_CHAPTER // len(sections)
    for s, title in enumerate(sections):
        parts.append(f"## {title}\n")
        section_words = 0
        while section_words < per_section:
            sentences = []
            for _ in range(rng.randint(3, 6)):
                n_words = rng.randint(9, 20)
                sentence = _sentence(rng, n_words)
                roll = rng.random()
                if roll < 0.45:
                    sentence = sentence[:-1] + f" with ${_inline_formula(rng)}$."
                elif roll < 0.52:
                    footnotes.append(_sentence(rng, 10))
                    sentence = sentence[:-1] + f"[^{len(footnotes)}]."
                elif roll < 0.58 and n > 1:
                    j = rng.choice([k for k in range(1, n + 1) if k != i])
                    target = rng.choice(headings[j])
                    sentence += f" See [{target.lower()}]({chapter_slug(j)}.md#{slugify(target)})."
                elif roll < 0.61 and i > 1:
                    j = rng.randint(1, i - 1)
                    sentence += f" Compare \\eqref{{eq:c{j}-1}}."
                elif roll < 0.63:
                    run = rng.choice(RUNS)
                    sentence += f" The probe reached {{{{ runs/{run}/summary.json#final_probe/test_top1 | .1% }}}}."
                elif roll < 0.65:
                    run = rng.choice(RUNS)
                    sentence += f" Its best epoch gave {{{{ runs/{run}/history.csv#probe/test_acc@max | .1% }}}}."
                sentences.append(sentence)
                section_words += n_words
            parts.append(" ".join(sentences) + "\n")
        # one or two display formulas per section; the first of the chapter is labelled for \eqref
        for _ in range(rng.randint(1, 2)):
            n_eq += 1
            label = f"eq:c{i}-{n_eq}" if n_eq <= 2 else None
            parts.append(_display_formula(rng, label) + "\n")
        if s % 3 == 0:
            parts.append(_pipe_table(rng) + "\n")
        if s % 3 == 1:
            parts.append("```python\n" + rng.choice(CODE_SNIPPETS) + "```\n")
        if s % 4 == 2:
            parts.append(f"::: note {rng.choice(['In short', 'Why it matters', 'A caveat'])}\n"
                         f"{_sentence(rng, 16)} {_sentence(rng, 12)}\n:::\n")
        if has_charts and s % 3 == 2:
            n_fig += 1
            ident = f"fig:c{i}-{n_fig}"
            parts.append(_chart_block(rng, ident, (i // 2 + n_fig) % 3) + "\n")  # all three kinds occur
            parts.append(f"As \\ref{{{ident}}} shows, {_sentence(rng, 10).lower()}\n")
        words += section_words
    if has_charts:
        run = rng.choice(RUNS)
        parts.append(f"```table\nid: tbl:c{i}\nsource: runs/{run}/config.json\nkeys: [model/depth, model/width, sigreg/lambda]\n"
                     f"caption: Hyper-parameters of {run}.\n```\n")
    parts.extend(f"[^{k}]: {text}\n" for k, text in enumerate(footnotes, 1))
    return "\n".join(parts)


def make_index(n: int) -> str:
    links = "\n".join(f"- [Synthetic chapter {i}]({chapter_slug(i)}.md)" for i in range(1, n + 1))
    return ("---\ntitle: Benchmark corpus\norder: 0\nsummary: A synthetic report used to time the build.\n---\n\n"
            f"# Benchmark corpus\n\nSynthetic chapters, generated by benchmarks/corpus.py.\n\n{links}\n")


def write_corpus(root: Path, n_chapters: int, seed: int = 0) -> Path:
    """Write content/ and exports/runs/ under `root` (created if needed); return `root`."""
    root = Path(root)
    content = root / "content"
    content.mkdir(parents=True, exist_ok=True)
    heading_rng = random.Random(seed)
    headings = {i: heading_rng.sample(HEADINGS, 8) for i in range(1, n_chapters + 1)}
    (root / "site.toml").write_text('title = "Benchmark corpus"\n')
    (content / "index.md").write_text(make_index(n_chapters))
    for i in range(1, n_chapters + 1):
        text = make_chapter(i, n_chapters, headings, random.Random(f"{seed}-{i}"))
        (content / f"{chapter_slug(i)}.md").write_text(text)
    write_runs(root, seed)
    return root


def touch_chapter(root: Path, i: int, edit: int) -> Path:
    """Change one chapter's text (a new sentence at the end), as an author's edit would."""
    path = Path(root) / "content" / f"{chapter_slug(i)}.md"
    path.write_text(path.read_text() + f"\nAn added sentence, edit number {edit}.\n")
    return path
