"""Training-speed benchmark: our loop vs a reference-style loop, same model, same GPU, same process.

    python -m site_builder.train.bench --data DIR [--data DIR2 ...] [--steps 40] [--workers 14]

- ours: the uint8 data set on the GPU, views made by the batched GPU augmentations, bf16 autocast,
  packed views with our attention and GELU kernels, torch.compile, fused AdamW, no host sync in the timed loop;
- reference: what LeJEPA's minimal example does: a torch DataLoader whose workers decode each image to
  PIL and augment it per sample with torchvision transforms (same recipe, same views), pinned batches
  copied to the GPU, the same model in eager mode with bf16 autocast;
- also: ours without torch.compile, and the reference DataLoader alone (no model), to show where time goes.

Options for measuring one optimisation at a time (run the command twice in one session, with and without):
`--separate-views` (the global and local views through the backbone one batch after the other, as before
the packed pass), `--attention` (our fused Triton kernel over the packed stream, the default, or SDPA per
view size: `sdpa` for PyTorch's choice of kernel, or one kernel), `--gelu` (our kernels for the MLP's bias +
GELU, the default, or PyTorch's), `--compile-views` (the augmentations compiled), `--compile-optimizer`
(AdamW's step compiled), `--whole-step` (views, model and loss one compiled function: `trainer.step_forward`),
`--coordinate-descent` (Inductor tunes its kernels' launch configurations), `--compile-mode` (torch.compile's
mode). `train` on one GPU runs the step as `--whole-step --compile-mode reduce-overhead` (CUDA graphs).
With the fused kernel, the run first checks it against SDPA at the benchmark's shapes (`attention_check`
in the JSON: errors against float32, and the time of one layer's attention, forward and backward).

Images/s counts source images (each gives global + local views). MFU = model FLOPs (forward + backward
= 3 x forward matmul FLOPs of backbone and projector, attention included) / time / peak, with the
H100 SXM's dense bf16 peak of 989 TFLOP/s from NVIDIA's datasheet. The data is read from the npz shards
without checksums (speed only; training verifies them).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from site_builder.train.augment import AugConfig, compiled_views, draw_views, make_constants, make_views, views_with
from site_builder.train.config import forward_flops_per_image  # torch-free, also used by report_numbers
from site_builder.train.data import MEAN, STD
from site_builder.train import model as vit
from site_builder.train.model import Projector, ViT, ViTConfig
from site_builder.train.trainer import Objective, Student, TrainConfig, step_forward, train_step

PEAK_BF16_FLOPS = 989e12


def load_train_images(dirs: list[str]) -> np.ndarray:
    files = sorted(f for d in dirs for f in Path(d).glob("train-*.npz"))
    if not files:
        raise SystemExit(f"no train-*.npz shards in {dirs}")
    return np.concatenate([np.load(f)["x"] for f in files])


class _RefDataset(torch.utils.data.Dataset):
    """Per-sample CPU augmentation with torchvision, as in the reference minimal example."""

    def __init__(self, images: np.ndarray, aug: AugConfig):
        from torchvision import transforms as T

        self.images, self.aug = images, aug

        def pipeline(size, scale):
            return T.Compose([
                T.RandomResizedCrop(size, scale=scale, ratio=aug.ratio),
                T.RandomHorizontalFlip(aug.flip_p),
                T.RandomApply([T.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue)], p=aug.jitter_p),
                T.RandomGrayscale(aug.gray_p),
                T.RandomApply([T.GaussianBlur(5, aug.blur_sigma)], p=aug.blur_p),
                T.RandomSolarize(128, p=aug.solarize_p),
                T.ToTensor(), T.Normalize(MEAN, STD)])

        self.glob = pipeline(aug.global_size, aug.global_scale)
        self.loc = pipeline(aug.local_size, aug.local_scale)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.images[i])
        g = torch.stack([self.glob(img) for _ in range(self.aug.global_views)])
        l_ = torch.stack([self.loc(img) for _ in range(self.aug.local_views)])
        return g, l_


ATTENTION_KERNELS = {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
                     "math": "MATH"}


def use_gelu_kernel(name: str) -> None:
    """'fused': our Triton kernels for the MLP's bias + GELU (the training step's default on the GPU);
    'torch': nn.Linear's bias and nn.GELU, compiled by Inductor."""
    vit.FUSED_GELU = name == "fused"


