"""Markdown -> HTML: the markdown-it-py parser with this project's chapter syntax (see README, "Writing chapters").

Parsing and rendering are separate so the builder can first gather every page's labels (equations,
figures, tables) and then render with cross-references that work across chapters:

    doc = parse_markdown(text, path)     # front matter, tokens, labels, headings
    html = render_markdown(doc, hooks)   # hooks: math, charts, tables, values, links, cross-references

Raw HTML in markdown is not passed through: it is shown as text (markdown-it's `html=False`), so a
chapter cannot inject scripts or break the layout. Everything the page needs has a markdown syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from typing import Any, Protocol

import yaml
from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.container import container_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from site_builder.content.citations import citations_plugin
from site_builder.content.fence_names import fence_names_plugin
from site_builder.content.heading_ids import heading_ids_plugin
from site_builder.content.images import images_plugin
from site_builder.content.math import split_label
from site_builder.content.yaml_input import load_bounded
from site_builder.errors import UserError

CALLOUTS = ("note", "tip", "warning")
DIRECTIVES = ("chart", "table", "explorer")
FRONT_MATTER_KEYS = {"title", "order", "summary"}
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader: ~10x faster, same values


class Hooks(Protocol):
    """What the renderer asks the builder for; `line` is the 1-based source line."""

    def math(self, tex: str, display: bool, line: int, label: str | None = None) -> str: ...
    def directive(self, kind: str, spec: dict, line: int, label_index: int) -> str: ...
    def value(self, expr: str, line: int, closed: bool = True) -> str: ...
    def link(self, href: str, line: int) -> str: ...
    def xref(self, command: str, label: str, line: int) -> str: ...
    def image(self, src: str, alt: str, title: str, line: int) -> str: ...
    def cite(self, keys: list[str], narrative: bool, line: int) -> str: ...
    def bibliography(self, body: str, line: int) -> str: ...
    def warn(self, message: str, line: int) -> None: ...


@dataclass
class Heading:
    level: int
    id: str
    text: str


@dataclass(frozen=True)
class Label:
    """A numbered thing a chapter defines: an equation, figure or table (site.pages.number_labels numbers
    them; a chart or table without an `id` is numbered too, but nothing can refer to it)."""

    kind: str  # eq | fig | tbl
    name: str | None  # the full label, e.g. "eq:sigreg"; None for a chart or table without an id
    line: int


@dataclass
class MarkdownDoc:
    path: str  # shown in error messages
    meta: dict[str, Any]
    tokens: list[Token] | None  # None: only the outline (meta, headings, labels) is known; see site.pages.Outlines
    env: dict
    headings: list[Heading] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


def _slugify(text: str) -> str:
    """GitHub-style heading ids: lower case, punctuation dropped, spaces to hyphens (non-ASCII kept)."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return re.sub(r"\s", "-", text) or "section"


# ---------------------------------------------------------------------------------------------------
# inline syntax: {{ source#key@agg | fmt }} and \eqref{..} / \ref{..}

VALUE_RE = re.compile(r"\{\{(.+?)\}\}")
XREF_RE = re.compile(r"\\(eqref|ref)\{([^{}]*)\}")


def _value_rule(state: StateInline, silent: bool) -> bool:
    if not state.src.startswith("{{", state.pos):
        return False
    match = VALUE_RE.match(state.src, state.pos)
    if not silent:
        token = state.push("data_value", "", 0)
        # `\|` is how a table cell writes the format bar (the cell ends at a bare `|`, cutting the value off)
        token.content = match.group(1).replace("\\|", "|").strip() if match else state.src[state.pos + 2:].strip()
        token.meta["closed"] = bool(match)
    state.pos = match.end() if match else state.posMax
    return True


def _xref_rule(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] != "\\":
        return False
    match = XREF_RE.match(state.src, state.pos)
    if not match:
        return False
    if not silent:
        token = state.push("xref", "", 0)
        token.info = match.group(1)
        token.content = match.group(2).strip()
    state.pos = match.end()
    return True


def _line_numbers(state) -> None:
    """Give every inline child token its 1-based source line (markdown-it maps only blocks): the block's
    first line plus the newlines before the child's text, found by scanning the block's source in order."""
    for token in state.tokens:
        if not (token.map and token.children):
            continue
        source, cursor, line = token.content, 0, token.map[0] + 1
        for child in token.children:
            if child.content and child.type != "softbreak":
                found = source.find(child.content, cursor)
                if found >= 0:
                    line += source.count("\n", cursor, found)
                    cursor = found
            child.meta["line"] = line


