"""Output folders and partial output (issue 19, items 1 and 4): an output folder that is, contains or lies
inside an input or the project is refused before anything is touched; a build that cannot finish
leaves the previous output and no temporary files; lock and temporary files do not pile up.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from site_builder import cli
from tests.conftest import sigint_as_in_a_terminal
from test_hostile_content import build, site, snapshot, write  # noqa: F401 (site: fixture)
from test_hostile_runs import runs  # noqa: F401 (fixture: real offline wandb runs)

REPO = Path(__file__).resolve().parents[1]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root except dist/ and .cache/ (what a refused command must leave alone)."""
    return {k: v for k, v in snapshot(root).items() if not k.startswith(("dist/", ".cache/"))}


def run_cli(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    err = io.StringIO()
    old = Path.cwd()
    try:
        if cwd:
            os.chdir(cwd)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = cli.main(list(args))
    finally:
        os.chdir(old)
    return rc, err.getvalue()


def assert_one_error(rc: int, err: str, *parts: str) -> None:
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("error: "), (rc, err)
    for part in parts:
        assert part in lines[0], (part, lines[0])


@pytest.mark.parametrize("out", [".", "content", "exports", "templates", "exports/runs", "content/sub", "..", "site.toml"])
def test_build_refuses_an_output_folder_that_would_delete_inputs(site, out):
    (site / "templates").mkdir(exist_ok=True)
    (site / "templates" / "keep.txt").write_text("mine")
    before, dist = tree(site), snapshot(site / "dist")
    rc, err = run_cli("build", "--root", str(site), "--out", str(site / out))
    assert_one_error(rc, err, "--out")
    assert tree(site) == before and snapshot(site / "dist") == dist
    assert sorted(p.name for p in site.parent.iterdir()) == ["site"]  # nothing staged beside the project either


def test_build_refuses_an_existing_folder_it_did_not_write(site, tmp_path):
    other = tmp_path / "photos"
    write(other, {"holiday.jpg": b"\xff\xd8 not ours"})
    rc, err = run_cli("build", "--root", str(site), "--out", str(other))
    assert_one_error(rc, err, "--out", ".build-id")
    assert snapshot(other) == {"holiday.jpg": b"\xff\xd8 not ours"}
    # an empty folder, a new one and an earlier build's output are fine
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new", tmp_path / "new"):
        rc, err = run_cli("build", "--root", str(site), "--out", str(out))
        assert rc == 0 and "error" not in err, err
        assert (out / "index.html").is_file()


def test_an_output_path_under_a_regular_file(site):
    rc, err = run_cli("build", "--root", str(site), "--out", str(site / "site.toml" / "dist"))
    assert_one_error(rc, err, "not a folder")


def test_fetch_and_analyze_refuse_output_folders_over_their_inputs(tmp_path):
    wandb_dir = tmp_path / "wandb"
    write(wandb_dir, {"offline-run-20260101_000000-abc/run-abc.wandb": b"junk", "keep.txt": "mine"})
    before = snapshot(tmp_path)
    for args in (["--all-offline", str(wandb_dir), "--out", str(wandb_dir)],
                 ["--all-offline", str(wandb_dir), "--out", str(tmp_path)],
                 ["--all-offline", str(wandb_dir), "--out", str(wandb_dir / "offline-run-20260101_000000-abc")],
                 [str(wandb_dir / "offline-run-20260101_000000-abc"), "--out", "."]):
        rc, err = run_cli("fetch", *args, cwd=tmp_path)
        assert_one_error(rc, err, "--out")
    data = write(tmp_path / "data", {"x.npz": b"shard"})
    for out in (data, tmp_path, data / "sub"):
        rc, err = run_cli("analyze", "--random-init", "--data", str(data), "--out", str(out), "--device", "cpu", cwd=tmp_path)
        assert_one_error(rc, err, "--out")
    assert snapshot(tmp_path) == {**before, "data/x.npz": b"shard"}


def test_fetch_never_replaces_a_folder_that_is_not_an_export(runs, tmp_path):
    out = write(tmp_path / "runs", {"notes/todo.txt": "mine"})
    rc, err = run_cli("fetch", str(runs["plain"]), "--name", "notes", "--out", str(out), cwd=tmp_path)
    assert_one_error(rc, err, "--out", "meta.json")
    assert snapshot(out) == {"notes/todo.txt": b"mine"}
    assert run_cli("fetch", str(runs["plain"]), "--name", "plain", "--out", str(out), cwd=tmp_path)[0] == 0
    assert run_cli("fetch", str(runs["plain"]), "--name", "plain", "--out", str(out), cwd=tmp_path)[0] == 0  # its own export


def test_read_only_folders_inside_dist_do_not_fail_a_finished_build(site):
    (site / "dist" / "data").chmod(0o555)
    write(site, {"content/b.md": "---\ntitle: B\norder: 2\n---\n\n## Second\n\nChanged.\n"})
    try:
        rc, out, err = build(site)
    finally:
        for p in site.rglob("*"):
            if p.is_dir():
                p.chmod(0o755)
    assert rc == 0, err
    assert b"Changed." in (site / "dist" / "b.html").read_bytes()
    assert not [p.name for p in site.iterdir() if ".tmp-" in p.name]


def test_lock_files_do_not_pile_up(site, tmp_path, monkeypatch):
    locks = tmp_path / "system-tmp"  # this test's own temp folder: other processes' locks are not counted
    locks.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(locks))
    for i in range(3):
        write(site, {"content/b.md": f"---\ntitle: B\norder: 2\n---\n\nVersion {i}.\n"})
        assert build(site)[0] == 0
    assert list(locks.iterdir()) == []


