"""Checkpoints as a folder of safetensors shards (each under 16 MiB) plus `checkpoint.json`.

    checkpoints/<run>/final/checkpoint.json       model config, run config, step, epoch, sha256 of every shard
    checkpoints/<run>/final/model-00000.safetensors ...
    checkpoints/<run>/last/...                    the same, plus training-state shards (optimizer, projector,
                                                  online probe) so that a run resumes where it stopped

Loading never unpickles anything: tensors come from safetensors, everything else from JSON, and every
shard's sha256 is checked, so a truncated, corrupt or foreign folder fails with a UserError naming the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from site_builder.errors import UserError
from site_builder.fsutil import staged_dir, write_json_atomic

FORMAT = "site_builder.checkpoint/1"
MAX_SHARD_BYTES = 15 * 1024 * 1024  # stays under 16 MiB with the header
INFO_FILE = "checkpoint.json"


def _shards(tensors: dict[str, torch.Tensor], prefix: str) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Group tensors (in name order) into shards of at most MAX_SHARD_BYTES."""
    shards, current, size = [], {}, 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > MAX_SHARD_BYTES:
            shards.append(current)
            current, size = {}, 0
        if nbytes > MAX_SHARD_BYTES:  # one huge tensor: split along its first dimension
            rows = max(1, MAX_SHARD_BYTES // max(1, nbytes // t.shape[0]))
            for i, part in enumerate(t.split(rows)):
                shards.append({f"{name}@@{i}": part.clone()})
            continue
        current[name] = t
        size += nbytes
    if current:
        shards.append(current)
    return [(f"{prefix}-{i:05d}.safetensors", s) for i, s in enumerate(shards)]


def _join_split(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    parts: dict[str, list[tuple[int, torch.Tensor]]] = {}
    out = {}
    for name, t in tensors.items():
        if "@@" in name:
            base, idx = name.rsplit("@@", 1)
            parts.setdefault(base, []).append((int(idx), t))
        else:
            out[name] = t
    for base, items in parts.items():
        out[base] = torch.cat([t for _, t in sorted(items, key=lambda p: p[0])])
    return out


def save_checkpoint(
    folder: str | Path,
    model: torch.nn.Module,
    *,
    run_config: dict | None = None,
    step: int = 0,
    epoch: int = 0,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra_info: dict | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `model` (a ViT, trained or freshly initialised) to `folder`, replacing it atomically.

    `dtype` (e.g. torch.bfloat16) casts floating-point model weights to save space; `extra_tensors`
    (training state: optimizer moments, projector, probe) are stored in separate `state-*` shards.
    """
    folder = Path(folder)
    weights = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
               for k, v in model.state_dict().items()}
    files = _shards(weights, "model") + _shards(extra_tensors or {}, "state")
    with staged_dir(folder) as tmp:
        digests = {}
        for name, tensors in files:
            data = st_save(tensors)
            (tmp / name).write_bytes(data)
            digests[name] = hashlib.sha256(data).hexdigest()
        info = {
            "format": FORMAT,
            "model_config": model.cfg.to_dict(),
            "run_config": run_config or {},
            "step": int(step),
            "epoch": int(epoch),
            "dtype": str(dtype or "as trained").replace("torch.", ""),
            "files": digests,
            **(extra_info or {}),
        }
        write_json_atomic(tmp / INFO_FILE, info)
    return folder


def read_checkpoint(folder: str | Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(info, model tensors, state tensors), with every shard's sha256 verified."""
    folder = Path(folder)
    info_path = folder / INFO_FILE
    if folder.is_file():
        raise UserError(f"a checkpoint is a folder holding {INFO_FILE}, not a file", path=folder)
    try:
        info = json.loads(info_path.read_text())
    except FileNotFoundError:
        raise UserError(f"not a checkpoint folder: {INFO_FILE} is missing", path=folder) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"not valid JSON ({exc})", path=info_path) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise UserError(f"field 'format': expected {FORMAT!r} (not a site_builder checkpoint)", path=info_path)
    for field in ("model_config", "files"):
        if not isinstance(info.get(field), dict):
            raise UserError(f"field '{field}' is missing or not an object", path=info_path)
    model_tensors, state_tensors = {}, {}
    for name, digest in sorted(info["files"].items()):
        path = folder / name
        if "/" in name or "\\" in name or not name.endswith(".safetensors"):
            raise UserError(f"field 'files': bad shard name {name!r}", path=info_path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UserError("shard listed in checkpoint.json is missing", path=path) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise UserError("sha256 does not match checkpoint.json (truncated or corrupt shard)", path=path)
        try:
            tensors = st_load(data)
        except (SafetensorError, ValueError, RuntimeError) as exc:
            raise UserError(f"not a readable safetensors file ({exc})", path=path) from None
        (model_tensors if name.startswith("model-") else state_tensors).update(tensors)
    return info, _join_split(model_tensors), _join_split(state_tensors)


def load_model(path: str | Path, device: str = "cpu"):
    """(ViT in eval mode on `device`, float32, info dict) from a checkpoint folder (or its checkpoint.json)."""
    from site_builder.train.model import ViT, ViTConfig

    path = Path(path)
    if path.name == INFO_FILE:
        path = path.parent
    info, weights, _ = read_checkpoint(path)
    try:
        cfg = ViTConfig(**info["model_config"])
        model = ViT(cfg)
        model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    except (TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"weights do not fit the model config ({first})", path=path / INFO_FILE) from None
    return model.to(device).eval(), info
