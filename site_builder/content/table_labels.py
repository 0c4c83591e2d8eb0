"""Human labels and per-row/column number formats for ```table blocks.

    labels: {train/objective: objective, final_probe/test_top1: "top-1 accuracy"}   # keys and columns
    formats: {final_probe/test_top1: ".1%", train/wall_s: ",.0f"}                   # overrides `format`

A table's rows (for `keys:` tables) or columns (otherwise) are named by their metric or config keys in
the data; `labels` shows words instead, and `formats` gives each row or column its own format, so that
accuracies read as percentages next to seconds.
"""

from __future__ import annotations

from html import escape
from typing import Any, Callable

from site_builder.errors import UserError


def _mapping(spec: dict, key: str) -> dict[str, str]:
    value = spec.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise UserError(f"table: '{key}' must be a mapping {{name: text}}, e.g. {key}: {{train/lr: learning rate}}")
    return {str(k): v for k, v in value.items()}


def _numeric_column(values) -> bool:
    """True when every non-empty cell is a number (such columns are right-aligned and sort numerically)."""
    present = [v for v in values if v is not None and v != ""]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)


def table_html(header: list, rows: list[list[Any]], spec: dict, *, by_row: bool, cell: Callable[[Any, str], str]) -> tuple[str, str]:
    """(thead cells, tbody rows) as HTML. `by_row`: the first column holds keys (a `keys:` table)."""
    labels, formats = _mapping(spec, "labels"), _mapping(spec, "formats")
    fmt = str(spec.get("format", ""))
    names = [str(h) for h in header]
    known = set(names) | ({str(row[0]) for row in rows} if by_row else set())
    for key in (*labels, *formats):
        if key not in known:
            raise UserError(f"table: labels/formats name '{key}', which is not a {'key' if by_row else 'column'} of this table ({', '.join(sorted(known))})")
    numeric = [_numeric_column(row[i] for row in rows) for i in range(len(names))]
    num = lambda i: ' class="num"' if numeric[i] else ""  # noqa: E731  (right-aligned)
    head = "".join(f"<th{num(i)}>{escape(labels.get(n, n))}</th>" for i, n in enumerate(names))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            if by_row and i == 0:
                cells.append(f"<td>{escape(labels.get(str(value), str(value)))}</td>")
                continue
            cells.append(f"<td{num(i)}>{cell(value, formats.get(str(row[0]) if by_row else names[i], fmt))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>\n")
    return head, "".join(body)