def wait_for_sigterm_handler(proc: subprocess.Popen) -> bool:
    """Wait until the process catches SIGTERM (its SigCgt mask in /proc has bit 15 - 1); False if it never did."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return True
        time.sleep(0.005)
    return False


def test_stale_cache_temporaries_are_swept_and_sigterm_cleans_up(site):
    stale = site / ".cache" / "build" / "katex-x.json.tmp-killed"
    stale.write_text("half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = site / ".cache" / "build" / "other.tmp-live"  # a concurrent build's file: not touched
    fresh.write_text("writing")
    write(site, {"content/b.md": "---\ntitle: B\norder: 2\n---\n\nAgain.\n"})
    assert build(site)[0] == 0
    assert not stale.exists() and fresh.exists()
    fresh.unlink()
    # SIGTERM at several points of a full build: never a traceback, never a temporary file left behind
    for delay in (0.0, 0.3, 0.7, 1.2):
        proc = subprocess.Popen([sys.executable, "-m", "site_builder", "build", "--force", "--root", str(site)],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_for_sigterm_handler(proc)  # (before it, the interpreter is still starting: nothing to clean up)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        finished = out.startswith("built ")  # a signal during interpreter shutdown (handlers reset) kills it: -15
        assert proc.returncode in (0, 143) or (proc.returncode == -15 and finished), (proc.returncode, err)
        assert not [p for p in site.rglob("*") if ".tmp-" in p.name]
    assert build(site)[0] == 0


def test_ctrl_c_during_formula_rendering_prints_no_worker_tracebacks(site):
    formulas = " ".join(f"$x_{{{i}}}^{{{i + 1}}} + \\frac{{a}}{{b_{i}}}$" for i in range(3000))  # a pool renders them for seconds
    write(site, {"content/b.md": f"---\ntitle: B\norder: 2\n---\n\n{formulas}\n"})
    before = snapshot(site / "dist")
    proc = subprocess.Popen([sys.executable, "-m", "site_builder", "build", "--jobs", "2", "--root", str(site)],
                            cwd=REPO, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_as_in_a_terminal)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 60
    while proc.poll() is None and not children.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the build ended before its pool started"
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode in (0, 130), (proc.returncode, err)
    if proc.returncode == 130:
        assert snapshot(site / "dist") == before
    assert not [p for p in site.rglob("*") if ".tmp-" in p.name]


def test_a_full_disk_is_one_line_naming_the_output(site, monkeypatch):
    import errno
    import pathlib

    def full(self, data):  # what write(2) reports on a full disk: ENOSPC, and no file name
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    before = snapshot(site / "dist")
    write(site, {"content/b.md": "---\ntitle: B\norder: 2\n---\n\nNew.\n"})
    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    rc, err = run_cli("build", "--root", str(site))
    assert_one_error(rc, err, str(site / "dist"), "No space left on device")
    monkeypatch.undo()
    assert snapshot(site / "dist") == before
    assert not [p.name for p in site.iterdir() if ".tmp-" in p.name]
