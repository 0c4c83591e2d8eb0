"""What `check` relies on in a built site: social cards, OpenGraph tags, sitemap.xml and the 404 page."""

from __future__ import annotations

import io
import re

from PIL import Image

from site_builder.site.build import build_site
from site_builder.site.social import social_card


def test_each_page_has_a_card_and_its_meta_tags(built_fixture_site):
    for slug, title in (("index", "Home"), ("chapter", "The chapter")):
        html = (built_fixture_site / f"{slug}.html").read_text()
        meta = dict(re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)"', html))
        assert meta["og:title"] == title and meta["og:image"] == f"cards/{slug}.png"
        assert meta["description"] == meta["og:description"] != ""
        card = Image.open(built_fixture_site / "cards" / f"{slug}.png")
        assert card.size == (1200, 630)
    assert not (built_fixture_site / "sitemap.xml").exists()  # no base URL, no sitemap


def test_cards_draw_the_title_and_non_ascii_letters():
    def pixels(title):
        return Image.open(io.BytesIO(social_card(title))).tobytes()

    assert pixels("Collapse") != pixels("Collapsed")
    # a letter the font lacks would be drawn as the same 'missing glyph' box as any other missing letter
    assert pixels("λ = 0") != pixels("\U0010fffd = 0")
    assert pixels("Cramér") != pixels("Cram\U0010fffdr")


def test_published_under_a_base_url(fixture_site):
    build_site(fixture_site, base_url="https://me.github.io/report")  # no trailing slash: one is added
    dist = fixture_site / "dist"
    locs = re.findall(r"<loc>([^<]+)</loc>", (dist / "sitemap.xml").read_text())
    assert locs == ["https://me.github.io/report/", "https://me.github.io/report/chapter.html"]
    chapter = (dist / "chapter.html").read_text()
    assert '<meta property="og:image" content="https://me.github.io/report/cards/chapter.png">' in chapter
    assert '<meta property="og:url" content="https://me.github.io/report/chapter.html">' in chapter
    assert '<base href="/report/">' in (dist / "404.html").read_text()
