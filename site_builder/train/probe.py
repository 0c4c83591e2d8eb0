"""The fixed linear-probe recipe, shared by `train` (end of run) and `analyze` (every checkpoint).

Recipe (frozen backbone, no augmentation):
- features: for each 32x32 image (normalised with the CIFAR-100 train mean/std), the last layer's CLS
  token concatenated with the mean of its patch tokens (both after the final norm): 2 x width numbers;
- standardise each feature with the train split's mean and std;
- one linear layer, cross-entropy, AdamW (lr 1e-3, weight decay 1e-4, betas 0.9/0.999), batch 1024,
  100 epochs, cosine learning rate from 1e-3 to 0, seed 0, float32;
- report top-1 and top-5 accuracy on the test split after the last epoch (no early stopping, no search).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from site_builder.train.data import normalize

PROBE_RECIPE = {
    "probe/features": "cls+mean_patch",
    "probe/lr": 1e-3,
    "probe/weight_decay": 1e-4,
    "probe/batch_size": 1024,
    "probe/epochs": 100,
    "probe/schedule": "cosine",
    "probe/seed": 0,
}


@torch.no_grad()
def extract_features(model, images_u8: torch.Tensor, device="cpu", batch_size: int = 1000) -> torch.Tensor:
    """Probe features (N x 2D, float32, on CPU) of uint8 N x 32 x 32 x 3 images."""
    model.eval()
    out = []
    use_bf16 = torch.device(device).type == "cuda"
    for i in range(0, len(images_u8), batch_size):
        x = normalize(images_u8[i:i + batch_size].to(device))
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=use_bf16):
            cls, patches = model.forward_features(x)
        out.append(torch.cat([cls, patches.mean(1)], dim=1).float().cpu())
    return torch.cat(out)


def topk_accuracy(logits: torch.Tensor, y: torch.Tensor, k: int) -> float:
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == y[:, None]).any(dim=1).float().mean().item()


def linear_probe(train_feats, train_y, test_feats, test_y, *, epochs: int = 100, batch_size: int = 1024,
                 lr: float = 1e-3, weight_decay: float = 1e-4, num_classes: int = 100, seed: int = 0,
                 device="cpu") -> dict:
    """Train the fixed-recipe linear classifier on frozen features; {'top1', 'top5'} on the test split."""
    gen = torch.Generator().manual_seed(seed)
    xtr, xte = train_feats.float().to(device), test_feats.float().to(device)
    ytr, yte = train_y.long().to(device), test_y.long().to(device)
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = torch.nn.Linear(xtr.shape[1], num_classes).to(device)
    opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(xtr) / batch_size)
    total = epochs * steps_per_epoch
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(xtr), generator=gen).to(device)
        for i in range(0, len(xtr), batch_size):
            idx = order[i:i + batch_size]
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(clf(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    with torch.no_grad():
        logits = clf(xte)
    return {"top1": topk_accuracy(logits, yte, 1), "top5": topk_accuracy(logits, yte, 5),
            "train_loss": float(loss.item())}
