"""Real tiny models for the explorer tests: two `train --tiny` runs (LeJEPA and lambda = 0) on random
CIFAR-shaped shards, analysed by `analyze --explorers` into a project's exports/ (CPU, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

from site_builder import cli
from tests.test_train_data import make_shards

TEST_IMAGES = 200  # two tiles of the atlas; every super-class present (labels cycle through 0-99)
RUNS = {"LeJEPA": ("tiny-lejepa", "0.02"), "lambda 0": ("tiny-lambda0", "0")}


def make_data(folder: Path) -> list[str]:
    md5 = {"train": make_shards(folder, "train", 1, 200, seed=0), "test": make_shards(folder, "test", 2, TEST_IMAGES // 2, seed=1)}
    (folder / "classes.json").write_text(json.dumps([f"fine{i}" for i in range(100)]))
    (folder / "coarse_classes.json").write_text(json.dumps([f"coarse_{i}" for i in range(20)]))
    return [f"--md5=train={md5['train']}", f"--md5=test={md5['test']}"]


def make_exports(root: Path, monkeypatch) -> tuple[Path, str]:
    """exports/explorers/<run>/ of both runs and the shared atlas under `root`; returns the data folder and
    the md5 of its test images (set it as data.SHARD_MD5['test'] to run analyze on it again)."""
    from site_builder.train import data

    folder = root / "data"
    md5_args = make_data(folder)
    monkeypatch.setitem(data.SHARD_MD5, "test", md5_args[1].split("=")[-1])  # analyze has no --md5
    for name, lam in RUNS.values():
        assert cli.main(["train", "--name", name, "--objective", "lejepa", "--lam", lam, "--data", str(folder),
                         *md5_args, "--tiny", "--device", "cpu", "--batch-size", "64", "--epochs", "1",
                         "--out", str(root / "checkpoints"), "--no-wandb", "--no-compile", "--val-per-class", "1"]) == 0
        assert cli.main(["analyze", "--checkpoint", str(root / "checkpoints" / name / "final"), "--data", str(folder),
                         "--out", str(root / "exports" / "explorers"), "--device", "cpu", "--images", "34,121",
                         "--explorers"]) == 0
    return folder, md5_args[1].split("=")[-1]