def use_attention_kernel(name: str) -> None:
    """'fused': our Triton kernel (the training step's default on the GPU); 'sdpa': SDPA per view size with
    PyTorch's choice of kernel; else SDPA (and torch.compile's lowering of it) with only this kernel."""
    vit.FUSED_ATTENTION = name == "fused"
    if name in ("fused", "sdpa"):
        return
    for kernel in ATTENTION_KERNELS:
        getattr(torch.backends.cuda, f"enable_{'mem_efficient' if kernel == 'efficient' else kernel}_sdp")(
            kernel == name)


class _SeparateViews(Student):
    """The step before the packed pass: global and local views through the backbone one after the other."""

    def embed(self, glob, loc):
        return torch.cat([self.model(glob), self.model(loc)])


def _step(module, opt, glob, loc, aug, b, step, objective, opt_step=None):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        z, _ = module(glob, loc)
    loss, _ = objective(z.view(aug.global_views + aug.local_views, b, -1), objective.directions(step))
    _update(opt, loss, opt_step)
    return loss


def _update(opt, loss, opt_step=None):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    (opt_step or opt.step)()


def _objective(cfg: ViTConfig, aug: AugConfig, device, compile_loss: bool) -> Objective:
    objective = Objective(TrainConfig(model=cfg, aug=aug), device)
    if compile_loss:
        objective.compile()
    return objective


def attention_check(cfg: ViTConfig, aug: AugConfig, bs: int, device) -> dict:
    """The fused kernel against SDPA per view size on one block at the benchmark's shapes (random q, k, v):
    the largest absolute error of the output and of the qkv gradient against SDPA in float32, for the
    fused kernel and for SDPA, both in bf16; and the median ms of one layer's attention, forward and
    backward, for each (SDPA's compiled, so that its RoPE and re-layouts are fused as in training; both
    timings include the same cast of the float32 inputs to bf16)."""
    from triton.testing import do_bench

    from site_builder.train.packed_attention import PackedSequences, packed_attention

    torch.manual_seed(0)
    model = ViT(cfg).to(device)
    groups = [model._embed(torch.zeros(n, cfg.in_chans, size, size, device=device))[1]
              for n, size in ((bs * aug.global_views, aug.global_size), (bs * aug.local_views, aug.local_size))]
    packed = PackedSequences.of(groups)
    qkv = torch.randn(packed.starts.numel(), 3 * cfg.width, device=device)
    grad = torch.randn(qkv.shape[0], cfg.width, device=device)
    block = model.blocks[0]
    sdpa = torch.compile(lambda x: block.attention(x, groups))
    ways = {"sdpa": sdpa, "fused": lambda x: packed_attention(x, packed, cfg.heads)}

    def run(fn, dtype):
        x = qkv.to(dtype).requires_grad_()
        out = fn(x)
        return out, torch.autograd.grad(out, x, grad.to(dtype))[0]

    want = run(lambda x: block.attention(x, groups), torch.float32)
    result = {}
    for name, fn in ways.items():
        out, dqkv = run(fn, torch.bfloat16)
        result[name] = {"max_abs_error_out": (out.float() - want[0]).abs().max().item(),
                        "max_abs_error_dqkv": (dqkv.float() - want[1]).abs().max().item(),
                        "ms_forward_backward": do_bench(lambda: run(fn, torch.bfloat16), return_mode="median")}
    print(f"attention check (one layer, bf16; errors against float32 SDPA): {json.dumps(result)}", flush=True)
    return result


def _new_student(cfg, aug, device, separate_views: bool = False, compile_optimizer: bool = False):
    """The model and its AdamW: fused (CUDA's multi-tensor kernel), or for torch.compile the for-each version
    with the learning rate as a device tensor (a Python float would be a constant of the compiled graph;
    PyTorch takes a tensor learning rate only with capturable=True)."""
    torch.manual_seed(0)
    model = ViT(cfg)
    probe = torch.nn.Sequential(torch.nn.LayerNorm(cfg.width), torch.nn.Linear(cfg.width, 100))
    train = TrainConfig()
    student = (_SeparateViews if separate_views else Student)(
        model, Projector(cfg.width, train.proj_hidden, train.proj_dim), probe).to(device)
    if compile_optimizer:
        opt = torch.optim.AdamW(student.parameters(), lr=torch.tensor(1e-4, device=device), weight_decay=0.05,
                                foreach=True, capturable=True)
    else:
        opt = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.05, fused=True)
    return student, opt


