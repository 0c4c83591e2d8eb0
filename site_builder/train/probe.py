"""The fixed linear-probe recipe, shared by `train` (end of run) and `analyze` (every checkpoint).

Recipe (frozen backbone, no augmentation):
- features: for each 32x32 image (normalised with the CIFAR-100 train mean/std), the last layer's CLS
  token concatenated with the mean of its patch tokens (both after the final norm): 2 x width numbers;
- standardise each feature with the train split's mean and std;
- one linear layer, cross-entropy, AdamW (lr 1e-3, weight decay 1e-4, betas 0.9/0.999), batch 1024,
  100 epochs, cosine learning rate from 1e-3 to 0, seed 0, float32;
- report top-1 and top-5 accuracy on the evaluation split after the last epoch (no early stopping).

`evaluate_representation` is what `train` runs at the end of a run: the probe's weight decay is chosen
on the validation split (held out of the training images), k-NN accuracy (k = 20, cosine, votes weighted
by exp(similarity / 0.07) as in DINO) and the effective rank are measured on the same features, and the
test split is scored only when the caller passes it (once, for a final model).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dataclasses import dataclass

from site_builder.train.config import PROBE_RECIPE  # noqa: F401  (re-exported for analyze)
from site_builder.train.data import normalize

@torch.no_grad()
def extract_features(model, images_u8: torch.Tensor, device="cpu", batch_size: int = 1000,
                     size: int | None = None) -> torch.Tensor:
    """Probe features (N x 2D, float32, on CPU) of uint8 N x 32 x 32 x 3 images (up-sampled to `size`)."""
    model.eval()
    out = []
    use_bf16 = torch.device(device).type == "cuda"
    for i in range(0, len(images_u8), batch_size):
        x = normalize(images_u8[i:i + batch_size].to(device), size)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=use_bf16):
            cls, patches = model.forward_features(x)
        out.append(torch.cat([cls, patches.mean(1)], dim=1).float().cpu())
    return torch.cat(out)


def topk_accuracy(logits: torch.Tensor, y: torch.Tensor, k: int) -> float:
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == y[:, None]).any(dim=1).float().mean().item()


def train_linear_classifier(train_feats, train_y, *, epochs: int = 100, batch_size: int = 1024, lr: float = 1e-3,
                            weight_decay: float = 1e-4, num_classes: int = 100, seed: int = 0, device="cpu"):
    """The fixed-recipe linear classifier on standardised frozen features: a function features -> logits."""
    gen = torch.Generator().manual_seed(seed)
    xtr, ytr = train_feats.float().to(device), train_y.long().to(device)
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr = (xtr - mean) / std
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

    @torch.no_grad()
    def classify(feats: torch.Tensor) -> torch.Tensor:
        return clf((feats.float().to(device) - mean) / std)

    classify.train_loss = float(loss.item())
    return classify


def linear_probe(train_feats, train_y, test_feats, test_y, *, device="cpu", **recipe) -> dict:
    """Train the fixed-recipe linear classifier on frozen features; {'top1', 'top5'} on the test split."""
    classify = train_linear_classifier(train_feats, train_y, device=device, **recipe)
    logits, yte = classify(test_feats), test_y.long().to(device)
    return {"top1": topk_accuracy(logits, yte, 1), "top5": topk_accuracy(logits, yte, 5),
            "train_loss": classify.train_loss}


def knn_accuracy(bank: torch.Tensor, bank_y: torch.Tensor, queries: torch.Tensor, query_y: torch.Tensor, *,
                 k: int = 20, temperature: float = 0.07, num_classes: int = 100, chunk: int = 1000) -> float:
    """Top-1 of a weighted k-NN classifier: cosine similarity, the k nearest bank items vote for their
    class with weight exp(similarity / temperature)."""
    bank = F.normalize(bank.float(), dim=1)
    queries = F.normalize(queries.float().to(bank.device), dim=1)
    bank_y, query_y = bank_y.long().to(bank.device), query_y.long().to(bank.device)
    correct = 0
    for i in range(0, len(queries), chunk):
        sims, idx = (queries[i:i + chunk] @ bank.T).topk(min(k, len(bank)), dim=1)
        votes = torch.zeros(len(idx), num_classes, device=bank.device)
        votes.scatter_add_(1, bank_y[idx], (sims / temperature).exp())
        correct += (votes.argmax(1) == query_y[i:i + chunk]).sum().item()
    return correct / max(1, len(queries))


def effective_rank(features: torch.Tensor) -> float:
    """exp(entropy of the normalised singular values) of the centred feature matrix (Roy & Vetterli, 2007)."""
    s = torch.linalg.svdvals(features.double() - features.double().mean(0))
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


@dataclass(frozen=True)
class Split:
    """Probe features (N x 2D), the backbone embedding (N x D, the CLS token) and fine labels of one split."""

    features: torch.Tensor
    embedding: torch.Tensor
    labels: torch.Tensor


def split_features(model, images_u8: torch.Tensor, labels: torch.Tensor, device, size: int | None = None) -> Split:
    feats = extract_features(model, images_u8, device, size=size)
    width = feats.shape[1] // 2
    return Split(feats, feats[:, :width], labels.cpu())


def evaluate_representation(train: Split, val: Split, test: Split | None, *, weight_decays=(1e-4,),
                            device="cpu") -> dict[str, float]:
    """Linear probe (weight decay chosen on val), k-NN and effective rank; test scored only if given."""
    def scores(classify, split: Split) -> tuple[float, float]:
        logits, y = classify(split.features), split.labels.long().to(device)
        return topk_accuracy(logits, y, 1), topk_accuracy(logits, y, 5)

    best = None
    for wd in weight_decays:
        classify = train_linear_classifier(train.features, train.labels, weight_decay=wd, device=device)
        val_scores = scores(classify, val)
        if best is None or val_scores[0] > best[2][0]:
            best = (wd, classify, val_scores)
    wd, classify, (val_top1, val_top5) = best
    out = {"final_probe/weight_decay": wd, "final_probe/val_top1": val_top1, "final_probe/val_top5": val_top5,
           "knn/val_top1": knn_accuracy(train.features.to(device), train.labels, val.features, val.labels),
           "repr/effective_rank": effective_rank(val.embedding)}
    if test is not None:
        test_top1, test_top5 = scores(classify, test)
        out.update({"final_probe/test_top1": test_top1, "final_probe/test_top5": test_top5,
                    "knn/test_top1": knn_accuracy(train.features.to(device), train.labels, test.features,
                                                  test.labels)})
    return out
