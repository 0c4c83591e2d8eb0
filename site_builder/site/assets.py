"""Static files every page shares: the site's CSS/JS, KaTeX's CSS and fonts, Plotly's JS.

Each is written once under assets/ with a content hash in its name, so browsers can cache it forever
and a new version gets a new URL. Nothing comes from a CDN:
- KaTeX CSS + fonts: npm's `katex` package (package.json pins the version pykatex renders with;
  `npm ci` installs it into node_modules/). Only the woff2 fonts are shipped (every current browser
  reads woff2), so the CSS is rewritten to name only those.
- Plotly: the plotly.min.js inside the installed `plotly` Python package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from site_builder.content.markdown import pygments_css
from site_builder.errors import UserError
from site_builder.site.fingerprint import PROJECT_ROOT



def hashed_name(name: str, data: bytes) -> str:
    stem, dot, suffix = name.partition(".")
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:10]}{dot}{suffix}"


@dataclass
class Assets:
    """Files for assets/ (relative path -> bytes) and the URLs pages link to."""

    files: dict[str, bytes] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, name: str, data: bytes, folder: str = "assets") -> None:
        rel = f"{folder}/{hashed_name(name, data)}"
        self.files[rel] = data
        self.urls[key] = rel


def find_katex(root: Path, version: str) -> Path:
    """node_modules/katex/dist of the site (or of this project), checked to be KaTeX `version`."""
    for base in (root, PROJECT_ROOT):
        package = base / "node_modules" / "katex"
        if (package / "package.json").exists():
            found = json.loads((package / "package.json").read_text())["version"]
            if found != version:
                raise UserError(
                    f"node_modules/katex is KaTeX {found} but pages are rendered with KaTeX {version}; "
                    "run `npm ci` (package.json pins the matching version)"
                )
            return package / "dist"
    raise UserError("KaTeX's CSS and fonts are missing: run `npm ci` in the project folder (see the README)")


def plotly_js_path() -> Path:
    spec = importlib.util.find_spec("plotly")  # located, not imported: importing plotly is slow
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the 'plotly' package is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


FONT_SRC_RE = re.compile(r"src:url\((fonts/[^)]+\.woff2)\) format\(\"woff2\"\)[^;}]*")


def katex_files(katex_dist: Path) -> dict[str, bytes]:
    """katex.min.css (woff2 only) and the woff2 fonts, as paths relative to assets/katex/."""
    css = (katex_dist / "katex.min.css").read_text(encoding="utf-8")
    css = FONT_SRC_RE.sub(lambda m: f'src:url({m.group(1)}) format("woff2")', css)
    files = {"katex.min.css": css.encode()}
    for font in sorted((katex_dist / "fonts").glob("*.woff2")):
        files[f"fonts/{font.name}"] = font.read_bytes()
    return files


def collect_assets(templates: Path, katex_dist: Path, with_plotly: bool) -> Assets:
    assets = Assets()
    css = (templates / "assets" / "site.css").read_bytes() + b"\n" + pygments_css().encode()
    assets.add("site_css", "site.css", css)
    assets.add("site_js", "site.js", (templates / "assets" / "site.js").read_bytes())
    # KaTeX's CSS refers to fonts/… relative to itself, so its folder keeps the original names
    # and the version in the folder name does the cache busting.
    katex = katex_files(katex_dist)
    version = json.loads((katex_dist.parent / "package.json").read_text())["version"]
    for rel, data in katex.items():
        assets.files[f"assets/katex-{version}/{rel}"] = data
    assets.urls["katex_css"] = f"assets/katex-{version}/katex.min.css"
    if with_plotly:
        assets.add("plotly_js", "plotly.min.js", plotly_js_path().read_bytes())
    for name in ("linked-charts.js", "explorers.css", "explorers.js"):  # issue 15; a project's own theme may lack them
        own = templates / "assets" / name
        data = (own if own.is_file() else PROJECT_ROOT / "templates" / "assets" / name).read_bytes()
        assets.add(name.replace("-", "_").replace(".", "_"), name, data)
    return assets
