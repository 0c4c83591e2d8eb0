"""DistributedDataParallel does what one process does on the combined batch: one training step on 2 gloo
processes with B images each gives the same loss, SIGReg, invariance, InfoNCE, gradients and updated
parameters as 1 process with the 2B images (the views' random draws made once and split, so each image's
views are the same in both)."""

from __future__ import annotations

import functools
import socket

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from site_builder.train.augment import AugConfig, draw_views, views_with  # noqa: E402
from site_builder.train.model import Projector, ViT, ViTConfig  # noqa: E402
from site_builder.train.trainer import Objective, Student, TrainConfig, step_forward, train_step  # noqa: E402

B = 8  # images per process


def _config(objective: str) -> TrainConfig:
    return TrainConfig(objective=objective, lam=0.3, num_slices=16, proj_hidden=32, proj_dim=8, device="cpu",
                       model=ViTConfig(width=32, depth=2, heads=2, mlp_ratio=2.0),
                       aug=AugConfig(global_views=2, local_views=2))


def _combined_batch(cfg: TrainConfig, world: int):
    """The images, the draws of their views (view-major) and the labels of `world` processes' batches."""
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (world * B, 32, 32, 3), dtype=torch.uint8, generator=gen)
    labels = torch.arange(world * B) % 100
    u = draw_views(world * B, cfg.aug, "cpu", torch.Generator().manual_seed(2))
    return images, u, labels


def _rank_slice(views: torch.Tensor, n_views: int, world: int, rank: int) -> torch.Tensor:
    """This process's rows of view-major views or draws (V x world*B) -> (V x B)."""
    v = views.view(n_views, world * B, *views.shape[1:])
    return v[:, rank * B:(rank + 1) * B].reshape(n_views * B, *views.shape[1:])


def one_step(objective: str, world: int, rank: int) -> dict:
    cfg = _config(objective)
    torch.manual_seed(0)
    model = ViT(cfg.model)
    probe = torch.nn.Sequential(torch.nn.LayerNorm(cfg.model.width), torch.nn.Linear(cfg.model.width, 100))
    student = Student(model, Projector(cfg.model.width, cfg.proj_hidden, cfg.proj_dim), probe)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2, weight_decay=0.05)
    module = student
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        module = DDP(student)
    images, u, labels = _combined_batch(cfg, 2)
    if world > 1:
        images, labels = images[rank * B:(rank + 1) * B], labels[rank * B:(rank + 1) * B]
        u = _rank_slice(u, cfg.aug.global_views + cfg.aug.local_views, world, rank)
    before = {k: v.detach().clone() for k, v in student.named_parameters()}
    objective = Objective(cfg, torch.device("cpu"))
    forward = functools.partial(step_forward, module, objective, views_with)
    metrics = train_step(forward, opt, images, u, objective.directions(3), labels)
    grads = {k: p.grad.detach().clone() for k, p in student.named_parameters()}
    metrics = {k: v.detach().clone() for k, v in metrics.items()}
    if world > 1:  # per-process losses are means over that process's images: average them
        for v in metrics.values():
            dist.all_reduce(v)
            v /= world
    return {"metrics": {k: float(v) for k, v in metrics.items()}, "grads": grads,
            "update": {k: p.detach() - before[k] for k, p in student.named_parameters()}}


def _worker(rank: int, world: int, port: int, objective: str, out: str):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        result = one_step(objective, world, rank)
        if rank == 0:
            torch.save(result, out)
        dist.barrier()  # neither process tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("objective", ["lejepa", "infonce"])
def test_two_processes_step_like_one_process_on_the_combined_batch(objective, tmp_path):
    single = one_step(objective, world=1, rank=0)
    out = tmp_path / "rank0.pt"
    mp.start_processes(_worker, args=(2, _free_port(), objective, str(out)), nprocs=2, start_method="spawn")
    ddp = torch.load(out)
    keys = {"lejepa": ["train/loss", "train/sigreg", "train/inv", "probe/train_loss"],
            "infonce": ["train/loss", "train/infonce", "probe/train_loss"]}[objective]
    for key in keys:
        assert ddp["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-5), key
    # float32 sums in another order: compare by norm, relative to the tensor's gradient, with a floor relative
    # to the whole model's (a tensor whose true gradient is zero holds only rounding noise)
    floor = 1e-5 * torch.cat([g.flatten() for g in single["grads"].values()]).norm()
    for name, g in single["grads"].items():
        diff = (ddp["grads"][name] - g).norm()
        assert diff <= 1e-4 * g.norm() + floor, f"grad {name}: |diff| {diff:.2e}, |grad| {g.norm():.2e}"
    # AdamW's first step is about lr * g / |g|: where the true gradient is zero (the final norm's bias feeds a
    # BatchNorm that removes it), rounding noise of either run sets the sign. Compare the updates where the
    # gradient is not noise; the gradients themselves were compared everywhere above.
    compared = 0
    largest = max(g.abs().max() for g in single["grads"].values())
    for name, u in single["update"].items():
        live = single["grads"][name].abs() > 1e-4 * largest
        compared += int(live.sum())
        torch.testing.assert_close(ddp["update"][name][live], u[live], rtol=1e-4, atol=1e-6,
                                   msg=lambda m: f"update {name}: {m}")
    total = sum(u.numel() for u in single["update"].values())
    assert compared > 0.8 * total, f"only {compared} of {total} updates compared"
