"""`site_builder train` end to end on the CPU with a tiny config: wandb offline logging read back by our
fetch stage, checkpoints, resume that repeats an uninterrupted run exactly, DDP with two gloo
processes, and one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from site_builder import cli  # noqa: E402
from site_builder.train.checkpoint import load_model, read_checkpoint  # noqa: E402
from tests.test_train_data import make_shards  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    # 3 images of each of the 100 classes: one per class is held out for validation, 200 train (3 steps of 64).
    md5s = {"train": make_shards(folder, "train", 3, 100, seed=0), "test": make_shards(folder, "test", 1, 40, seed=1)}
    return folder, [f"--md5=train={md5s['train']}", f"--md5=test={md5s['test']}"]


def train_args(data, md5_args, out, name="lejepa-nano-c100", *extra):
    return ["train", "--name", name, "--data", str(data), *md5_args, "--tiny", "--device", "cpu",
            "--batch-size", "64", "--epochs", "2", "--out", str(out), "--log-every", "3", "--val-per-class", "1",
            *extra]


def run_cli(args, cwd: Path, torchrun: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_SILENT": "true"}
    prefix = [sys.executable, "-m", "site_builder"]
    if torchrun:
        prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(torchrun),
                  "-m", "site_builder"]
    return subprocess.run(prefix + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def test_run_logs_the_site_metrics_to_wandb_offline_and_fetch_exports_them(tiny_data, tmp_path, monkeypatch):
    data, md5 = tiny_data
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert cli.main(train_args(data, md5, tmp_path / "ck") + ["--wandb-dir", str(tmp_path)]) == 0
    offline = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert cli.main(["fetch", str(offline[0]), "--out", str(tmp_path / "exports")]) == 0
    run_dir = tmp_path / "exports" / "lejepa-nano-c100"
    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (200 // 64)  # one row per step
    for key in ("train/loss", "train/sigreg", "train/inv", "train/lr", "probe/train_loss", "epoch", "probe/val_acc"):
        assert key in rows[0], key
    assert [r["epoch"] for r in rows if r["epoch"]] == ["1", "2"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0 <= summary["final_probe/val_top1"] <= summary["final_probe/val_top5"] <= 1
    assert 0 <= summary["knn/val_top1"] <= 1 and summary["repr/effective_rank"] > 1
    assert not any(k.startswith(("final_probe/test", "knn/test")) for k in summary)  # no --eval-test: test unread
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train/lam"] == 0.02 and config["model/depth"] == 1 and config["aug/local_views"] == 6
    assert config["data/train_size"] == 200 and config["data/val_size"] == 100 and len(config["data/val_sha256"]) == 64
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert config["code/git_commit"] == head and isinstance(config["code/git_dirty"], bool)
    assert config["dist/world_size"] == 1
    model, info = load_model(tmp_path / "ck" / "lejepa-nano-c100" / "final")
    assert info["epoch"] == 2 and info["run_config"] == config | {k: v for k, v in info["run_config"].items()
                                                                   if k not in config}


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tiny_data, tmp_path):
    data, md5 = tiny_data
    assert cli.main(train_args(data, md5, tmp_path / "a", "lejepa-nano-c100", "--no-wandb")) == 0
    stop_after_one_epoch = ["--no-wandb", "--time-limit-min", "1e-9"]
    assert cli.main(train_args(data, md5, tmp_path / "b", "lejepa-nano-c100", *stop_after_one_epoch)) == 0
    assert not (tmp_path / "b" / "lejepa-nano-c100" / "final").exists()
    assert read_checkpoint(tmp_path / "b" / "lejepa-nano-c100" / "last")[0]["epoch"] == 1
    assert cli.main(train_args(data, md5, tmp_path / "b", "lejepa-nano-c100", "--no-wandb")) == 0
    _, wa, _ = read_checkpoint(tmp_path / "a" / "lejepa-nano-c100" / "final")
    _, wb, _ = read_checkpoint(tmp_path / "b" / "lejepa-nano-c100" / "final")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_resume_refuses_a_different_config(tiny_data, tmp_path, capsys):
    data, md5 = tiny_data
    args = train_args(data, md5, tmp_path, "lejepa-nano-c100", "--no-wandb", "--time-limit-min", "1e-9")
    assert cli.main(args) == 0
    assert cli.main(args + ["--lr", "0.5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different config" in err[0] and "last" in err[0]


def test_ddp_with_two_gloo_processes_stops_together_and_resumes(tiny_data, tmp_path):
    data, md5 = tiny_data
    args = train_args(data, md5, tmp_path / "ck", "infonce-nano-c100", "--no-wandb")
    first = run_cli(args + ["--time-limit-min", "1e-9"], tmp_path, torchrun=2)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "world 2" in first.stdout and "time limit reached at epoch 1" in first.stdout
    second = run_cli(args, tmp_path, torchrun=2)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming infonce-nano-c100" in second.stdout and "final evaluation" in second.stdout and "final_probe/val_top1" in second.stdout
    model, info = load_model(tmp_path / "ck" / "infonce-nano-c100" / "final")
    assert info["step"] == 2 * (200 // 64) and info["run_config"]["train/objective"] == "infonce"
    assert info["run_config"]["dist/world_size"] == 2 and info["run_config"]["dist/backend"] == "gloo"


def test_bad_input_is_one_line(tiny_data, tmp_path, capsys):
    data, md5 = tiny_data
    assert cli.main(train_args(data, ["--md5=train=" + "0" * 32], tmp_path, "x", "--objective", "lejepa")) == 1
    assert cli.main(train_args(data, md5, tmp_path, "my-run")) == 1  # not a preset, no --objective
    assert cli.main(train_args(tmp_path / "missing", md5, tmp_path)) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert "md5 of the train images" in lines[0] and str(data) in lines[0]
    assert "--objective" in lines[1]
    assert "does not exist" in lines[2]


def test_sweep_runs_never_read_the_test_split_and_a_final_model_scores_it_once(tiny_data, tmp_path):
    data, md5 = tiny_data
    train_only = tmp_path / "train-only"
    train_only.mkdir()
    for shard in data.glob("train-*.npz"):
        (train_only / shard.name).symlink_to(shard)
    # No test shards at all: a sweep run (no --eval-test) still trains and evaluates on validation.
    assert cli.main(train_args(train_only, md5, tmp_path / "a", "lejepa-nano-c100", "--no-wandb")) == 0
    # A final model reads the test split at the end, and fails clearly when it is missing.
    assert cli.main(train_args(train_only, md5, tmp_path / "b", "lejepa-nano-c100", "--no-wandb", "--eval-test")) == 1
    summary = {}
    from site_builder.train import command, trainer

    args = train_args(data, md5, tmp_path / "c", "infonce-nano-c100", "--no-wandb", "--eval-test")[1:]
    parser = __import__("argparse").ArgumentParser()
    command.configure(parser)
    summary = trainer.Trainer(command.build_config(parser.parse_args(args))).fit()
    assert 0 <= summary["final_probe/test_top1"] <= summary["final_probe/test_top5"] <= 1
    assert 0 <= summary["knn/test_top1"] <= 1
    assert summary["final_probe/weight_decay"] in (1e-4, 1e-3, 1e-2)


def test_explicit_flags_override_the_size_preset_and_defaults_live_in_the_dataclasses():
    import argparse

    from site_builder.train import command
    from site_builder.train.augment import AugConfig
    from site_builder.train.trainer import TrainConfig

    parser = argparse.ArgumentParser()
    command.configure(parser)
    cfg = command.build_config(parser.parse_args(["--name", "lejepa-nano-c100", "--data", "d"]))
    assert cfg == TrainConfig(run="lejepa-nano-c100", data="d", objective="lejepa", lam=0.02)
    cfg = command.build_config(parser.parse_args(
        ["--name", "r", "--data", "d", "--objective", "infonce", "--size", "vit-s16-224", "--depth", "2",
         "--global-scale", "0.5", "1", "--local-views", "0", "--no-compile", "--drop-path", "0.1"]))
    assert (cfg.model.patch_size, cfg.model.width, cfg.model.depth, cfg.model.drop_path) == (16, 384, 2, 0.1)
    assert cfg.aug.global_size == 224 and cfg.aug.global_scale == (0.5, 1.0) and cfg.aug.local_views == 0
    assert cfg.aug.local_scale == AugConfig().local_scale and cfg.compile is False


def test_a_vit_s16_at_224_pixels_trains_on_upsampled_views_and_is_probed_at_224(tiny_data, tmp_path):
    """The 224-pixel preset (issue 14), shrunk in width and depth for the CPU: views are up-sampled crops,
    the checkpoint records patch 16 and 224-pixel views, and the probes see 14 x 14 patch grids."""
    data, md5 = tiny_data
    args = train_args(data, md5, tmp_path / "ck", "lejepa-nano-c100", "--no-wandb", "--size", "vit-s16-224",
                      "--depth", "1", "--width", "32", "--heads", "2", "--proj-hidden", "32", "--proj-dim", "8",
                      "--num-slices", "8", "--local-views", "2")
    args[args.index("--epochs") + 1] = "1"
    assert cli.main([a for a in args if a != "--tiny"]) == 0
    model, info = load_model(tmp_path / "ck" / "lejepa-nano-c100" / "final")
    config = info["run_config"]
    assert (config["model/patch_size"], config["aug/global_size"], config["aug/local_size"]) == (16, 224, 96)
    from site_builder.train.data import normalize

    images = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    _, patches = model.forward_features(normalize(images, config["aug/global_size"]))
    assert patches.shape[1] == 14 * 14
