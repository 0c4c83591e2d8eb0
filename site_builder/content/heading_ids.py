"""Heading ids that stay unique in linear time.

mdit_py_plugins' anchors plugin makes ids unique by trying `id-1`, `id-2`, ... from 1 for every
heading, so n headings with the same text cost n²/2 tries (10,000 took 25 s). This rule runs before it
and gives every heading the same id the plugin would (`text`, `text-1`, `text-2`, ...), remembering the
next free number per id; the plugin keeps ids that are already set and only adds the permalink.
"""

from __future__ import annotations

from collections.abc import Callable

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore


def heading_ids_plugin(md: MarkdownIt, slug_func: Callable[[str], str], min_level: int, max_level: int) -> None:
    """Register after anchors_plugin (this rule goes right before its 'anchor' rule)."""
    levels = {f"h{n}" for n in range(min_level, max_level + 1)}

    def assign(state: StateCore) -> None:
        tokens = state.tokens
        used = {str(t.attrGet("id")) for t in tokens if t.type == "heading_open" and t.attrGet("id")}
        next_number: dict[str, int] = {}
        for i, token in enumerate(tokens):
            if token.type != "heading_open" or token.tag not in levels or token.attrGet("id"):
                continue
            children = tokens[i + 1].children or []
            base = slug_func("".join(c.content for c in children if c.type in ("text", "code_inline")))
            slug, n = base, next_number.get(base, 1)
            while slug in used:
                slug, n = f"{base}-{n}", n + 1
            next_number[base] = n
            used.add(slug)
            token.attrSet("id", slug)

    md.core.ruler.before("anchor", "heading_ids", assign)
