"""Checkpoint folders (safetensors shards under 16 MiB + checkpoint.json) and the fixed linear probe."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from site_builder.errors import UserError  # noqa: E402
from site_builder.train import checkpoint  # noqa: E402
from site_builder.train.checkpoint import load_model, read_checkpoint, save_checkpoint  # noqa: E402
from site_builder.train.model import ViT, ViTConfig  # noqa: E402
from site_builder.train.probe import extract_features, linear_probe  # noqa: E402


def test_full_size_random_init_round_trips_in_shards_under_16_mib(tmp_path):
    torch.manual_seed(0)
    model = ViT(ViTConfig()).eval()  # the report's ViT-nano, 76 MB in float32
    save_checkpoint(tmp_path / "ck", model, run_config={"train/lam": 0.02}, step=7, epoch=1)
    shards = sorted((tmp_path / "ck").glob("model-*.safetensors"))
    assert len(shards) >= 5 and all(f.stat().st_size < 16 * 2**20 for f in shards)
    loaded, info = load_model(tmp_path / "ck")
    assert info["step"] == 7 and info["run_config"] == {"train/lam": 0.02}
    assert info["model_config"] == ViTConfig().to_dict()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(loaded.forward_features(x)[0], model.forward_features(x)[0])


def test_bf16_checkpoint_loads_as_float32_rounded_weights(tmp_path):
    model = ViT(ViTConfig(width=32, depth=1, heads=2))
    save_checkpoint(tmp_path, model, dtype=torch.bfloat16)
    loaded, info = load_model(tmp_path / checkpoint.INFO_FILE)
    assert info["dtype"] == "bfloat16"
    for name, value in model.state_dict().items():
        got = loaded.state_dict()[name]
        assert got.dtype == torch.float32 and torch.equal(got, value.to(torch.bfloat16).float())


def test_a_tensor_larger_than_a_shard_is_split_and_joined(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "MAX_SHARD_BYTES", 4096)
    model = ViT(ViTConfig(width=32, depth=1, heads=2))
    big = torch.randn(100, 50)  # 20 kB: five pieces
    save_checkpoint(tmp_path, model, extra_tensors={"opt.0.exp_avg": big})
    _, weights, state = read_checkpoint(tmp_path)
    assert torch.equal(state["opt.0.exp_avg"], big)
    assert weights.keys() == model.state_dict().keys()
    assert len(list(tmp_path.glob("state-*.safetensors"))) >= 5


@pytest.mark.parametrize("damage, message", [
    ("truncate", "sha256 does not match"),
    ("delete", "missing"),
    ("foreign", "format"),
    ("no-info", "checkpoint.json is missing"),
])
def test_damaged_checkpoints_are_user_errors_naming_the_file(tmp_path, damage, message):
    save_checkpoint(tmp_path, ViT(ViTConfig(width=32, depth=1, heads=2)))
    shard = tmp_path / "model-00000.safetensors"
    info_path = tmp_path / checkpoint.INFO_FILE
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "delete":
        shard.unlink()
    elif damage == "foreign":
        info_path.write_text(json.dumps({"format": "someone-else/1"}))
    else:
        info_path.unlink()
    with pytest.raises(UserError, match=message) as err:
        load_model(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_linear_probe_learns_separable_features_and_not_shuffled_labels():
    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(10, 16, generator=gen) * 3
    y_train, y_test = torch.arange(1000) % 10, torch.arange(500) % 10
    x_train = centers[y_train] + 0.5 * torch.randn(1000, 16, generator=gen)
    x_test = centers[y_test] + 0.5 * torch.randn(500, 16, generator=gen)
    good = linear_probe(x_train, y_train, x_test, y_test, epochs=40, batch_size=100, num_classes=10)
    shuffled = linear_probe(x_train, y_train[torch.randperm(1000, generator=gen)], x_test, y_test,
                            epochs=40, batch_size=100, num_classes=10)
    assert good["top1"] > 0.9 and good["top5"] >= good["top1"]
    assert shuffled["top1"] < 0.3


def test_probe_features_are_cls_and_mean_patch():
    model = ViT(ViTConfig(width=32, depth=1, heads=2)).eval()
    images = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    feats = extract_features(model, images, batch_size=2)
    assert feats.shape == (3, 64)
    from site_builder.train.data import normalize

    cls, patches = model.forward_features(normalize(images))
    assert torch.allclose(feats, torch.cat([cls, patches.mean(1)], 1), atol=1e-6)


def test_knn_accuracy_and_effective_rank():
    from site_builder.train.probe import effective_rank, knn_accuracy

    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 32, generator=gen) * 5
    y = torch.arange(600) % 10
    x = centres[y] + torch.randn(600, 32, generator=gen)
    assert knn_accuracy(x[:500], y[:500], x[500:], y[500:], num_classes=10) > 0.95
    shuffled = y[:500][torch.randperm(500, generator=gen)]
    assert knn_accuracy(x[:500], shuffled, x[500:], y[500:], num_classes=10) < 0.35
    assert abs(effective_rank(torch.randn(4000, 8, generator=gen)) - 8) < 0.3  # isotropic: full rank
    line = torch.randn(500, 1, generator=gen) * torch.randn(1, 8, generator=gen)
    assert effective_rank(line) < 1.01  # collapsed to one direction
