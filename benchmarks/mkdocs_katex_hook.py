"""MkDocs hook: render arithmatex's math spans with KaTeX at build time (pykatex, as site_builder does).

Copied next to the benchmark's mkdocs.yml and listed under `hooks:`; see benchmarks/mkdocs_site.py.
"""

import html
import re

import pykatex

_MATH = re.compile(r'<(span|div) class="arithmatex">\\[(\[](.*?)\\[)\]]</\1>', re.S)


def _render(match: re.Match) -> str:
    tex = html.unescape(match.group(2))
    return pykatex.renderToString(tex, displayMode=match.group(1) == "div")


def on_page_content(html_text, page, config, files):
    return _MATH.sub(_render, html_text)
