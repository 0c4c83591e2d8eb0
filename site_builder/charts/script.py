"""A chart's figure as the file pages load it: data/charts/<id>.js, one call `siteChartData("<id>", JSON);`.

site.js loads it with a <script> element when the chart nears the viewport (unlike fetch(), that works
from file:// too). The id is the JSON's content hash, so charts of equal figures share one file. Image
panels arrive as PNG sprites already (charts/panels.py).
"""

from __future__ import annotations

import hashlib
import re

import orjson

# (character, its JSON escape): a figure's strings stay inert even if the JSON is ever put in a <script>
_SCRIPT_UNSAFE = [(b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"), ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029")]
CHART_SCRIPT_RE = re.compile(rb'siteChartData\("([0-9a-f]{16})", (.*)\);\n', re.S)


def json_for_script(obj) -> bytes:
    """JSON that is safe inside a script whatever strings it holds."""
    data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    for raw, escaped in _SCRIPT_UNSAFE:  # bytes.replace: much faster than str.translate on large figures
        data = data.replace(raw, escaped)
    return data


def chart_script(figure: dict) -> tuple[str, bytes]:
    """(id, the bytes of data/charts/<id>.js)."""
    data = json_for_script(figure)
    chart_id = hashlib.sha256(data).hexdigest()[:16]
    return chart_id, b'siteChartData("' + chart_id.encode() + b'", ' + data + b");\n"


def read_chart_script(data: bytes) -> tuple[str, bytes] | None:
    """(id, JSON) of a chart script, None if it is not one."""
    match = CHART_SCRIPT_RE.fullmatch(data)
    return (match.group(1).decode(), match.group(2)) if match else None
