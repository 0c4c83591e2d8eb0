"""Batched view augmentations on the GPU (every image gets its own random parameters; no host sync).

Each batch of views draws all its random numbers in one call (`DRAWS` uniforms per view); the augmentations
are then a pure function of the images and those numbers (`views_with`), which torch.compile can fuse into
a few kernels (`compiled_views`) instead of launching each of its small operations from Python.

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


# The uniform draws of one view, in the columns of `draw(...)`'s result.
DRAWS = ("area", "ratio", "x", "y", "flip", "jitter", "brightness", "contrast", "saturation", "hue", "gray",
         "blur", "sigma", "solarize")
_COL = {name: i for i, name in enumerate(DRAWS)}


def draw(n: int, device, gen=None) -> torch.Tensor:
    """The random numbers of n views: n x len(DRAWS) uniforms in [0, 1), one kernel."""
    return torch.rand(n, len(DRAWS), device=device, generator=gen)


def _uniform(u: torch.Tensor, name: str, lo: float, hi: float) -> torch.Tensor:
    return u[:, _COL[name]] * (hi - lo) + lo


def _coin(u: torch.Tensor, name: str, p: float) -> torch.Tensor:
    return u[:, _COL[name]] < p


def random_resized_crop(x: torch.Tensor, size: int, scale, ratio, flip_p: float, u: torch.Tensor) -> torch.Tensor:
    """x: float B x 3 x H x W -> B x 3 x size x size crops (with random horizontal flips); u: the draws."""
    b = x.shape[0]
    area = _uniform(u, "area", *scale)
    r = _uniform(u, "ratio", math.log(ratio[0]), math.log(ratio[1])).exp()
    w = (area * r).sqrt().clamp(max=1.0)  # crop width / image width
    h = (area / r).sqrt().clamp(max=1.0)
    cx = _uniform(u, "x", -1, 1) * (1 - w)
    cy = _uniform(u, "y", -1, 1) * (1 - h)
    flip = torch.where(_coin(u, "flip", flip_p), -1.0, 1.0)
    zero = torch.zeros_like(w)
    theta = torch.stack([torch.stack([w * flip, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)  # B x 2 x 3
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


_GRAY = (0.299, 0.587, 0.114)
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)  # computed once on the CPU (inverting on the GPU would sync)


_CONSTANT_VALUES = {"gray": torch.tensor(_GRAY).view(1, 3, 1, 1), "rgb2yiq": _RGB2YIQ, "yiq2rgb": _YIQ2RGB,
                    "mean": torch.tensor(MEAN).view(1, 3, 1, 1), "std": torch.tensor(STD).view(1, 3, 1, 1)}
_CONSTANTS: dict = {}


def _const(name: str, device) -> torch.Tensor:
    """Small constant tensors, copied to each device once (a host-to-device copy per step would stall)."""
    key = (name, str(device))
    if key not in _CONSTANTS:
        _CONSTANTS[key] = _CONSTANT_VALUES[name].to(device)
    return _CONSTANTS[key]


def _gray(x):
    return (x * _const("gray", x.device)).sum(1, keepdim=True)


def color_jitter(x, cfg: AugConfig, u: torch.Tensor):
    b = x.shape[0]
    on = _coin(u, "jitter", cfg.jitter_p).float().view(b, 1, 1, 1)

    s = cfg.color_strength

    def factor(name, strength):
        f = _uniform(u, name, 1 - s * strength, 1 + s * strength).view(b, 1, 1, 1)
        return on * f + (1 - on)

    x = (x * factor("brightness", cfg.brightness)).clamp(0, 1)
    m = _gray(x).mean((2, 3), keepdim=True)
    x = ((x - m) * factor("contrast", cfg.contrast) + m).clamp(0, 1)
    g = _gray(x)
    x = ((x - g) * factor("saturation", cfg.saturation) + g).clamp(0, 1)
    angle = _uniform(u, "hue", -s * cfg.hue, s * cfg.hue) * 2 * math.pi * on.view(b)
    c, s = angle.cos(), angle.sin()
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    rot = torch.stack([one, zero, zero, zero, c, -s, zero, s, c], 1).view(b, 3, 3)
    m = _const("yiq2rgb", x.device) @ rot @ _const("rgb2yiq", x.device)  # B x 3 x 3
    return torch.einsum("bij,bjhw->bihw", m, x).clamp(0, 1)


def random_grayscale(x, p, u: torch.Tensor):
    on = _coin(u, "gray", p).view(-1, 1, 1, 1)
    return torch.where(on, _gray(x).expand_as(x), x)


def gaussian_blur(x, p, sigma_range, u: torch.Tensor, taps: int = 5):
    """Separable Gaussian blur with reflected borders, as weighted sums of shifted images (which torch.compile
    fuses with the neighbouring operations; a grouped convolution is a separate cuDNN kernel per pass)."""
    b, hgt, wid = x.shape[0], x.shape[2], x.shape[3]
    r = taps // 2
    sigma = _uniform(u, "sigma", *sigma_range)
    on = _coin(u, "blur", p)
    offs = torch.arange(taps, device=x.device, dtype=x.dtype) - r
    k = torch.exp(-offs[None] ** 2 / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)
    k = torch.where(on[:, None], k, (offs == 0).to(x.dtype).expand(b, taps)).view(b, taps, 1, 1, 1)
    y = F.pad(x, (r, r, 0, 0), mode="reflect")
    y = sum(k[:, j] * y[..., j:j + wid] for j in range(taps))
    y = F.pad(y, (0, 0, r, r), mode="reflect")
    return sum(k[:, j] * y[..., j:j + hgt, :] for j in range(taps))


def random_solarize(x, p, u: torch.Tensor):
    on = _coin(u, "solarize", p).view(-1, 1, 1, 1)
    return torch.where(on & (x >= 0.5), 1 - x, x)


def augment_with(images_u8: torch.Tensor, u: torch.Tensor, size: int, scale, cfg: AugConfig) -> torch.Tensor:
    """uint8 B x H x W x 3 and their draws (B x len(DRAWS)) -> normalised float B x 3 x size x size views."""
    x = images_u8.permute(0, 3, 1, 2).float().div(255)
    x = random_resized_crop(x, size, scale, cfg.ratio, cfg.flip_p, u)
    x = color_jitter(x, cfg, u)
    x = random_grayscale(x, cfg.gray_p, u)
    x = gaussian_blur(x, cfg.blur_p, cfg.blur_sigma, u)
    x = random_solarize(x, cfg.solarize_p, u)
    return (x - _const("mean", x.device)) / _const("std", x.device)


def views_with(images_u8: torch.Tensor, u: torch.Tensor, cfg: AugConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 B x H x W x 3 and the draws of all their views ((Vg + Vl) * B x len(DRAWS), view-major) ->
    (global views (Vg*B) x 3 x G x G, local views (Vl*B) x 3 x L x L or None), view-major order."""
    n_glob = cfg.global_views * images_u8.shape[0]
    glob = augment_with(images_u8.repeat(cfg.global_views, 1, 1, 1), u[:n_glob], cfg.global_size,
                        cfg.global_scale, cfg)
    if cfg.local_views == 0:
        return glob, None
    loc = augment_with(images_u8.repeat(cfg.local_views, 1, 1, 1), u[n_glob:], cfg.local_size, cfg.local_scale, cfg)
    return glob, loc


def make_constants(device) -> None:
    """Copy the augmentations' constants to `device` before torch.compile traces them: made while tracing,
    they would change the dict that the compiled code's guards check, and the first call would compile twice."""
    for name in _CONSTANT_VALUES:
        _const(name, device)


def compiled_views(device, mode: str = "default"):
    """`views_with` compiled for `device`: a few fused kernels for all the views of a batch instead of one
    launch from Python per small operation (what `make_views` runs with `views=`)."""
    make_constants(device)
    return torch.compile(views_with, fullgraph=True, mode=mode)


def draw_views(images: int, cfg: AugConfig, device, gen=None) -> torch.Tensor:
    """The draws of all the views of `images` images, as `views_with` takes them."""
    return draw((cfg.global_views + cfg.local_views) * images, device, gen)


def make_views(images_u8: torch.Tensor, cfg: AugConfig, gen=None,
               views=views_with) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 B x H x W x 3 -> their augmented views as `views_with` returns them (one draw for all views)."""
    return views(images_u8, draw_views(images_u8.shape[0], cfg, images_u8.device, gen), cfg)
