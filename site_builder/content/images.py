"""Images in chapters: `![alt text](figures/loss.png "optional title")` -> the builder's image hook.

The file is resolved and published by site.images; this module only routes markdown-it's image token.
"""

from __future__ import annotations

from markdown_it import MarkdownIt


def images_plugin(md: MarkdownIt) -> None:
    def render_image(self, tokens, idx, options, env):
        token = tokens[idx]
        alt = self.renderInlineAsText(token.children or [], options, env)
        title = str(token.attrGet("title") or "")
        return env["hooks"].image(str(token.attrGet("src") or ""), alt, title, token.meta.get("line", 1))

    md.add_render_rule("image", render_image)
