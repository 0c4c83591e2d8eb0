"""Files a published site needs beside its pages: a social card per page, sitemap.xml and 404.html.

These are the only outputs that depend on where the site is published (`base_url`, from site.toml or
`build --base-url`): link previews and sitemaps need absolute URLs, and GitHub Pages serves 404.html for
any missing path, however deep, so that page gets a `<base href>` of the site's path. Pages themselves
keep relative links and work anywhere, including from the file system.
"""

from __future__ import annotations

import hashlib
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from site_builder.site import cache_file
from site_builder.site.social import font_files, social_card

if TYPE_CHECKING:
    import jinja2

    from site_builder.site.project import Project
    from site_builder.site.pages import Page

CARDS_DIR = "cards"


def site_url(base_url: str) -> str:
    """`base_url` with exactly one trailing slash ('' when not set)."""
    return base_url.rstrip("/") + "/" if base_url else ""


def is_absolute(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme and parts.netloc)


def card_path(page: Page) -> str:
    return f"{CARDS_DIR}/{page.slug}.png"


def page_url(base_url: str, page: Page) -> str:
    """The page's public URL (the home page as the site's URL itself)."""
    return site_url(base_url) + ("" if page.slug == "index" else page.url)


def sitemap_xml(pages: list[Page], base_url: str) -> bytes:
    urls = "".join(f"  <url><loc>{escape(page_url(base_url, p))}</loc></url>\n" for p in pages)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + urls + "</urlset>\n"
    ).encode()


def cached_card(project: Project, page: Page) -> bytes:
    """The page's social card; cached by content under .cache/ (drawing one costs ~50 ms)."""
    args = {
        "title": page.title,
        "kicker": f"Chapter {page.number}" if page.number else "",
        "summary": page.summary,
        "site_title": project.config.title,
    }
    code = Path(__file__).with_name("social.py").read_bytes() + "|".join(font_files()).encode()
    key = hashlib.sha256(repr(sorted(args.items())).encode() + code).hexdigest()[:20]
    cache = project.cache / "cards" / f"{key}.png"
    data = cache_file.read(cache)
    if data is None:
        data = social_card(**args)
        cache_file.write(cache, data)
    return data


def social_cards(project: Project, pages: list[Page]) -> dict[str, bytes]:
    """{path in dist: PNG} of every page's card (the build draws them in a thread while pages render)."""
    return {card_path(page): cached_card(project, page) for page in pages}


def published_files(project: Project, env: jinja2.Environment, pages: list[Page], assets: dict, base_url: str) -> dict[str, bytes]:
    """404.html and (when the base URL is known) sitemap.xml, as {path in dist: bytes}."""
    files = {}
    base_path = urlsplit(site_url(base_url)).path if base_url else ""
    files["404.html"] = (
        env.get_template("404.html").render(site=project.config, base_path=base_path, nav=pages, assets=assets).encode()
    )
    if base_url:
        files["sitemap.xml"] = sitemap_xml(pages, base_url)
    return files
