"""Where a site's inputs are: the project folder (content/, exports/, templates/, site.toml) and its config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from site_builder.site.config import SiteConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # this tool's own folder (default templates, node_modules)


@dataclass
class Project:
    """Where a site's inputs are."""

    root: Path
    config: SiteConfig

    @property
    def content(self) -> Path:
        return self.root / "content"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def templates(self) -> Path:
        own = self.root / "templates"
        return own if (own / "base.html").exists() else PROJECT_ROOT / "templates"

    @property
    def cache(self) -> Path:
        return self.root / ".cache" / "build"