def bench_ours(images_gpu, cfg, aug, bs, steps, warmup, compile_: bool, compile_loss: bool = False,
               profile: bool = False, separate_views: bool = False, compile_mode: str = "default",
               compile_optimizer: bool = False, compile_views: str | None = None, whole_step: bool = False) -> float:
    device = images_gpu.device
    torch._dynamo.reset()  # each variant compiles afresh
    student, opt = _new_student(cfg, aug, device, separate_views, compile_optimizer)
    module = torch.compile(student, mode=compile_mode) if compile_ else student
    opt_step = torch.compile(opt.step) if compile_optimizer else None
    views = compiled_views(device, compile_views) if compile_views else views_with
    objective = _objective(cfg, aug, device, compile_loss and not whole_step)
    gen = torch.Generator(device=device).manual_seed(0)
    forward = None
    if whole_step:  # the step as `train` runs it on one GPU (the model's own compile above goes unused)
        make_constants(device)
        forward = torch.compile(functools.partial(step_forward, student, objective, views_with), mode=compile_mode)
        labels = torch.zeros(bs, dtype=torch.long, device=device)  # the online probe's (any class does)

    def one_step(i, images):
        if forward is None:
            glob, loc = make_views(images, aug, gen, views)
            return _step(module, opt, glob, loc, aug, bs, i, objective, opt_step)
        train_step(forward, opt, images, draw_views(bs, aug, device, gen), objective.directions(i), labels)

    n = len(images_gpu)
    order = torch.randperm(n, device=device)
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        one_step(i, images_gpu[order[(i * bs) % (n - bs):(i * bs) % (n - bs) + bs]])
    torch.cuda.synchronize()
    ips = steps * bs / (time.perf_counter() - t0)
    if profile:
        import tempfile

        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for i in range(5):
                one_step(i, images_gpu[order[i * bs:(i + 1) * bs]])
            torch.cuda.synchronize()
        events = prof.key_averages()
        print(events.table(sort_by="cuda_time_total", row_limit=30), flush=True)
        print(kernel_time_shares(events), flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            prof.export_chrome_trace(f"{tmp}/trace.json")
            print(kernel_runs(json.loads(Path(f"{tmp}/trace.json").read_text())), flush=True)
    return ips


@dataclass
class _KernelRun:
    """Consecutive GPU kernels with the same launcher (CUDA-graph replays, or one by one); times in us."""

    graph: bool
    start: float
    end: float
    kernels: int = 0
    busy: float = 0.0

    def __str__(self) -> str:
        return (f"{'graph' if self.graph else 'one by one'}: {self.kernels} kernels, {self.busy / 1e3:.2f} ms busy "
                f"in {(self.end - self.start) / 1e3:.2f} ms")


def kernel_runs(trace: dict, last: int = 6) -> str:
    """The GPU kernels of a profiler trace in runs, each launched by CUDA-graph replays or one by one: per run,
    its kernels, their busy time and the time it spans (span - busy: the GPU waiting, mostly on the host).
    The last `last` runs (the last step's), one line each, and the totals."""
    events = trace["traceEvents"]
    launcher = {e["args"]["correlation"]: e["name"] for e in events
                if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})}
    kernels = sorted((e for e in events if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")),
                     key=lambda e: e["ts"])
    runs: list[_KernelRun] = []
    for e in kernels:
        graph = launcher.get(e["args"].get("correlation")) == "cudaGraphLaunch"
        if not runs or runs[-1].graph != graph:
            runs.append(_KernelRun(graph, e["ts"], e["ts"]))
        run = runs[-1]
        run.kernels, run.busy, run.end = run.kernels + 1, run.busy + e["dur"], e["ts"] + e["dur"]
    busy = sum(r.busy for r in runs)
    span = runs[-1].end - runs[0].start if runs else 0.0
    return "kernel runs (last step):\n  " + "\n  ".join(str(r) for r in runs[-last:]) + (
        f"\nall: {len(kernels)} kernels, {busy / 1e3:.2f} ms busy in {span / 1e3:.2f} ms")


KERNEL_KINDS = (("attention", ("flash", "fmha", "attention", "cudnn")),
                ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "cublas")),
                ("fused elementwise (inductor)", ("triton",)))


