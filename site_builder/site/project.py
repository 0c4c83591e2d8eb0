"""Where a site's inputs are: the project folder (content/, exports/, templates/, site.toml) and its config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from site_builder.site.config import SiteConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # this tool's own folder (node_modules in a checkout)
THEME = Path(__file__).resolve().parents[1] / "theme"  # the packaged default templates, CSS and JS


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
        """The project's own templates/ (may not exist): files here override the theme's, one by one."""
        return self.root / "templates"

    @property
    def template_dirs(self) -> list[Path]:
        """Where templates and theme assets are looked up, first match wins."""
        return [self.templates, THEME] if self.templates.is_dir() else [THEME]

    @property
    def cache(self) -> Path:
        return self.root / ".cache" / "build"
