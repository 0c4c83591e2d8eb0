"""Faults around the build process (issue 9): a build SIGKILLed at random points leaves a whole dist/
(the previous one, or the finished new one, never a mix) and the next build succeeds; two builds at once
do not corrupt dist/; a read-only output folder is a one-line error.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_hostile_content import GOOD, chapter, snapshot, write

REPO = Path(__file__).resolve().parents[1]
KILLS = 6  # random kill points per run of the test (seeded: the seed is printed and in the failure message)


def build_cmd(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "site_builder", "build", "--root", str(root), *extra]


def run_build(root: Path, *extra: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(build_cmd(root, *extra), cwd=REPO, capture_output=True, text=True, **kwargs)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if ".tmp-" in p.name)


@pytest.fixture
def two_versions(tmp_path) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    """A site built at version 1 (its dist/ snapshot) and version 2's dist/ built in a separate copy."""
    v2_chapter = chapter("## First\n\nVersion two, $y = x^3$.\n\n```chart\nsource: runs/r/history.csv\ny: probe/test_acc\n```", "A", 1)
    reference = write(tmp_path / "reference", {**GOOD, "content/a.md": v2_chapter})
    result = run_build(reference)
    assert result.returncode == 0, result.stderr
    site = write(tmp_path / "site", GOOD)
    result = run_build(site)
    assert result.returncode == 0, result.stderr
    v1 = snapshot(site / "dist")
    write(site, {"content/a.md": v2_chapter})
    v2 = snapshot(reference / "dist")
    assert v1 != v2
    return site, v1, v2


def test_sigkill_at_random_points_leaves_a_whole_dist(two_versions):
    site, v1, v2 = two_versions
    start = time.perf_counter()
    assert run_build(site, "--force").returncode == 0  # how long a full build takes here
    duration = time.perf_counter() - start
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    seen = []
    for i in range(KILLS):
        restore_v1(site, v1)  # each kill starts from version 1's dist/: a kill before the swap must leave exactly v1
        delay = rng.uniform(i, i + 1) / KILLS * 1.1 * duration  # one random point in each slice of the build
        proc = subprocess.Popen(build_cmd(site, "--force"), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = snapshot(site / "dist")
        state = "v1" if now == v1 else "v2" if now == v2 else "MIXED"
        seen.append((round(delay, 2), proc.returncode, state))
        assert state != "MIXED", (seed, seen)
    print(f"\nseed {seed}, full build {duration:.2f} s, kills (delay s, exit, dist): {seen}")
    # and one kill aimed at the riskiest moment: while the new dist/ is being written beside the old one
    restore_v1(site, v1)
    proc = subprocess.Popen(build_cmd(site, "--force"), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not leftovers(site) and proc.poll() is None:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert snapshot(site / "dist") in (v1, v2)
    restore_v1(site, v1)
    result = run_build(site)  # not forced: the fingerprint must not claim an interrupted build finished
    assert result.returncode == 0, result.stderr
    assert snapshot(site / "dist") == v2
    assert leftovers(site) == []  # the next real build swept what the killed ones left beside dist/


def restore_v1(site: Path, v1: dict[str, bytes]) -> None:
    shutil.rmtree(site / "dist")
    for rel, data in v1.items():
        path = site / "dist" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_two_builds_at_once_leave_one_whole_dist(two_versions):
    site, v1, _ = two_versions
    procs = [subprocess.Popen(build_cmd(site, "--force"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    together = snapshot(site / "dist")
    assert leftovers(site) == []
    assert run_build(site, "--force").returncode == 0
    assert together == snapshot(site / "dist") != v1  # exactly what one build alone writes


def without_root_override() -> None:
    """preexec_fn: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so that even
    root obeys permission bits in the child (root would otherwise write into a read-only folder)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH (linux/capability.h)
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_read_only_output_folder_is_a_clear_error(tmp_path):
    site = write(tmp_path / "site", GOOD)
    out_parent = tmp_path / "published"
    out_parent.mkdir()
    first = run_build(site, "--out", str(out_parent / "dist"))
    assert first.returncode == 0, first.stderr
    before = snapshot(out_parent / "dist")
    write(site, {"content/b.md": chapter("## Second\n\nChanged.", "B", 2)})
    os.chmod(out_parent, 0o555)
    try:
        result = run_build(site, "--out", str(out_parent / "dist"), preexec_fn=without_root_override if os.geteuid() == 0 else None)
    finally:
        os.chmod(out_parent, 0o755)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert str(out_parent) in lines[0] and "ermission denied" in lines[0]
    assert snapshot(out_parent / "dist") == before
