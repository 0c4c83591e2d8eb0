"""Citations: `[@key]`, `[@a; @b]` and narrative `@key` in chapters, resolved against references.bib.

    md.use(citations_plugin)                 # the syntax: `cite` tokens and the ```bibliography block
    refs = load_bibliography(path, rel)      # references.bib -> {key: Reference} (bibtexparser 2)

Styles (site.toml `citation_style`): "author-year" prints (Balestriero and LeCun, 2025) and, for a
narrative citation, Balestriero and LeCun (2025); "numbered" numbers the entries in bibliography order
(first author, year, title, like BibTeX's `plain`) and prints [1] and Balestriero and LeCun [1].
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline

from site_builder.errors import UserError

STYLES = ("author-year", "numbered")
KEY = r"[A-Za-z][\w:.+/-]*[\w]|[A-Za-z]"
BRACKET_RE = re.compile(rf"\[\s*(@(?:{KEY})(?:\s*;\s*@(?:{KEY}))*)\s*\]")
NARRATIVE_RE = re.compile(rf"@({KEY})")
VENUE_FIELDS = ("journal", "booktitle", "publisher", "howpublished", "school", "institution")


@dataclass(frozen=True)
class Reference:
    key: str
    authors: tuple[str, ...]
    """Last names (with their 'von' part), in order."""
    full_authors: str
    """'First Last, First Last' as the bibliography prints them."""
    year: str
    title: str
    venue: str
    url: str
    note: str
    line: int
    label: str = ""
    """'Balestriero and LeCun' ('et al.' from three authors on)."""
    suffix: str = ""
    """'a', 'b' when two entries share label and year."""
    number: int = 0

    @property
    def year_text(self) -> str:
        return self.year + self.suffix

    def plain(self) -> str:
        """One line of plain text (hover previews)."""
        parts = [self.full_authors, self.title, self.venue, self.year_text]
        return ". ".join(p.rstrip(".") for p in parts if p) + "."


def _names(field) -> tuple[tuple[str, ...], str]:
    if field is None:
        return (), ""
    last, full = [], []
    for name in field.value:
        last.append(" ".join([*name.von, *name.last]))
        full.append(" ".join([*name.first, *name.von, *name.last, *name.jr]))
    return tuple(last), ", ".join(full)


def _label(authors: tuple[str, ...]) -> str:
    if not authors:
        return "Anonymous"
    if len(authors) == 1:
        return authors[0]
    if len(authors) == 2:
        return f"{authors[0]} and {authors[1]}"
    return f"{authors[0]} et al."


def load_bibliography(path: Path, rel: str) -> dict[str, Reference]:
    """Every entry of a .bib file, sorted and numbered; a syntax error or duplicate key names its line."""
    import bibtexparser  # only for sites that cite
    from bibtexparser.middlewares import LatexDecodingMiddleware, SeparateCoAuthors, SplitNameParts

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text (byte {exc.start}); save the file as UTF-8", path=rel) from None
    logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)  # failures are reported below, once
    library = bibtexparser.parse_string(text, append_middleware=[LatexDecodingMiddleware(), SeparateCoAuthors(), SplitNameParts()])
    for block in library.failed_blocks:
        what = str(getattr(block, "error", "") or "").splitlines()
        detail = what[0] if what and type(block).__name__ != "ParsingFailedBlock" else "cannot parse this entry (check its braces, quotes and commas)"
        raw = block.raw or ""
        raise UserError(detail, path=rel, line=block.start_line + 1 + raw[: len(raw) - len(raw.lstrip())].count("\n"))
    entries = []
    for entry in library.entries:
        fields = entry.fields_dict
        authors, full = _names(fields.get("author") or fields.get("editor"))
        value = lambda name: " ".join(str(fields[name].value).split()) if name in fields else ""  # noqa: E731
        venue = next((value(f) for f in VENUE_FIELDS if f in fields), "")
        url = value("url") or (f"https://doi.org/{value('doi')}" if "doi" in fields else "")
        entries.append(
            Reference(entry.key, authors, full, value("year"), value("title").replace("{", "").replace("}", ""), venue, url, value("note"), entry.start_line + 1, _label(authors))
        )
    entries.sort(key=lambda r: ([a.lower() for a in r.authors], r.year, r.title.lower(), r.key))
    refs: dict[str, Reference] = {}
    seen: dict[tuple[str, str], list[str]] = {}
    for ref in entries:
        seen.setdefault((ref.label, ref.year), []).append(ref.key)
    for number, ref in enumerate(entries, 1):
        same = seen[(ref.label, ref.year)]
        suffix = "abcdefghijklmnopqrstuvwxyz"[same.index(ref.key)] if len(same) > 1 and len(same) <= 26 else ""
        refs[ref.key] = Reference(**{**ref.__dict__, "suffix": suffix, "number": number})
    return refs


def unknown_key(key: str, refs: dict[str, Reference], bib: str) -> str:
    guess = difflib.get_close_matches(key, refs, n=1)
    hint = f"; did you mean @{guess[0]}?" if guess else ""
    return f"citation @{key}: no such entry in {bib}{hint}"


def cite_html(refs: list[Reference], narrative: bool, style: str, href) -> str:
    """The in-text citation; `href(ref)` is where each reference's entry is."""
    def link(ref: Reference, text: str) -> str:
        return f'<a class="citation" href="{escape(href(ref))}" data-preview="{escape(ref.plain())}">{escape(text)}</a>'

    if style == "numbered":
        numbers = ", ".join(link(r, str(r.number)) for r in refs)
        if narrative:
            return f"{escape(refs[0].label)} [{numbers}]"
        return f'<span class="cite">[{numbers}]</span>'
    if narrative:
        return f"{link(refs[0], refs[0].label)} ({link(refs[0], refs[0].year_text)})"
    return '<span class="cite">(' + "; ".join(link(r, f"{r.label}, {r.year_text}") for r in refs) + ")</span>"