def make_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable(["table", "strikethrough"])
    md.use(front_matter_plugin)
    md.use(dollarmath_plugin, allow_labels=False, allow_digits=False, double_inline=True)
    md.use(footnote_plugin)
    md.use(anchors_plugin, min_level=2, max_level=3, slug_func=_slugify, permalink=True, permalinkSymbol="#")
    md.use(heading_ids_plugin, slug_func=_slugify, min_level=2, max_level=3)  # linear-time unique ids
    for name in CALLOUTS:
        md.use(container_plugin, name=name, render=_render_callout)
    md.inline.ruler.before("escape", "xref", _xref_rule)
    md.inline.ruler.before("emphasis", "data_value", _value_rule)
    md.core.ruler.after("inline", "line_numbers", _line_numbers)
    _install_rules(md)
    for plugin in (images_plugin, citations_plugin, fence_names_plugin):  # features in their own modules
        md.use(plugin)
    return md


_PARSER: MarkdownIt | None = None


def parser() -> MarkdownIt:
    global _PARSER
    if _PARSER is None:
        _PARSER = make_parser()
    return _PARSER


# ---------------------------------------------------------------------------------------------------
# parse: front matter, headings, labels


def _load_yaml(text: str, *, path: str, first_line: int, what: str) -> Any:
    try:
        return load_bounded(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = first_line + (mark.line if mark else 0)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{what}: invalid YAML: {problem}", path=path, line=line) from None


def parse_markdown(text: str, path: str) -> MarkdownDoc:
    """Parse a chapter; raises UserError for bad front matter, directive YAML or labels."""
    env: dict = {}
    tokens = parser().parse(text, env)
    meta: dict[str, Any] = {}
    doc = MarkdownDoc(path=path, meta=meta, tokens=tokens, env=env)
    for i, token in enumerate(tokens):
        line = token.map[0] + 1 if token.map else 1
        if token.type == "front_matter":
            loaded = _load_yaml(token.content, path=path, first_line=line + 1, what="front matter")
            if not isinstance(loaded, dict):
                raise UserError("front matter must be a YAML mapping (title: ..., order: ...)", path=path, line=line)
            unknown = sorted(set(loaded) - FRONT_MATTER_KEYS)
            if unknown:
                raise UserError(
                    f"front matter: unknown key '{unknown[0]}' (known: {', '.join(sorted(FRONT_MATTER_KEYS))})",
                    path=path,
                    line=line,
                )
            for key in ("title", "summary"):
                if key in loaded and not isinstance(loaded[key], str):
                    raise UserError(f"front matter: {key} must be text, got {loaded[key]!r} (quote it)", path=path, line=line)
            meta.update(loaded)
        elif token.type == "heading_open" and token.tag in ("h2", "h3"):
            inline = tokens[i + 1]
            doc.headings.append(Heading(int(token.tag[1]), token.attrs.get("id", ""), _plain_text(inline)))
        elif token.type == "math_block":
            tex, label = split_label(token.content, path=path, line=line)
            token.meta["tex"], token.meta["label"] = tex, label
            if label:
                doc.labels.append(Label(_label_kind(label, path, line, "a formula", "eq"), label, line))
        elif token.type == "fence" and token.info.strip() in DIRECTIVES:
            kind = token.info.strip()
            spec = _load_yaml(token.content, path=path, first_line=line + 1, what=f"{kind} block")
            if not isinstance(spec, dict):
                raise UserError(f"{kind} block: the body must be YAML 'key: value' lines", path=path, line=line)
            token.meta["spec"] = spec
            label = spec.get("id")
            expected = "tbl" if kind == "table" else "fig"
            if label is not None:
                _label_kind(str(label), path, line, f"a {kind}", expected)
            # every chart / table is numbered, with or without an id; the token keeps its label's index
            token.meta["label_index"] = len(doc.labels)
            doc.labels.append(Label(expected, str(label) if label is not None else None, line))
    if "title" not in meta:
        first_h1 = next((tokens[i + 1] for i, t in enumerate(tokens) if t.tag == "h1" and t.type == "heading_open"), None)
        if first_h1 is None:
            raise UserError("no title: add 'title: ...' to the front matter", path=path, line=1)
        meta["title"] = _plain_text(first_h1)
    return doc


def _label_kind(label: str, path: str, line: int, what: str, expected: str) -> str:
    kind = label.split(":", 1)[0]
    if kind != expected or ":" not in label:
        raise UserError(f"the label of {what} must start with '{expected}:' (got '{label}')", path=path, line=line)
    return kind


def _plain_text(inline: Token) -> str:
    text = "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline", "math_inline"))
    return text.strip()


