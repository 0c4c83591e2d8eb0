"""Static files every page shares: the site's CSS/JS, KaTeX's CSS and fonts, Plotly's JS.

Each is written once under assets/ with a content hash in its name, so browsers can cache it forever
and a new version gets a new URL. Nothing comes from a CDN:
- KaTeX CSS + fonts: npm's `katex` package (package.json pins the version pykatex renders with). A built
  wheel carries them (setup.py copies them to site_builder/theme/vendor/katex/); a checkout reads
  node_modules/ after `npm ci`. Only the woff2 fonts are shipped (every current browser
  reads woff2), so the CSS is rewritten to name only those.
- Plotly: npm's `plotly.js-cartesian-dist-min` (package.json pins the plotly.js version that the
  `plotly` Python package ships; the cartesian bundle has every trace type charts draw: scatter, bar,
  heatmap, image) at 1.5 MB instead of the full bundle's 4.8 MB. Without it (no `npm ci` yet) the full
  plotly.min.js inside the `plotly` Python package is shipped instead. Pages load it on first need.
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
from site_builder.site.project import PROJECT_ROOT, THEME



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
    """KaTeX's dist/ folder, checked to be KaTeX `version`: the copy inside the installed package (a wheel
    carries one, see setup.py), else node_modules/katex of the site or of this checkout (`npm ci`)."""
    for package in (THEME / "vendor" / "katex", root / "node_modules" / "katex", PROJECT_ROOT / "node_modules" / "katex"):
        if (package / "package.json").exists():
            found = json.loads((package / "package.json").read_text())["version"]
            if found != version:
                raise UserError(
                    f"{package} holds KaTeX {found} but pages are rendered with KaTeX {version}; "
                    "run `npm ci` (package.json pins the matching version) or reinstall site_builder"
                )
            return package / "dist"
    raise UserError("KaTeX's CSS and fonts are missing: reinstall site_builder from a built wheel, or run `npm ci` in its checkout (see the README)")


PLOTLY_CARTESIAN = Path("node_modules/plotly.js-cartesian-dist-min/plotly-cartesian.min.js")


def plotly_js_path(root: Path) -> Path:
    """npm's cartesian bundle of the site (or of this project), else the Python package's full bundle."""
    for base in (root, PROJECT_ROOT):
        if (base / PLOTLY_CARTESIAN).exists():
            return base / PLOTLY_CARTESIAN
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


def theme_file(template_dirs: list[Path], rel: str) -> Path:
    """The first of the template folders that has `rel` (a project's templates/ overrides the theme)."""
    return next((d / rel for d in template_dirs if (d / rel).is_file()), template_dirs[-1] / rel)


def collect_assets(root: Path, template_dirs: list[Path], katex_dist: Path, with_plotly: bool) -> Assets:
    assets = Assets()
    css = theme_file(template_dirs, "assets/site.css").read_bytes() + b"\n" + pygments_css().encode()
    assets.add("site_css", "site.css", css)
    assets.add("site_js", "site.js", theme_file(template_dirs, "assets/site.js").read_bytes())
    assets.add("reader_js", "reader.js", theme_file(template_dirs, "assets/reader.js").read_bytes())  # every page
    # KaTeX's CSS refers to fonts/… relative to itself, so its folder keeps the original names
    # and the version in the folder name does the cache busting.
    katex = katex_files(katex_dist)
    version = json.loads((katex_dist.parent / "package.json").read_text())["version"]
    for rel, data in katex.items():
        assets.files[f"assets/katex-{version}/{rel}"] = data
    assets.urls["katex_css"] = f"assets/katex-{version}/katex.min.css"
    if with_plotly:
        assets.add("plotly_js", "plotly.min.js", plotly_js_path(root).read_bytes())
    for name in ("linked-charts.js", "explorers.css", "explorers.js"):  # issue 15
        assets.add(name.replace("-", "_").replace(".", "_"), name, theme_file(template_dirs, f"assets/{name}").read_bytes())
    return assets
