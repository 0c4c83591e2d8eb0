"""CIFAR-100 loading: npz shards and the official archive, both checksum-verified; the download code."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from site_builder.errors import UserError  # noqa: E402
from site_builder.train import data  # noqa: E402
from site_builder.train.data import download_cifar100, load_cifar100, normalize  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar100"


def make_shards(folder: Path, split: str, n_shards: int = 2, per_shard: int = 20, seed: int = 0) -> str:
    """Shards in the data README's format; returns the md5 of the concatenated image bytes."""
    rng = np.random.default_rng(seed)
    h = hashlib.md5()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_shards):
        x = rng.integers(0, 256, (per_shard, 32, 32, 3), dtype=np.uint8)
        y = (np.arange(per_shard) + i * per_shard) % 100
        np.savez_compressed(folder / f"{split}-{i:02d}.npz", x=x, y_fine=y.astype(np.uint8),
                            y_coarse=(y // 5).astype(np.uint8))
        h.update(x.tobytes())
    return h.hexdigest()


def make_archive(folder: Path, n_train: int = 12, n_test: int = 6) -> tuple[Path, dict]:
    """A small cifar-100-python.tar.gz laid out like the official one (CHW rows, pickled dicts)."""
    rng = np.random.default_rng(1)
    expected = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split, n in (("train", n_train), ("test", n_test)):
            hwc = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            labels = list(rng.integers(0, 100, n))
            expected[split] = (hwc, labels)
            rows = hwc.transpose(0, 3, 1, 2).reshape(n, -1)
            payload = pickle.dumps({b"data": rows, b"fine_labels": [int(v) for v in labels],
                                    b"coarse_labels": [int(v) // 5 for v in labels]})
            info = tarfile.TarInfo(f"cifar-100-python/{split}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / data.ARCHIVE_NAME
    archive.write_bytes(buf.getvalue())
    return archive, expected


def test_shards_load_in_order_with_their_checksum(tmp_path):
    md5 = make_shards(tmp_path, "train")
    x, y = load_cifar100(tmp_path, "train", md5=md5)
    assert x.shape == (40, 32, 32, 3) and x.dtype == np.uint8
    assert list(y[:3]) == [0, 1, 2] and y[25] == 25
    first = np.load(tmp_path / "train-00.npz")["x"]
    assert np.array_equal(x[:20], first)


def test_a_missing_or_changed_shard_fails_the_checksum(tmp_path):
    md5 = make_shards(tmp_path, "train")
    (tmp_path / "train-01.npz").unlink()
    with pytest.raises(UserError, match="md5 of the train images") as err:
        load_cifar100(tmp_path, "train", md5=md5)
    assert str(tmp_path) in str(err.value)


def test_shards_are_checked_against_the_published_md5_by_default(tmp_path):
    make_shards(tmp_path, "test")
    with pytest.raises(UserError, match=data.SHARD_MD5["test"]):
        load_cifar100(tmp_path, "test")


def test_empty_folder_and_bad_split_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no train-\\*.npz shards"):
        load_cifar100(tmp_path, "train")
    with pytest.raises(UserError, match="split must be"):
        load_cifar100(tmp_path, "validation")
    with pytest.raises(UserError, match="does not exist"):
        load_cifar100(tmp_path / "nope", "train")


def test_archive_is_decoded_to_hwc_rgb(tmp_path):
    archive, expected = make_archive(tmp_path)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    for split in ("train", "test"):
        x, y = load_cifar100(tmp_path, split, md5=md5)
        assert np.array_equal(x, expected[split][0])
        assert list(y) == list(expected[split][1])


def test_archive_with_wrong_md5_is_refused(tmp_path):
    archive, _ = make_archive(tmp_path)
    with pytest.raises(UserError, match=data.ARCHIVE_MD5) as err:
        load_cifar100(tmp_path, "train")  # the published md5 does not match a fixture archive
    assert data.ARCHIVE_NAME in str(err.value)


def test_download_checks_md5_and_leaves_nothing_behind_on_mismatch(tmp_path):
    archive, _ = make_archive(tmp_path / "src")
    url = archive.as_uri()  # urllib reads file:// URLs like http ones
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    dest = tmp_path / "dest"
    with pytest.raises(UserError, match="downloaded file has md5"):
        download_cifar100(dest, url=url, md5="0" * 32)
    assert list(dest.iterdir()) == []
    got = download_cifar100(dest, url=url, md5=md5)
    assert got.read_bytes() == archive.read_bytes()
    x, _ = load_cifar100(dest, "test", md5=md5)
    assert x.shape == (6, 32, 32, 3)
    with pytest.raises(UserError, match="download from"):
        download_cifar100(tmp_path / "other", url=(tmp_path / "missing.tar.gz").as_uri(), md5=md5)


def test_normalize_uses_channel_statistics():
    img = torch.zeros(1, 2, 2, 3, dtype=torch.uint8)
    img[..., 0] = 255
    out = normalize(img)
    assert out.shape == (1, 3, 2, 2)
    assert torch.allclose(out[0, 0], torch.full((2, 2), (1 - data.MEAN[0]) / data.STD[0]))
    assert torch.allclose(out[0, 2], torch.full((2, 2), -data.MEAN[2] / data.STD[2]))


@pytest.mark.skipif(not SHARED.is_dir(), reason="the real CIFAR-100 shards are not beside this checkout")
def test_real_test_split_matches_published_md5_and_label_order():
    x, y = load_cifar100(SHARED, "test")
    assert x.shape == (10_000, 32, 32, 3)
    assert np.array_equal(y, np.arange(10_000) % 100)  # rank-major order (data README)


def test_validation_split_holds_out_the_same_images_per_class_every_time():
    labels = np.arange(100 * 500) % 100
    split = data.validation_split(labels, per_class=50, seed=0)
    assert len(split.val_idx) == 5000 and len(split.train_idx) == 45000
    assert not set(split.val_idx) & set(split.train_idx)
    assert np.bincount(labels[split.val_idx], minlength=100).tolist() == [50] * 100
    again = data.validation_split(labels, per_class=50, seed=0)
    assert np.array_equal(again.val_idx, split.val_idx) and again.sha256 == split.sha256
    other = data.validation_split(labels, per_class=50, seed=1)
    assert other.sha256 != split.sha256
    with pytest.raises(UserError, match="class 3 has only 1"):
        data.validation_split(np.array([3, 4, 4]), per_class=1)
