"""CIFAR-100 loading with checksums, from either of two forms of the data folder:

- numpy shards (`train-00.npz` ... `test-01.npz`, keys x / y_fine / y_coarse; see the data README):
  the md5 of the raw bytes of x, shards concatenated in order, must match the published value;
- the official `cifar-100-python.tar.gz` (md5 checked against the published one before it is opened;
  its pickles are read with an unpickler that only allows numpy arrays and plain containers).

`download_cifar100(folder)` fetches the official archive for users who have internet.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from site_builder.errors import UserError

SHARD_MD5 = {"train": "6951dc67faef3d42afbab5bc232c69bb", "test": "e6e86322d106c769aa03931be720bd7a"}
ARCHIVE_NAME = "cifar-100-python.tar.gz"
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
ARCHIVE_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"  # published by the dataset's page and torchvision
SPLIT_SIZES = {"train": 50_000, "test": 10_000}
# Channel statistics of the CIFAR-100 training set (data README), used to normalise inputs.
MEAN = (0.5071, 0.4865, 0.4409)
STD = (0.2673, 0.2564, 0.2762)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_shards(folder: Path, split: str, md5: str | None) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(folder.glob(f"{split}-*.npz"))
    xs, ys, h = [], [], hashlib.md5()
    for f in files:
        try:
            with np.load(f, allow_pickle=False) as z:
                x, y = z["x"], z["y_fine"]
        except KeyError as exc:
            raise UserError(f"shard lacks the array {exc}", path=f) from None
        except (ValueError, OSError, EOFError) as exc:
            raise UserError(f"not a readable npz shard ({exc})", path=f) from None
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or len(y) != len(x):
            raise UserError(f"field 'x': expected uint8 N x 32 x 32 x 3 with N labels, got {x.dtype} {x.shape}", path=f)
        h.update(np.ascontiguousarray(x).tobytes())
        xs.append(x)
        ys.append(y)
    expected = md5 or SHARD_MD5[split]
    if h.hexdigest() != expected:
        raise UserError(
            f"md5 of the {split} images is {h.hexdigest()}, expected {expected} "
            f"({len(files)} {split}-*.npz shards found: missing, extra or corrupt shards)", path=folder)
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


class _SafeUnpickler(pickle.Unpickler):
    """Allows the numpy pieces a CIFAR pickle is made of and nothing else (no code execution)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden object {module}.{name} in CIFAR pickle")


def _load_archive(archive: Path, split: str, md5: str | None) -> tuple[np.ndarray, np.ndarray]:
    expected = md5 or ARCHIVE_MD5
    got = _md5(archive)
    if got != expected:
        raise UserError(f"md5 is {got}, expected {expected} (incomplete download or a different file)", path=archive)
    member = f"cifar-100-python/{split}"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            raw = tar.extractfile(member).read()
        d = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(d[b"fine_labels"], dtype=np.int64)
    except (KeyError, AttributeError, tarfile.TarError, pickle.UnpicklingError, ValueError, EOFError) as exc:
        raise UserError(f"cannot read {member} from the archive ({exc})", path=archive) from None
    if len(x) != len(y):
        raise UserError(f"{member}: {len(x)} images but {len(y)} labels", path=archive)
    return np.ascontiguousarray(x), y


def load_cifar100(data_dir: str | Path, split: str, md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images N x 32 x 32 x 3 RGB, int64 fine labels N) of `split` ('train' or 'test').

    `md5` replaces the published checksum (for test fixtures and derived data sets only).
    """
    if split not in SPLIT_SIZES:
        raise UserError(f"split must be 'train' or 'test', not {split!r}")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise UserError("data folder does not exist", path=folder)
    if any(folder.glob(f"{split}-*.npz")):
        return _load_shards(folder, split, md5)
    if (folder / ARCHIVE_NAME).exists():
        return _load_archive(folder / ARCHIVE_NAME, split, md5)
    raise UserError(f"no {split}-*.npz shards and no {ARCHIVE_NAME} here "
                    "(run `python -m site_builder train --download` to fetch the official archive)", path=folder)


def download_cifar100(folder: str | Path, url: str = ARCHIVE_URL, md5: str = ARCHIVE_MD5) -> Path:
    """Download the official archive into `folder` (skipped when a copy with the right md5 is there)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ARCHIVE_NAME
    if target.exists() and _md5(target) == md5:
        return target
    tmp = target.with_name(target.name + ".tmp-download")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            while block := r.read(1 << 20):
                f.write(block)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"download from {url} failed ({exc})", path=target) from None
    got = _md5(tmp)
    if got != md5:
        tmp.unlink()
        raise UserError(f"downloaded file has md5 {got}, expected {md5}", path=target)
    tmp.replace(target)
    return target


def normalize(images_u8: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 B x H x W x 3 (any device) -> float32 B x 3 x H x W normalised with the train mean/std,
    up-sampled bilinearly to size x size when a model was trained at another resolution."""
    x = images_u8.permute(0, 3, 1, 2).float().div_(255)
    if size is not None and size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass(frozen=True)
class ValidationSplit:
    """A fixed hold-out of the training set: `per_class` images of every class, chosen by `seed`.

    Pre-training and probes use `train_idx`; every choice (lambda, views, lr, epochs, probe weight decay)
    is made on `val_idx`; the test split is read only by a final model's final evaluation.
    `sha256` is the hash of the sorted validation indices (int64, little endian), so runs can show
    that they held out the same images.
    """

    train_idx: np.ndarray
    val_idx: np.ndarray
    per_class: int
    seed: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(np.sort(self.val_idx).astype("<i8").tobytes()).hexdigest()


def validation_split(labels: np.ndarray, per_class: int = 50, seed: int = 0) -> ValidationSplit:
    """Hold out `per_class` images of each class (a seeded permutation within the class)."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) <= per_class:
            raise UserError(f"--val-per-class {per_class}: class {c} has only {len(members)} training images")
        val.append(rng.permutation(members)[:per_class])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[val_idx] = False
    return ValidationSplit(np.flatnonzero(mask), val_idx, per_class, seed)
