"""Social cards: a 1200×630 PNG per page (the image link previews show), drawn with Pillow from the
page's title and summary.

The font is the one Pillow itself ships (`ImageFont.load_default(size)`, Aileron, FreeType), so no font
file lives in this repository and the build needs no system fonts. Output is deterministic.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 630
MARGIN = 80
FOOTER_Y = HEIGHT - 56  # baseline of the site title
BACKGROUND = (22, 23, 26)
FOREGROUND = (236, 236, 232)
MUTED = (168, 172, 179)
ACCENT = (138, 180, 248)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def _fit(draw, text: str, sizes: tuple[int, ...], width: int, max_lines: int):
    """The largest font size at which `text` wraps into at most `max_lines` lines (cut with … otherwise)."""
    for size in sizes:
        font = ImageFont.load_default(size)
        lines = _wrap(draw, text, font, width)
        if len(lines) <= max_lines:
            return font, lines
    lines = lines[:max_lines]
    while lines[-1] and draw.textlength(lines[-1] + " …", font=font) > width:
        lines[-1] = lines[-1].rsplit(" ", 1)[0] if " " in lines[-1] else lines[-1][:-1]
    lines[-1] += " …"
    return font, lines


def social_card(title: str, *, kicker: str = "", summary: str = "", site_title: str = "") -> bytes:
    """The card as PNG bytes."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 16, HEIGHT], fill=ACCENT)
    text_width = WIDTH - 2 * MARGIN
    y = MARGIN
    if kicker:
        draw.text((MARGIN, y), kicker.upper(), font=ImageFont.load_default(30), fill=ACCENT)
        y += 60
    font, lines = _fit(draw, title, (76, 66, 56, 48), text_width, 3)
    step = int(font.size * 1.18)
    for line in lines:
        draw.text((MARGIN, y), line, font=font, fill=FOREGROUND, stroke_width=1, stroke_fill=FOREGROUND)
        y += step
    if summary:
        small, summary_lines = _fit(draw, summary, (32, 28), text_width, 3)
        y += 24
        for line in summary_lines:
            if y + small.size > FOOTER_Y - 60:
                break
            draw.text((MARGIN, y), line, font=small, fill=MUTED)
            y += int(small.size * 1.35)
    if site_title:
        draw.text((MARGIN, FOOTER_Y), site_title, font=ImageFont.load_default(28), fill=MUTED, anchor="ls")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
