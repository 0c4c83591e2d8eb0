"""Wall time of the analyze stages on a ViT-nano of the training shape (random init, same cost as trained).

    python -m site_builder.analyze.bench --data DIR [--device cpu|cuda] [--repeats 3] [--probe-images 2000]

Prints the best and median of `--repeats` runs for each stage (panel figures at the nano's panel
resolutions, 32 and 64, embedding figures on --embeddings images, probe feature extraction per 1000
images) and the ratio of a whole default run (no probe) to the issue's budgets: well under 60 s on
2 CPU cores, 10 s on an H100.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    from site_builder.analyze import pipeline
    from site_builder.train.data import load_cifar100
    from site_builder.train.model import ViT, ViTConfig
    from site_builder.train.probe import extract_features

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--embeddings", type=int, default=1024)
    p.add_argument("--probe-images", type=int, default=2000)
    args = p.parse_args()

    device = pipeline.select_device(args.device)
    torch.manual_seed(0)
    model = ViT(ViTConfig()).to(device).eval()
    t = time.perf_counter()
    test_x, test_y = load_cifar100(args.data, "test")
    load_s = time.perf_counter() - t
    panel_x = test_x[list(pipeline.PANEL_INDICES)]
    names = pipeline.panel_names(pipeline.PANEL_INDICES, test_y, None)
    size = pipeline.NATIVE_RESOLUTION  # the nano's training resolution
    resolutions = pipeline.panel_resolutions(size)

    stages = {
        "load test split": [load_s],
        f"panel figures ({' + '.join(map(str, resolutions))})": _time(
            lambda: pipeline.panel_figures(model, panel_x, names, device, resolutions), args.repeats),
        f"embedding figures ({args.embeddings} images)": _time(
            lambda: pipeline.embedding_figures(model, None, test_x[: args.embeddings], device, 0, size),
            args.repeats),
    }
    probe_x = torch.from_numpy(test_x[: args.probe_images])
    probe = _time(lambda: extract_features(model, probe_x, device, pipeline.batch_size(device), size), args.repeats)
    stages[f"probe features ({args.probe_images} images)"] = probe

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {name}; repeats: {args.repeats}")
    for stage, times in stages.items():
        print(f"  {stage:<36} best {min(times):7.2f} s   median {statistics.median(times):7.2f} s")
    default_run = sum(min(stages[k]) for k in list(stages)[:3])
    budget = 10.0 if device.type == "cuda" else 60.0
    per_image = min(probe) / args.probe_images
    print(f"  default run (no probe), best: {default_run:.2f} s = {default_run / budget:.2f} x the {budget:.0f} s budget")
    print(f"  probe features for all 60,000 images, extrapolated: {60_000 * per_image:.0f} s "
          "(plus the 100-epoch linear classifier)")


if __name__ == "__main__":
    main()