# ---------------------------------------------------------------------------------------------------
# render


def _render_callout(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    if token.nesting == -1:
        return "</aside>\n"
    kind, _, title = token.info.strip().partition(" ")
    title = title.strip() or kind.capitalize()
    return f'<aside class="callout callout-{kind}">\n<p class="callout-title">{escape(title)}</p>\n'


_FORMATTER = HtmlFormatter(nowrap=True)


def highlight_code(code: str, lang: str) -> str:
    """Pygments at build time; unknown languages are shown plain (escaped)."""
    try:
        lexer = get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        lexer = None
    body = highlight(code, lexer, _FORMATTER) if lexer else escape(code)
    lang_class = f' class="language-{escape(lang)}"' if lang else ""
    return f'<pre class="highlight"><code{lang_class}>{body}</code></pre>\n'


def pygments_css() -> str:
    """Light and dark highlighting styles for the site stylesheet (dark: the reader's toggle, else the OS)."""
    light = HtmlFormatter(style="friendly").get_style_defs(".highlight")
    dark = HtmlFormatter(style="monokai")
    chosen = dark.get_style_defs(':root[data-theme="dark"] .highlight')
    by_os = "\n".join("  " + line for line in dark.get_style_defs(':root:not([data-theme="light"]) .highlight').splitlines())
    return f"{light}\n{chosen}\n@media (prefers-color-scheme: dark) {{\n{by_os}\n}}\n"


def render_markdown(doc: MarkdownDoc, hooks: Hooks) -> str:
    md = parser()
    renderer = md.renderer
    env = dict(doc.env, hooks=hooks, path=doc.path)
    return renderer.render(doc.tokens, md.options, env)


def render_inline(text: str, hooks: Hooks, path: str, line: int) -> str:
    """Inline markdown (captions, titles) with the same math / value / reference syntax."""
    md = parser()
    env = {"hooks": hooks, "path": path}
    tokens = md.parseInline(text, env)
    for token in tokens:
        for child in token.children or []:
            child.meta["line"] = line
    return md.renderer.render(tokens, md.options, env)


def _line(token: Token) -> int:
    if token.map:
        return token.map[0] + 1
    return token.meta.get("line", 1)


def _rule_math_inline(self, tokens, idx, options, env):
    return env["hooks"].math(tokens[idx].content, False, _line(tokens[idx]))


def _rule_math_inline_double(self, tokens, idx, options, env):
    return env["hooks"].math(tokens[idx].content, True, _line(tokens[idx]))


def _rule_math_block(self, tokens, idx, options, env):
    token = tokens[idx]
    return env["hooks"].math(token.meta.get("tex", token.content), True, _line(token), token.meta.get("label")) + "\n"


def _rule_fence(self, tokens, idx, options, env):
    token = tokens[idx]
    info = token.info.strip()
    if info in DIRECTIVES:
        return env["hooks"].directive(info, dict(token.meta["spec"]), _line(token), token.meta["label_index"])
    return highlight_code(token.content, info.split()[0] if info else "")


def _rule_code_block(self, tokens, idx, options, env):
    return highlight_code(tokens[idx].content, "")


def _rule_data_value(self, tokens, idx, options, env):
    return env["hooks"].value(tokens[idx].content, _line(tokens[idx]), tokens[idx].meta.get("closed", True))


def _rule_xref(self, tokens, idx, options, env):
    token = tokens[idx]
    return env["hooks"].xref(token.info, token.content, _line(token))


def _rule_link_open(self, tokens, idx, options, env):
    token = tokens[idx]
    href = token.attrGet("href")
    if href is not None:
        token.attrSet("href", env["hooks"].link(str(href), _line(token)))
    return self.renderToken(tokens, idx, options, env)


def _install_rules(md: MarkdownIt) -> None:
    rules = {
        "math_inline": _rule_math_inline,
        "math_inline_double": _rule_math_inline_double,
        "math_block": _rule_math_block,
        "fence": _rule_fence,
        "code_block": _rule_code_block,
        "data_value": _rule_data_value,
        "xref": _rule_xref,
        "link_open": _rule_link_open,
    }
    for name, rule in rules.items():
        md.add_render_rule(name, rule)

