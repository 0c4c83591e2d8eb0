"""Batched view augmentations on the GPU (every image gets its own random parameters; no host sync).

The recipe follows the LeJEPA repository's list (random resized crop, horizontal flip, colour jitter,
grayscale, Gaussian blur, solarize, normalise), scaled to 32x32 CIFAR images. Differences from
torchvision, all deliberate and recorded in the run config:
- crops are sampled in one shot (area fraction and log-uniform aspect ratio, clamped to the image)
  instead of torchvision's 10 rejection tries, and resampled bilinearly with `grid_sample`;
- colour jitter applies brightness, contrast, saturation, hue in that fixed order (torchvision shuffles
  the order); hue is a rotation of the chroma plane in YIQ space, not an HSV shift;
- blur uses a 5-tap separable Gaussian with sigma in pixels of the output view.
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F

from site_builder.train.config import AugConfig
from site_builder.train.data import MEAN, STD


def _uniform(n, lo, hi, device, gen):
    return torch.rand(n, device=device, generator=gen) * (hi - lo) + lo


def _coin(n, p, device, gen):
    return torch.rand(n, device=device, generator=gen) < p


def random_resized_crop(x: torch.Tensor, size: int, scale, ratio, flip_p: float, gen=None) -> torch.Tensor:
    """x: float B x 3 x H x W -> B x 3 x size x size crops (with random horizontal flips)."""
    b, dev = x.shape[0], x.device
    area = _uniform(b, *scale, dev, gen)
    log_r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), dev, gen)
    r = log_r.exp()
    w = (area * r).sqrt().clamp(max=1.0)  # crop width / image width
    h = (area / r).sqrt().clamp(max=1.0)
    cx = (_uniform(b, -1, 1, dev, gen)) * (1 - w)
    cy = (_uniform(b, -1, 1, dev, gen)) * (1 - h)
    flip = torch.where(_coin(b, flip_p, dev, gen), -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


_GRAY = (0.299, 0.587, 0.114)
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)  # computed once on the CPU (inverting on the GPU would sync)


_CONSTANTS: dict = {}


def _const(name: str, device) -> torch.Tensor:
    """Small constant tensors, copied to each device once (a host-to-device copy per step would stall)."""
    key = (name, str(device))
    if key not in _CONSTANTS:
        values = {"gray": torch.tensor(_GRAY).view(1, 3, 1, 1), "rgb2yiq": _RGB2YIQ, "yiq2rgb": _YIQ2RGB,
                  "mean": torch.tensor(MEAN).view(1, 3, 1, 1), "std": torch.tensor(STD).view(1, 3, 1, 1)}
        _CONSTANTS[key] = values[name].to(device)
    return _CONSTANTS[key]


def _gray(x):
    return (x * _const("gray", x.device)).sum(1, keepdim=True)


def color_jitter(x, cfg: AugConfig, gen=None):
    b, dev = x.shape[0], x.device
    on = _coin(b, cfg.jitter_p, dev, gen).float().view(b, 1, 1, 1)

    s = cfg.color_strength

    def factor(strength):
        f = _uniform(b, 1 - s * strength, 1 + s * strength, dev, gen).view(b, 1, 1, 1)
        return on * f + (1 - on)

    x = (x * factor(cfg.brightness)).clamp(0, 1)
    m = _gray(x).mean((2, 3), keepdim=True)
    x = ((x - m) * factor(cfg.contrast) + m).clamp(0, 1)
    g = _gray(x)
    x = ((x - g) * factor(cfg.saturation) + g).clamp(0, 1)
    angle = _uniform(b, -s * cfg.hue, s * cfg.hue, dev, gen) * 2 * math.pi * on.view(b)
    c, s = angle.cos(), angle.sin()
    rot = torch.zeros(b, 3, 3, device=dev)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
    m = _const("yiq2rgb", dev) @ rot @ _const("rgb2yiq", dev)  # B x 3 x 3
    return torch.einsum("bij,bjhw->bihw", m, x).clamp(0, 1)


def random_grayscale(x, p, gen=None):
    on = _coin(x.shape[0], p, x.device, gen).view(-1, 1, 1, 1)
    return torch.where(on, _gray(x).expand_as(x), x)


def gaussian_blur(x, p, sigma_range, gen=None, taps: int = 5):
    b, c, hgt, wid = x.shape
    sigma = _uniform(b, *sigma_range, x.device, gen)
    on = _coin(b, p, x.device, gen)
    offs = torch.arange(taps, device=x.device, dtype=x.dtype) - taps // 2
    k = torch.exp(-offs[None] ** 2 / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)
    identity = (offs == 0).to(x.dtype).expand(b, taps)
    k = torch.where(on[:, None], k, identity).repeat_interleave(c, 0)  # (B*C) x taps
    y = F.pad(x.reshape(1, b * c, hgt, wid), (taps // 2,) * 4, mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, taps, 1), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, 1, taps), groups=b * c)
    return y.view(b, c, hgt, wid)


def random_solarize(x, p, gen=None):
    on = _coin(x.shape[0], p, x.device, gen).view(-1, 1, 1, 1)
    return torch.where(on & (x >= 0.5), 1 - x, x)


def augment(images_u8: torch.Tensor, size: int, scale, cfg: AugConfig, gen=None) -> torch.Tensor:
    """uint8 B x H x W x 3 -> normalised float B x 3 x size x size augmented views."""
    x = images_u8.permute(0, 3, 1, 2).float().div_(255)
    x = random_resized_crop(x, size, scale, cfg.ratio, cfg.flip_p, gen)
    x = color_jitter(x, cfg, gen)
    x = random_grayscale(x, cfg.gray_p, gen)
    x = gaussian_blur(x, cfg.blur_p, cfg.blur_sigma, gen)
    x = random_solarize(x, cfg.solarize_p, gen)
    return (x - _const("mean", x.device)) / _const("std", x.device)


def make_views(images_u8: torch.Tensor, cfg: AugConfig, gen=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(global views (Vg*B) x 3 x G x G, local views (Vl*B) x 3 x L x L or None), view-major order."""
    glob = augment(images_u8.repeat(cfg.global_views, 1, 1, 1), cfg.global_size, cfg.global_scale, cfg, gen)
    if cfg.local_views == 0:
        return glob, None
    loc = augment(images_u8.repeat(cfg.local_views, 1, 1, 1), cfg.local_size, cfg.local_scale, cfg, gen)
    return glob, loc
