"""A fenced block whose name is close to a directive (```charts, ```Table) would silently become a code
block; this warns instead, naming the line and the directive it probably meant."""

from __future__ import annotations

import difflib

from markdown_it import MarkdownIt

DIRECTIVE_NAMES = ("chart", "table", "bibliography")


def likely_directive(info: str) -> str | None:
    """The directive a fence name looks like a typo of, or None (a real language, or nothing close)."""
    name = info.strip().split(" ")[0]
    if not name or name in DIRECTIVE_NAMES:
        return None
    guess = difflib.get_close_matches(name.lower(), DIRECTIVE_NAMES, n=1, cutoff=0.75)
    return guess[0] if guess else None


def fence_names_plugin(md: MarkdownIt) -> None:
    fence = md.renderer.rules["fence"]

    def render_fence(self, tokens, idx, options, env):
        token = tokens[idx]
        guess = likely_directive(token.info)
        if guess:
            name = token.info.strip().split(" ")[0]
            env["hooks"].warn(f"```{name} is shown as a code block; did you mean ```{guess}?", token.map[0] + 1 if token.map else 1)
        return fence(tokens, idx, options, env)  # a bound method of the renderer

    md.add_render_rule("fence", render_fence)
