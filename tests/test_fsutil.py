"""Atomic writes: a failed write or a failed staged folder leaves the previous output intact."""

import os

import pytest

from site_builder.fsutil import recover_dir, staged_dir, write_json_atomic, write_text_atomic


def test_write_text_atomic_replaces_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "a" / "page.html"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["page.html"]


def test_json_is_deterministic(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"b": 1, "a": [1.5, None]})
    write_json_atomic(tmp_path / "b.json", {"a": [1.5, None], "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_staged_dir_swaps_in_whole_folder(tmp_path):
    out = tmp_path / "dist"
    with staged_dir(out) as tmp:
        (tmp / "index.html").write_text("v1")
    with staged_dir(out) as tmp:
        (tmp / "index.html").write_text("v2")
        (tmp / "other.html").write_text("v2")
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "other.html"]
    assert (out / "index.html").read_text() == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["dist"]


def test_staged_dir_keeps_previous_output_on_error(tmp_path):
    out = tmp_path / "dist"
    with staged_dir(out) as tmp:
        (tmp / "index.html").write_text("good")
    with pytest.raises(RuntimeError):
        with staged_dir(out) as tmp:
            (tmp / "index.html").write_text("half")
            raise RuntimeError("build failed")
    assert (out / "index.html").read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["dist"]


def test_recover_dir_restores_folder_moved_aside_by_a_crash(tmp_path):
    out = tmp_path / "dist"
    old = tmp_path / "dist.tmp-old"
    old.mkdir()
    (old / "index.html").write_text("previous")
    recover_dir(out)
    assert (out / "index.html").read_text() == "previous"
    assert not old.exists()
