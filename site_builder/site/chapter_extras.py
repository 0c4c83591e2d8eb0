"""PageRenderer's hooks for images, citations and warnings (mixed into site.render.PageRenderer).

Images: a chapter's `![alt](path)` is read relative to content/, must stay inside the project and be
PNG, JPEG, SVG or WebP; it is published as images/<name>-<hash>.<ext> with its width and height, lazy
loading and, for rasters wider than RESPONSIVE_MIN pixels, smaller copies in a srcset (Pillow). A
missing file is an error naming chapter and line; an empty alt text is a warning.

Citations: see content.citations; the bibliography is site.toml's `bibliography` (references.bib).
Citations link to the page holding a ```bibliography block, or, without one, to a References list
that the build appends to each citing page.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from site_builder.content.citations import STYLES, Reference, cite_html, entry_html, load_bibliography, unknown_key
from site_builder.errors import UserError
from site_builder.fsutil import write_bytes_atomic
from site_builder.site.pages import Link

IMAGE_TYPES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".svg": "SVG"}
RESPONSIVE_MIN = 1600  # rasters wider than this also get smaller copies
RESPONSIVE_WIDTHS = (800, 1600)
IMAGE_SIZES = "(max-width: 46rem) 100vw, 44rem"  # the article's measure (site.css --measure)
BIB_BLOCK_RE = re.compile(r"^```bibliography[ \t]*$", re.M)
SVG_SIZE_RE = re.compile(r'\b(width|height|viewBox)\s*=\s*["\']([^"\']*)["\']')


@dataclass(frozen=True)
class PublishedImage:
    files: dict[str, bytes]
    """dist path -> bytes (the image and its smaller copies)."""
    src: str
    width: int
    height: int
    srcset: str = ""


def _svg_size(data: bytes) -> tuple[int, int]:
    head = data[:4096].decode("utf-8", "replace")
    root = head[head.find("<svg"):].split(">", 1)[0]
    found = dict(SVG_SIZE_RE.findall(root))
    try:
        return round(float(found["width"].removesuffix("px"))), round(float(found["height"].removesuffix("px")))
    except (KeyError, ValueError):
        box = found.get("viewBox", "").replace(",", " ").split()
        if len(box) == 4:
            return round(float(box[2])), round(float(box[3]))
    return 0, 0


def publish_image(path: Path, rel: str, cache: Path) -> PublishedImage:
    """The dist files and attributes for one image file (raises UserError for unreadable images)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    src = f"images/{path.stem}-{digest[:10]}{suffix}"
    if suffix == ".svg":
        width, height = _svg_size(data)
        return PublishedImage({src: data}, src, width, height)
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if image.format != IMAGE_TYPES[suffix]:
            raise UserError(f"{rel} is a {image.format} file, not {IMAGE_TYPES[suffix]}; fix its extension")
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{rel}: not a readable image ({exc})") from None
    files = {src: data}
    if width <= RESPONSIVE_MIN:
        return PublishedImage(files, src, width, height)
    candidates = []
    for w in RESPONSIVE_WIDTHS:
        name = f"{digest[:16]}-{w}{suffix}"
        cached = cache / name
        if not cached.exists():
            small = image.resize((w, round(height * w / width)), Image.LANCZOS)
            out = io.BytesIO()
            small.save(out, format=image.format, **({"quality": 85} if image.format in ("JPEG", "WEBP") else {"optimize": True}))
            write_bytes_atomic(cached, out.getvalue())
        files[f"images/{path.stem}-{digest[:10]}-{w}{suffix}"] = cached.read_bytes()
        candidates.append(f"images/{path.stem}-{digest[:10]}-{w}{suffix} {w}w")
    candidates.append(f"{src} {width}w")
    return PublishedImage(files, src, width, height, ", ".join(candidates))


