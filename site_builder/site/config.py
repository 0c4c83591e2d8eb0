"""site.toml -> SiteConfig. Every key is optional; unknown keys are errors with a 'Did you mean' hint."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from site_builder.errors import UserError


@dataclass(frozen=True)
class SiteConfig:
    title: str = "Report"
    """Site title, shown in the header and the browser tab."""
    author: str = ""
    """Shown under the title and in the page metadata."""
    description: str = ""
    """One sentence about the site (home page metadata)."""
    base_url: str = ""
    """Where the site is published (e.g. /lejepa-report/ or https://user.github.io/lejepa-report/).
    Pages use relative links and work anywhere; this is for metadata that must be absolute."""
    language: str = "en"
    """The pages' lang attribute."""
    chapters: tuple[str, ...] = ()
    """Optional chapter order by slug; chapters not listed follow, by their front matter 'order'."""
    bibliography: str = "references.bib"
    """The BibTeX file that `[@key]` citations are looked up in, relative to the project folder."""
    citation_style: str = "author-year"
    """author-year: (Balestriero and LeCun, 2025); numbered: [1], in bibliography order."""


def load_config(root: Path) -> SiteConfig:
    path = root / "site.toml"
    if not path.exists():
        return SiteConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"invalid TOML: {exc}", path="site.toml") from None
    known = {f.name: f for f in fields(SiteConfig)}
    values = {}
    for key, value in raw.items():
        if key not in known:
            guess = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean '{guess[0]}'?" if guess else ""
            raise UserError(f"Config value '{key}': unknown key.{hint}", path="site.toml")
        if key == "chapters":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UserError("Config value 'chapters': a list of chapter slugs", path="site.toml")
            value = tuple(value)
        elif not isinstance(value, str):
            raise UserError(f"Config value '{key}': must be a string", path="site.toml")
        values[key] = value
    return SiteConfig(**values)
