"""Images, BibTeX citations, fence-name typos, the unnumbered home page, `new`, and --help without the
optional packages (issue 17). Real files: PNGs written by Pillow, .bib files parsed by bibtexparser."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from site_builder import cli
from site_builder.errors import UserError
from site_builder.new import create_project
from site_builder.site.build import build_site
from tests.conftest import write_site

BIB = """@article{balestriero2025lejepa,
  title = {LeJEPA: Provable and Scalable Self-Supervised Learning Without the Heuristics},
  author = {Balestriero, Randall and LeCun, Yann},
  year = {2025},
  url = {https://arxiv.org/abs/2511.08544}
}

@inproceedings{chen2020simple,
  title = {A Simple Framework for Contrastive Learning of Visual Representations},
  author = {Chen, Ting and Kornblith, Simon and Norouzi, Mohammad and Hinton, Geoffrey},
  booktitle = {ICML},
  year = {2020}
}
"""


def site(tmp_path: Path, chapters: dict[str, str], **extra: str) -> Path:
    files = {f"content/{slug}.md": f"---\ntitle: {slug.title()}\n---\n\n{body}" for slug, body in chapters.items()}
    files.update({name.replace("__", "/").replace("_dot_", "."): text for name, text in extra.items()})
    return write_site(tmp_path / "site", files)


def article(root: Path, slug: str) -> str:
    html = (root / "dist" / f"{slug}.html").read_text()
    return html[html.index("<article"):html.index("</article>")]


# -- images


def test_images_are_published_hashed_sized_and_lazy(tmp_path):
    root = site(tmp_path, {"index": "![A red box](figures/box.png)\n\n![A wide plot](figures/wide.jpg \"Loss\")\n", "other": "Text.\n"})
    (root / "content/figures").mkdir()
    Image.new("RGB", (120, 80), "red").save(root / "content/figures/box.png")
    Image.new("RGB", (3000, 1000), "blue").save(root / "content/figures/wide.jpg", quality=90)
    result = build_site(root)
    html = article(root, "index")
    box = re.search(r'<img src="(images/box-[0-9a-f]{10}\.png)" alt="A red box" width="120" height="80" loading="lazy"', html)
    assert box, html
    assert (root / "dist" / box.group(1)).read_bytes() == (root / "content/figures/box.png").read_bytes()
    wide = re.search(r'<img src="(images/wide-[0-9a-f]{10}\.jpg)" alt="A wide plot" width="3000" height="1000" srcset="([^"]+)" sizes="[^"]+" title="Loss"', html)
    assert wide, html
    candidates = [c.rsplit(" ", 1) for c in wide.group(2).split(", ")]
    assert [w for _, w in candidates] == ["800w", "1600w", "3000w"]
    for path, w in candidates:
        with Image.open(root / "dist" / path) as im:
            assert im.width == int(w[:-1]) and im.format == "JPEG"
    assert result.warnings == []
    # a rebuild whose pages come from the render cache still publishes the images
    (root / "content/other.md").write_text("---\ntitle: Other\n---\n\nChanged text.\n")
    again = build_site(root)
    assert again.pages_rendered == 1  # only the edited chapter; index.html came from the render cache
    assert (root / "dist" / box.group(1)).exists() and (root / "dist" / candidates[0][0]).exists()


def test_a_missing_image_is_an_error_naming_file_and_line_and_keeps_dist(tmp_path):
    root = site(tmp_path, {"index": "Intro.\n"})
    build_site(root)
    before = (root / "dist/index.html").read_bytes()
    (root / "content/index.md").write_text("---\ntitle: Index\n---\n\nIntro.\n\n![A red box](pic.png)\n")
    with pytest.raises(UserError) as error:
        build_site(root)
    assert (error.value.path, error.value.line) == ("content/index.md", 7)
    assert "image pic.png: no such file (content/pic.png)" in error.value.message
    assert (root / "dist/index.html").read_bytes() == before


@pytest.mark.parametrize(
    "src, message",
    [
        ("../../outside.png", "outside the project folder"),
        ("https://example.com/a.png", "only image files inside the project"),
        ("notes.txt", "use PNG, JPEG, SVG or WebP"),
        ("fake.png", "not a readable image"),
    ],
)
def test_images_that_cannot_be_published_are_errors(tmp_path, src, message):
    root = site(tmp_path, {"index": f"![x]({src})\n"}, content__notes_dot_txt="hi", content__fake_dot_png="not a png")
    (tmp_path / "outside.png").write_bytes(b"")
    with pytest.raises(UserError, match=re.escape(message)):
        build_site(root)


def test_an_image_without_alt_text_is_a_warning(tmp_path, capsys):
    root = site(tmp_path, {"index": "Text.\n\n![](box.png)\n"})
    Image.new("RGB", (10, 10)).save(root / "content/box.png")
    assert cli.main(["build", "--root", str(root)]) == 0
    err = capsys.readouterr().err
    assert "warning: content/index.md:7: image box.png has no alt text" in err


# -- citations


def test_citations_author_year_with_generated_references(tmp_path):
    root = site(tmp_path, {"index": "As @balestriero2025lejepa argue, and others agree [@chen2020simple; @balestriero2025lejepa].\n"}, references_dot_bib=BIB)
    build_site(root)
    html = article(root, "index")
    text = re.sub(r"<[^>]+>", "", html)
    assert "As Balestriero and LeCun (2025) argue, and others agree (Chen et al., 2020; Balestriero and LeCun, 2025)." in text
    assert html.count('href="#ref-balestriero2025lejepa"') == 3
    refs = html[html.index('<section class="references"'):]
    assert refs.index('id="ref-balestriero2025lejepa"') < refs.index('id="ref-chen2020simple"')  # sorted by author
    assert "Ting Chen, Simon Kornblith, Mohammad Norouzi, Geoffrey Hinton (2020). <em>A Simple Framework" in refs
    assert "ICML." in refs


def test_numbered_citations_link_to_the_bibliography_page(tmp_path):
    root = site(
        tmp_path,
        {"index": "See [@chen2020simple] and @balestriero2025lejepa.\n", "refs": "```bibliography\n```\n"},
        references_dot_bib=BIB,
        site_dot_toml='citation_style = "numbered"\n',
    )
    build_site(root)
    html = article(root, "index")
    assert re.sub(r"<[^>]+>", "", html).count("See [2] and Balestriero and LeCun [1].") == 1
    assert 'href="refs.html#ref-chen2020simple"' in html and 'class="references"' not in html
    bib = article(root, "refs")
    assert bib.index("[1]</span> Randall Balestriero") < bib.index("[2]</span> Ting Chen")


def test_an_unknown_citation_key_says_did_you_mean(tmp_path):
    root = site(tmp_path, {"index": "Text.\n\nSee [@chen2020simpel].\n"}, references_dot_bib=BIB)
    with pytest.raises(UserError) as error:
        build_site(root)
    assert (error.value.path, error.value.line) == ("content/index.md", 7)
    assert "citation @chen2020simpel: no such entry in references.bib; did you mean @chen2020simple?" in error.value.message


def test_a_broken_bib_entry_names_its_line(tmp_path):
    root = site(tmp_path, {"index": "[@chen2020simple]\n"}, references_dot_bib=BIB + "\n@misc{broken, title = {no end}\n")
    with pytest.raises(UserError) as error:
        build_site(root)
    broken_line = (BIB + "\n").count("\n") + 1  # the line of "@misc{broken"
    assert (error.value.path, error.value.line) == ("references.bib", broken_line)


def test_emails_and_handles_are_not_citations(tmp_path):
    root = site(tmp_path, {"index": "Write to someone@example.org.\n"})
    build_site(root)  # no references.bib needed: nothing is cited
    assert "someone@example.org" in article(root, "index")


def test_the_lejepa_report_cites_from_references_bib():
    root = Path(__file__).resolve().parents[1]
    bib = (root / "references.bib").read_text()
    chapters = "".join(p.read_text() for p in (root / "content").glob("*.md"))
    assert "references.md#" not in chapters  # every citation uses the [@key] syntax now
    cited = set(re.findall(r"@([a-z]+\d{4}[a-z]+)", chapters))
    assert cited and all(f"{{{key}," in bib for key in cited)


# -- fences, numbering


def test_a_fence_name_close_to_a_directive_warns(tmp_path, capsys):
    root = site(tmp_path, {"index": "Text.\n\n```charts\nsource: x\n```\n\n```python\nx = 1\n```\n"})
    assert cli.main(["build", "--root", str(root)]) == 0
    err = capsys.readouterr().err
    assert "warning: content/index.md:7: ```charts is shown as a code block; did you mean ```chart?" in err
    assert "python" not in err


def test_the_home_page_prints_no_figure_or_equation_numbers(tmp_path):
    root = site(
        tmp_path,
        {"index": "$$\nx = 1 \\label{eq:home}\n$$\n\nSee \\eqref{eq:home} and \\ref{eq:one}.\n", "one": "$$\ny = 2 \\label{eq:one}\n$$\n"},
    )
    build_site(root)
    home = article(root, "index")
    assert "(1)" not in re.sub(r"<[^>]+>", "", home) and "\\tag" not in home
    assert '<a class="xref" href="#eq:home">the equation</a>' in home
    assert '<a class="xref" href="one.html#eq:one">(1.1)</a>' in home


# -- new, --help


def test_new_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert cli.main(["new", str(tmp_path / "taken")]) == 1
    assert "already exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]


def test_new_writes_a_project_with_a_pages_workflow(tmp_path):
    files = {p.relative_to(tmp_path / "r").as_posix() for p in create_project(tmp_path / "r")}
    assert {".github/workflows/pages.yml", ".gitignore", "site.toml", "references.bib", "content/index.md", "content/method.md", "exports/runs/example/history.csv"} <= files
    result = build_site(tmp_path / "r")
    assert result.warnings == [] and result.charts == 1
    assert cli.main(["check", "--strict", "--root", str(tmp_path / "r")]) == 0  # strict: no warning at all


BLOCK_OPTIONAL = "import sys\nfor m in ('torch', 'wandb', 'safetensors'): sys.modules[m] = None\nfrom site_builder import cli\nsys.exit(cli.main([sys.argv[1], '--help']))"


@pytest.mark.parametrize(
    "command",
    [
        *(c for c in cli.COMMANDS if c not in ("analyze", "train")),
        "analyze",  # analyze/command.py is a thin CLI over the library (issue 16): torch only when it runs
        "train",
    ],
)
def test_help_works_without_the_optional_packages(command):
    done = subprocess.run([sys.executable, "-c", BLOCK_OPTIONAL, command], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")


def test_a_project_template_overrides_the_theme_file_by_file(tmp_path):
    from site_builder.site.fingerprint import THEME

    root = site(tmp_path, {"index": "Hello.\n"})
    (root / "templates").mkdir()
    page = (THEME / "page.html").read_text().replace("</article>", '</article>\n<footer class="lab-footer">Our lab</footer>')
    (root / "templates" / "page.html").write_text(page)
    build_site(root)
    html = (root / "dist" / "index.html").read_text()
    assert '<footer class="lab-footer">Our lab</footer>' in html  # the project's page.html
    assert 'class="theme-toggle"' in html  # base.html, still the theme's
    assert "<footer" not in (root / "dist" / "404.html").read_text()  # 404.html: the theme's