def entry_html(ref: Reference, style: str, note_html: str) -> str:
    lead = f'<span class="ref-number">[{ref.number}]</span> ' if style == "numbered" else ""
    title = f"<em>{escape(ref.title)}</em>" if ref.title else ""
    parts = [escape(ref.full_authors or "Anonymous") + (f" ({escape(ref.year_text)})" if style != "numbered" else ""), title, escape(ref.venue)]
    if style == "numbered" and ref.year:
        parts.append(escape(ref.year_text))
    text = ". ".join(p.rstrip(".") for p in parts if p) + "."
    if ref.url:
        text += f' <a href="{escape(ref.url)}">{escape(ref.url.split("://", 1)[-1])}</a>'
    if note_html:
        text += f" {note_html}"
    return f'<li id="ref-{escape(ref.key)}">{lead}{text}</li>'


# ---------------------------------------------------------------------------------------------------
# markdown syntax


def _cite_rule(state: StateInline, silent: bool) -> bool:
    char = state.src[state.pos]
    if char == "[":
        match = BRACKET_RE.match(state.src, state.pos)
        narrative = False
    elif char == "@":
        if state.pos > 0 and (state.src[state.pos - 1].isalnum() or state.src[state.pos - 1] in "_.-/@"):
            return False  # an e-mail address or handle, not a citation
        match = NARRATIVE_RE.match(state.src, state.pos)
        narrative = True
    else:
        return False
    if not match:
        return False
    if not silent:
        token = state.push("cite", "", 0)
        token.meta["keys"] = [k.strip().lstrip("@") for k in match.group(1).split(";")] if not narrative else [match.group(1)]
        token.meta["narrative"] = narrative
    state.pos = match.end()
    return True


def citations_plugin(md: MarkdownIt) -> None:
    md.inline.ruler.before("link", "cite", _cite_rule)
    fence = md.renderer.rules.get("fence")

    def render_cite(self, tokens, idx, options, env):
        token = tokens[idx]
        return env["hooks"].cite(token.meta["keys"], token.meta["narrative"], token.meta.get("line", 1))

    def render_fence(self, tokens, idx, options, env):
        token = tokens[idx]
        if token.info.strip() == "bibliography":
            return env["hooks"].bibliography(token.content, token.map[0] + 1 if token.map else 1)
        return fence(tokens, idx, options, env)  # a bound method of the renderer

    md.add_render_rule("cite", render_cite)
    md.add_render_rule("fence", render_fence)