def kernel_time_shares(events) -> str:
    """GPU kernel time of a profile by kind (first matching name fragment), as one line of shares."""
    totals: dict[str, float] = {}
    for e in events:
        t = getattr(e, "self_device_time_total", 0) or 0
        if t <= 0 or getattr(e, "device_type", None) is None or "cuda" not in str(e.device_type).lower():
            continue
        name = e.key.lower()
        kind = next((k for k, frags in KERNEL_KINDS if any(f in name for f in frags)), "other")
        totals[kind] = totals.get(kind, 0.0) + t
    whole = sum(totals.values()) or 1.0
    shares = ", ".join(f"{k} {100 * v / whole:.1f} %" for k, v in sorted(totals.items(), key=lambda kv: -kv[1]))
    return f"kernel time: {shares} (of {whole / 1e3:.1f} ms)"


def bench_reference(images, cfg, aug, bs, steps, warmup, workers, device, with_model=True) -> float:
    loader = torch.utils.data.DataLoader(_RefDataset(images, aug), batch_size=bs, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=True, persistent_workers=True,
                                         prefetch_factor=4)
    student, opt = _new_student(cfg, aug, device) if with_model else (None, None)
    objective = _objective(cfg, aug, device, compile_loss=False)
    it = iter(loader)
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        g, l_ = next(it)
        if with_model:
            glob = g.to(device, non_blocking=True).transpose(0, 1).flatten(0, 1)
            loc = l_.to(device, non_blocking=True).transpose(0, 1).flatten(0, 1)
            _step(student, opt, glob, loc, aug, bs, i, objective)
    torch.cuda.synchronize()
    return steps * bs / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", required=True, help="folder(s) with train-*.npz shards")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=14)
    p.add_argument("--global-views", type=int, default=2)
    p.add_argument("--local-views", type=int, default=6)
    p.add_argument("--local-size", type=int, help="pixels of a local view (default: the --size preset's)")
    p.add_argument("--size", default="nano", help="model size preset of `train` (nano, vit-s16-224)")
    p.add_argument("--only", nargs="+", help="run only these variants (names as printed)")
    p.add_argument("--profile", action="store_true", help="print the CUDA kernel profile of the fastest variant")
    p.add_argument("--separate-views", action="store_true",
                   help="ours: global and local views through the backbone separately (the step before packing)")
    p.add_argument("--attention", choices=["fused", "sdpa", *ATTENTION_KERNELS], default="fused",
                   help="fused: our Triton kernel (default); sdpa: SDPA per view size, PyTorch's kernel choice; "
                        "else SDPA with only that kernel")
    p.add_argument("--gelu", choices=["fused", "torch"], default="fused",
                   help="fused: our Triton kernels for the MLP's bias + GELU (default); torch: nn.Linear + nn.GELU")
    p.add_argument("--compile-views", nargs="?", const="default", metavar="MODE",
                   help="ours: the augmentations compiled (a few fused kernels instead of one launch per operation), "
                        "in this torch.compile mode (default: default; reduce-overhead: also a CUDA graph)")
    p.add_argument("--whole-step", action="store_true",
                   help="ours: the step as `train` runs it on one GPU (trainer.step_forward: augmentations, model "
                        "and loss compiled as one function, fused AdamW)")
    p.add_argument("--compile-optimizer", action="store_true",
                   help="ours: AdamW's step compiled (for-each version, learning rate as a tensor) instead of fused")
    p.add_argument("--coordinate-descent", action="store_true",
                   help="Inductor tunes the launch configuration of each of its kernels (coordinate descent)")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode of the model (default, max-autotune-no-cudagraphs, max-autotune, ...)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    if args.whole_step and (args.compile_optimizer or args.compile_views or args.separate_views):
        p.error("--whole-step is train's own step: no --compile-optimizer, --compile-views or --separate-views")
    from site_builder.train.command import SIZES

    torch.backends.cuda.matmul.allow_tf32 = True
    use_attention_kernel(args.attention)
    use_gelu_kernel(args.gelu)
    import torch._inductor.config as inductor

    inductor.coordinate_descent_tuning = args.coordinate_descent
    device = torch.device("cuda")
    preset = SIZES[args.size]
    cfg = ViTConfig(**{k[6:]: v for k, v in preset.items() if k.startswith("model.")})
    aug = AugConfig(**{**{k[4:]: v for k, v in preset.items() if k.startswith("aug.")},
                       "global_views": args.global_views, "local_views": args.local_views,
                       **({"local_size": args.local_size} if args.local_size else {})})
    images = load_train_images(args.data)
    images_gpu = torch.from_numpy(images).to(device)
    train = TrainConfig()
    flops = 3 * forward_flops_per_image(cfg, aug, train.proj_hidden, train.proj_dim)
    bs = args.batch_size
    check = attention_check(cfg, aug, bs, device) if args.attention == "fused" else None
    ours = dict(separate_views=args.separate_views, compile_mode=args.compile_mode,
                compile_optimizer=args.compile_optimizer, compile_views=args.compile_views,
                whole_step=args.whole_step)
    variants = [
        ("ours, compiled model + compiled loss", lambda: bench_ours(
            images_gpu, cfg, aug, bs, args.steps, args.warmup, True, compile_loss=True, profile=args.profile, **ours)),
        ("ours, compiled model (baseline)", lambda: bench_ours(
            images_gpu, cfg, aug, bs, args.steps, args.warmup, True, **ours)),
        ("ours, eager", lambda: bench_ours(images_gpu, cfg, aug, bs, args.steps, args.warmup, False, **ours)),
        ("reference (CPU DataLoader aug, eager)", lambda: bench_reference(
            images, cfg, aug, bs, args.steps, args.warmup, args.workers, device)),
        ("reference DataLoader alone (no model)", lambda: bench_reference(
            images, cfg, aug, bs, args.steps, args.warmup, args.workers, device, with_model=False)),
    ]
    results = {}
    for name, fn in variants:
        if args.only and not any(o in name for o in args.only):
            continue
        torch.cuda.reset_peak_memory_stats()
        ips = fn()
        has_model = "no model" not in name
        results[name] = {"images_per_s": ips, "views_per_s": ips * (aug.global_views + aug.local_views),
                         "mfu": ips * flops / PEAK_BF16_FLOPS if has_model else None,
                         "max_mem_gib": torch.cuda.max_memory_allocated() / 2**30}
        mfu = f"{100 * results[name]['mfu']:5.1f}%" if has_model else "  n/a "
        print(f"{name:40s} {ips:9.0f} img/s  {results[name]['views_per_s']:9.0f} views/s  "
              f"MFU {mfu}  mem {results[name]['max_mem_gib']:.1f} GiB", flush=True)
    summary = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "batch_size": bs,
               "size": args.size, "views": [aug.global_views, aug.global_size, aug.local_views, aug.local_size],
               "workers": args.workers, "train_gflops_per_image": flops / 1e9,
               "ours": {"packed_views": not args.separate_views, "attention": args.attention, "gelu": args.gelu,
                        "compiled_views": args.compile_views, "compiled_optimizer": args.compile_optimizer,
                        "whole_step": args.whole_step,
                        "coordinate_descent": args.coordinate_descent,
                        "compile_mode": args.compile_mode},
               "results": results}
    if check:
        summary["attention_check"] = check
    base = results.get("ours, compiled model (baseline)", {}).get("images_per_s")
    best = results.get("ours, compiled model + compiled loss", {}).get("images_per_s")
    if base and best:
        summary["ratio_compiled_loss_vs_baseline"] = best / base
        print(f"compiled loss / baseline = {best / base:.3f}x")
    ref = results.get("reference (CPU DataLoader aug, eager)", {}).get("images_per_s")
    if best and ref:
        summary["ratio_ours_vs_reference"] = best / ref
        print(f"{summary['gpu']}: ours / reference = {best / ref:.2f}x")
    print(f"{flops / 1e9:.1f} GFLOP per image for forward+backward; MFU against {PEAK_BF16_FLOPS / 1e12:.0f} TFLOP/s")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