class ChapterExtras:
    """Mixed into PageRenderer (which provides b, page, path, data_files and error())."""

    def warn(self, message: str, line: int) -> None:
        self.warnings_out.append(f"{self.path}:{line}: {message}")

    # -- images

    def image(self, src: str, alt: str, title: str, line: int) -> str:
        parts = urlsplit(src)
        if parts.scheme or parts.netloc or not parts.path:
            raise self.error(f"image {src}: only image files inside the project are published (the site loads nothing from other hosts)", line)
        root = self.b.project.root
        written = self.page.source.parent / unquote(parts.path)
        path = written.resolve()
        rel = written.relative_to(root).as_posix() if written.is_relative_to(root) else src
        if not path.is_relative_to(root):
            raise self.error(f"image {src}: outside the project folder", line)
        if path.suffix.lower() not in IMAGE_TYPES:
            raise self.error(f"image {src}: use PNG, JPEG, SVG or WebP (got '{path.suffix or 'no extension'}')", line)
        if not path.is_file():
            raise self.error(f"image {src}: no such file ({rel})", line)
        self.data_files.add(path.relative_to(root).as_posix())
        try:
            published = publish_image(path, rel, self.b.project.cache / "images")
        except UserError as exc:
            raise self.error(exc.message, line) from None
        self.b.data_out.update(published.files)
        self.images_out.append(rel)
        if not alt.strip():
            self.warn(f"image {src} has no alt text: describe it for readers who cannot see it, ![like this]({src})", line)
        attrs = f'src="{escape(published.src)}" alt="{escape(alt)}"'
        if published.width and published.height:
            attrs += f' width="{published.width}" height="{published.height}"'
        if published.srcset:
            attrs += f' srcset="{escape(published.srcset)}" sizes="{IMAGE_SIZES}"'
        if title:
            attrs += f' title="{escape(title)}"'
        return f'<img {attrs} loading="lazy" decoding="async">'

    # -- citations

    def _references(self, line: int) -> tuple[dict[str, Reference], str]:
        config = self.b.project.config
        if config.citation_style not in STYLES:
            raise UserError(f"Config value 'citation_style': '{config.citation_style}' is not one of {', '.join(STYLES)}", path="site.toml")
        rel = config.bibliography
        path = (self.b.project.root / rel).resolve()
        if not path.is_relative_to(self.b.project.root) or not path.is_file():
            raise self.error(f"a citation needs {rel} (BibTeX entries), which does not exist (site.toml 'bibliography' names it)", line)
        self.data_files.add(rel)
        loaded = self.b.__dict__.setdefault("bibliographies", {})
        if rel not in loaded:
            loaded[rel] = load_bibliography(path, rel)
        return loaded[rel], config.citation_style

    def _bibliography_page(self):
        return next((p for p in self.b.pages_by_slug.values() if BIB_BLOCK_RE.search(p.text)), None)

    def cite(self, keys: list[str], narrative: bool, line: int) -> str:
        refs, style = self._references(line)
        for key in keys:
            if key not in refs:
                raise self.error(unknown_key(key, refs, self.b.project.config.bibliography), line)
        target = self._bibliography_page()
        if target is not None and target is not self.page:
            self.data_files.add(target.source.relative_to(self.b.project.root).as_posix())
        page_url = "" if target is None or target is self.page else target.url

        def href(ref: Reference) -> str:
            self.page.links.append(Link(f"{page_url}#ref-{ref.key}", line, page_url or self.page.url, f"ref-{ref.key}"))
            return f"{page_url}#ref-{ref.key}"

        chosen = [refs[k] for k in keys]
        for ref in chosen:
            if ref.key not in self.cited:
                self.cited.append(ref.key)
        return cite_html(chosen, narrative, style, href)

    def _entries(self, refs: list[Reference], style: str, line: int) -> str:
        from site_builder.content.markdown import render_inline

        items = "\n".join(entry_html(r, style, render_inline(r.note, self, self.path, line) if r.note else "") for r in refs)
        tag = "ol" if style == "numbered" else "ul"
        return f'<{tag} class="bibliography">\n{items}\n</{tag}>\n'

    def bibliography(self, body: str, line: int) -> str:
        """A ```bibliography block: every entry of the .bib, or those listed under `keys:`."""
        refs, style = self._references(line)
        spec = yaml.safe_load(body) if body.strip() else {}
        if not isinstance(spec, dict) or set(spec) - {"keys"}:
            raise self.error("bibliography block: leave it empty (every entry) or give 'keys: [key, ...]'", line)
        keys = spec.get("keys", list(refs))
        if not isinstance(keys, list):
            raise self.error("bibliography block: 'keys' must be a list, e.g. keys: [lecun2022, chen2020]", line)
        for key in keys:
            if str(key) not in refs:
                raise self.error(unknown_key(str(key), refs, self.b.project.config.bibliography), line)
        return self._entries([refs[str(k)] for k in keys], style, line)

    def end_matter(self) -> str:
        """A References section for a citing page when no page has a ```bibliography block."""
        if not self.cited or self._bibliography_page() is not None:
            return ""
        refs, style = self._references(1)
        chosen = sorted((refs[k] for k in self.cited), key=lambda r: r.number)
        return f'<section class="references" aria-labelledby="references">\n<h2 id="references">References</h2>\n{self._entries(chosen, style, 1)}</section>\n'


def restore_images(builder, rels: list[str]) -> None:
    """Publish again the images of a page taken from the render cache (their bytes are not cached there)."""
    for rel in rels:
        builder.data_out.update(publish_image(builder.project.root / rel, rel, builder.project.cache / "images").files)
