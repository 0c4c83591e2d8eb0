"""Panels charts as comparison grids: PNG sprites (decoded here with Pillow), one row per model."""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from site_builder.charts.figures import build_chart
from site_builder.errors import UserError
from site_builder.site.build import build_site
from tests.conftest import write_site


def decode(data_url: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix):]))))


def attention_file(maps: dict[tuple[str, str], list]) -> str:
    """{(frame, image): 2x2 map}: per image one head 'h1' and 'image · mean' (as analyze writes them)."""
    panels = []
    for (frame, image), z in maps.items():
        panels += [{"title": "h1", "frame": frame, "z": z}, {"title": f"{image} · mean", "frame": frame, "z": z}]
    return json.dumps({"frame_label": "layer", "columns": 2, "panels": panels})


def pictures_file(images: dict[str, list]) -> str:
    panels = []
    for image, rgb in images.items():
        panels += [{"title": f"{image} · input", "rgb": rgb}, {"title": f"{image} · PCA", "rgb": [[[0, 0, 0]]]}]
    return json.dumps({"panels": panels})


UNIFORM = [[0.25, 0.25], [0.25, 0.25]]
PEAKED = [[1.0, 0.0], [0.0, 0.0]]  # 4 times uniform on one patch
RED, BLUE = [[[255, 0, 0]] * 4] * 4, [[[0, 0, 255]] * 4] * 4


@pytest.fixture
def exports(tmp_path):
    write_site(tmp_path, {
        "exports/a/att.json": attention_file({("1", "fox"): UNIFORM, ("1", "cat"): PEAKED, ("2", "fox"): PEAKED, ("2", "cat"): UNIFORM}),
        "exports/b/att.json": attention_file({("1", "fox"): PEAKED, ("1", "cat"): [[None, None], [None, None]], ("2", "fox"): UNIFORM, ("2", "cat"): UNIFORM}),
        "exports/a/pca.json": pictures_file({"fox": RED, "cat": BLUE}),
    })
    return tmp_path / "exports"


def grid(exports, **spec):
    spec = {"type": "panels", "source": {"A": "a/att.json", "B": "b/att.json"}, "images": "a/pca.json", **spec}
    return build_chart(spec, exports).figure


def test_rows_are_models_and_columns_images(exports):
    figure = grid(exports)
    assert [row["label"] for row in figure["rows"]] == ["A", "B"]
    assert figure["images"] == ["fox", "cat"]
    assert figure["views"] == ["h1", "mean"]
    assert [f["label"] for f in figure["frames"]] == ["1", "2"]


def test_attention_sprites_share_one_scale_in_multiples_of_uniform(exports):
    view = grid(exports)["rows"][0]["views"]["mean"]
    sprite = decode(view["png"])
    assert view["scale"] == "uniform" and view["cell"] == [2, 2]
    assert sprite.shape == (2 * 2, 2 * 2)  # frames down (2 x 2 px), images across (2 x 2 px)
    fox_1, cat_1 = sprite[0:2, 0:2], sprite[0:2, 2:4]
    assert (fox_1 == 0).all()  # uniform attention: no colour at all
    # one patch at 4x uniform: log2(4) / log2(16) of the top colour, the others at (or below) uniform: none
    assert cat_1[0, 0] == round(255 * math.log2(4) / math.log2(16)) and (cat_1.ravel()[1:] == 0).all()
    assert view["range"][0][1] == [0.0, 1.0]


def test_a_map_without_values_is_marked_not_drawn_as_zero(exports):
    view = grid(exports)["rows"][1]["views"]["mean"]
    assert view["range"][0][1] == "nan"
    assert view["range"][0][0] == [0.0, 1.0]


def test_pictures_come_from_the_images_file(exports):
    inputs = grid(exports)["inputs"]
    picture = decode(inputs["png"])
    assert inputs["cell"] == [4, 4] and inputs["present"] == [True, True]
    assert (picture[:, :4] == [255, 0, 0]).all() and (picture[:, 4:] == [0, 0, 255]).all()


def test_heat_maps_that_are_not_distributions_use_their_own_range(tmp_path):
    panels = {"panels": [{"title": "x · signal", "z": [[-2.0, 0.0], [2.0, 6.0]]}]}
    write_site(tmp_path, {"exports/p.json": json.dumps(panels)})
    view = build_chart({"type": "panels", "source": "p.json"}, tmp_path / "exports").figure["rows"][0]["views"]["signal"]
    assert view["scale"] == "range" and view["range"] == [[[-2.0, 6.0]]]
    assert decode(view["png"]).tolist() == [[0, 64], [128, 255]]


def test_images_are_exact_and_upscaling_is_left_to_the_browser(tmp_path):
    rgb = [[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [200, 210, 220]]]
    write_site(tmp_path, {"exports/p.json": json.dumps({"panels": [{"title": "fox · PCA", "rgb": rgb}]})})
    view = build_chart({"type": "panels", "source": "p.json"}, tmp_path / "exports").figure["rows"][0]["views"]["PCA"]
    assert decode(view["png"]).tolist() == rgb


def test_panels_of_one_view_must_share_a_size(tmp_path):
    panels = {"panels": [{"title": "a · m", "z": [[0.5, 0.5]]}, {"title": "b · m", "z": [[1.0]]}]}
    write_site(tmp_path, {"exports/p.json": json.dumps(panels)})
    with pytest.raises(UserError, match="differ in size"):
        build_chart({"type": "panels", "source": "p.json"}, tmp_path / "exports")


def test_an_images_file_without_pictures_is_an_error(exports):
    with pytest.raises(UserError, match="no panel is an input picture"):
        grid(exports, images="a/att.json")


def test_a_missing_images_file_is_pending_and_the_chart_is_cached_on_it(tmp_path, exports):
    result = build_chart({"type": "panels", "source": {"A": "a/att.json"}, "images": "a/none.json"}, exports)
    assert result.figure is None and result.missing == ["a/none.json"]
    # the images file is part of the chart's inputs: changing it rebuilds the chart
    root = exports.parent
    write_site(root, {
        "site.toml": 'title = "T"\n',
        "content/index.md": "---\ntitle: T\n---\n\n```chart\ntype: panels\nsource: {A: a/att.json}\nimages: a/pca.json\n```\n",
    })
    build_site(root)
    first = (root / "dist/index.html").read_text()
    write_site(root, {"exports/a/pca.json": pictures_file({"fox": BLUE, "cat": RED})})
    build_site(root)
    assert (root / "dist/index.html").read_text() != first
