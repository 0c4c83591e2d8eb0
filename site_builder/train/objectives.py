"""Training objectives on projector outputs z of shape V x B x K (views, images, dims).

- SIGReg: Epps-Pulley statistic of random 1-D projections against N(0, 1), averaged over slices and
  views (LeJEPA, Def. 2 and Algorithm 1). The integrand |phi_hat(t) - exp(-t^2/2)|^2 exp(-t^2/2) is
  even in t, so it is integrated on [0, t_max] by the trapezoid rule and doubled (as MINIMAL.md does).
  Under DDP the empirical characteristic function is averaged over all processes (an all-reduce), so
  the statistic is the one of the global batch.
- invariance: mean over views, images and dims of (z_v - mean of the global views)^2 (Algorithm 2).
- InfoNCE (SimCLR-style, multi-view): each view's positives are the other views of the same image,
  the negatives are all other views in the (global) batch; cosine similarity / temperature.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def random_directions(dim: int, num_slices: int, seed: int, device) -> torch.Tensor:
    """K x M unit vectors, the same on every process for the same seed (reseeded every step)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(dim, num_slices, device=device, generator=gen)
    return a / a.norm(dim=0, keepdim=True)


def sigreg(z: torch.Tensor, directions: torch.Tensor, knots: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """Epps-Pulley statistic (times the global batch size N), averaged over slices and views. z: V x B x K.

    Computed in float32 (training), or in float64 when z is float64 (the site's explainer is checked
    against this function to 1e-6)."""
    dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
    proj = z.to(dtype) @ directions.to(dtype)  # V x B x M
    t = torch.linspace(0, t_max, knots, device=z.device, dtype=dtype)
    xt = proj.unsqueeze(-1) * t  # V x B x M x T
    ecf = torch.stack([xt.cos().mean(1), xt.sin().mean(1)])  # 2 x V x M x T
    n = z.shape[1]
    if _distributed():
        import torch.distributed.nn.functional as dist_fn

        world = dist.get_world_size()
        ecf = dist_fn.all_reduce(ecf) / world
        n = n * world
    target = torch.exp(-0.5 * t ** 2)
    err = (ecf[0] - target) ** 2 + ecf[1] ** 2  # V x M x T
    weights = torch.full((knots,), t_max / (knots - 1), device=z.device, dtype=dtype)
    weights[0] = weights[-1] = weights[0] / 2
    weights = 2 * weights * target  # doubled: the integrand is even; window exp(-t^2/2)
    return (err @ weights).mean() * n


def invariance(z: torch.Tensor, global_views: int) -> torch.Tensor:
    """Mean squared distance of every view's projection to the mean of the image's global views."""
    centers = z[:global_views].mean(0, keepdim=True)
    return (z.float() - centers.float()).square().mean()


def lejepa_loss(z: torch.Tensor, directions: torch.Tensor, lam: float, global_views: int,
                knots: int = 17, t_max: float = 3.0) -> dict[str, torch.Tensor]:
    reg = sigreg(z, directions, knots, t_max)
    inv = invariance(z, global_views)
    return {"loss": lam * reg + (1 - lam) * inv, "sigreg": reg, "inv": inv}


def info_nce(z: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Multi-positive InfoNCE over V x B x K projections (all processes' views are the candidates)."""
    v, b, _ = z.shape
    q = F.normalize(z.float(), dim=-1).reshape(v * b, -1)
    ids = torch.arange(b, device=z.device).repeat(v)
    keys, key_ids = q, ids
    if _distributed():
        import torch.distributed.nn.functional as dist_fn

        rank, world = dist.get_rank(), dist.get_world_size()
        keys = torch.cat(dist_fn.all_gather(q))
        key_ids = torch.cat([ids + r * b for r in range(world)])
        ids = ids + rank * b
        offset = rank * v * b
    else:
        offset = 0
    logits = q @ keys.T / temperature
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[torch.arange(v * b, device=z.device), torch.arange(v * b, device=z.device) + offset] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = (ids[:, None] == key_ids[None, :]) & ~self_mask
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
    return -(log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)).mean()
