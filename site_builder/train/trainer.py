"""The training loop: whole data set on the device as uint8, batched GPU augmentations, bf16 autocast,
packed views with our attention and GELU kernels (train/packed_attention.py, train/bias_gelu.py),
torch.compile (on one GPU the step's views, model and loss one graph, replayed as CUDA graphs), fused AdamW,
and no host sync inside the step loop (per-step metrics stay on the device and are flushed to wandb every
`log_every` steps).

Works on one device, or under `torchrun` with DistributedDataParallel (NCCL on GPUs, gloo on CPU).
"""

from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from site_builder.errors import UserError
from site_builder.train import objectives
from site_builder.train.augment import compiled_views, draw_views, make_constants, views_with
from site_builder.train.checkpoint import read_checkpoint, save_checkpoint
from site_builder.train.data import load_cifar100, normalize, validation_split
from site_builder.train.config import TrainConfig
from site_builder.train.model import Projector, ViT, count_params
from site_builder.train.probe import evaluate_representation, split_features

OBJECTIVES = ("lejepa", "infonce")


class Student(nn.Module):
    """Backbone + projector + online probe as one module, so that one DDP wrapper and one compiled
    graph cover a whole step's forward (global and local views go through the backbone in one packed pass)."""

    def __init__(self, model: ViT, projector: Projector, probe: nn.Module):
        super().__init__()
        self.model, self.projector, self.probe = model, projector, probe

    def embed(self, glob: torch.Tensor, loc: torch.Tensor | None) -> torch.Tensor:
        """CLS embeddings of the global, then the local views (bench overrides it to time the unpacked step)."""
        return self.model.forward_views([glob] if loc is None else [glob, loc])

    def forward(self, glob: torch.Tensor, loc: torch.Tensor | None):
        emb = self.embed(glob, loc)
        n_global = glob.shape[0]
        z = self.projector(emb).float()
        probe_logits = self.probe(emb[:n_global].detach().float())
        return z, probe_logits


def _lr_at(cfg: TrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
    warm = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    low = cfg.lr * cfg.min_lr_ratio
    return low + (cfg.lr - low) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class _Setup:
    """Process group, device and rank (one process, or one of torchrun's)."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is visible (use --device cpu for a small run)")
        if device == "cuda":
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = torch.device(device)
        self.backend = "nccl" if self.device.type == "cuda" else "gloo"
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group(self.backend)

    @property
    def main(self) -> bool:
        return self.rank == 0


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for idx, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            out[f"opt.{idx}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    sd["state"] = state
    opt.load_state_dict(sd)


class Trainer:
    def __init__(self, cfg: TrainConfig):
        if cfg.objective not in OBJECTIVES:
            raise UserError(f"--objective must be one of {', '.join(OBJECTIVES)}, not {cfg.objective!r}")
        self.cfg = cfg
        self.setup = _Setup(cfg.device)
        dev = self.setup.device
        if cfg.batch_size % self.setup.world:
            raise UserError(f"--batch-size {cfg.batch_size} is not divisible by the {self.setup.world} processes")
        self.local_bs = cfg.batch_size // self.setup.world
        torch.manual_seed(cfg.seed)
        images, labels = load_cifar100(cfg.data, "train", cfg.md5.get("train"))
        if cfg.limit_train:
            images, labels = images[:cfg.limit_train], labels[:cfg.limit_train]
        self.split = validation_split(labels, cfg.val_per_class, cfg.val_seed)
        xtr, ytr = images[self.split.train_idx], labels[self.split.train_idx]
        self.steps_per_epoch = len(xtr) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise UserError(f"--batch-size {cfg.batch_size} is larger than the {len(xtr)} training images")
        self.train_x = torch.from_numpy(xtr).to(dev)
        self.train_y = torch.from_numpy(ytr).to(dev)
        self.val_x = torch.from_numpy(images[self.split.val_idx]).to(dev)
        self.val_y = torch.from_numpy(labels[self.split.val_idx]).to(dev)
        self.run_config = {**cfg.flat(), **self._provenance()}

        self.model = ViT(cfg.model).to(dev)
        self.projector = Projector(cfg.model.width, cfg.proj_hidden, cfg.proj_dim).to(dev)
        self.probe = nn.Sequential(nn.LayerNorm(cfg.model.width), nn.Linear(cfg.model.width, 100)).to(dev)
        self.student = Student(self.model, self.projector, self.probe)
        self.opt = torch.optim.AdamW(
            [{"params": list(self.model.parameters()) + list(self.projector.parameters())},
             {"params": list(self.probe.parameters()), "lr": cfg.probe_lr, "weight_decay": cfg.probe_weight_decay}],
            lr=cfg.lr, weight_decay=cfg.weight_decay, fused=dev.type == "cuda")
        self.step, self.epoch = 0, 0
        self.wandb_id = None
        self._maybe_resume()

        module: nn.Module = self.student
        if self.setup.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            module = DDP(self.student, device_ids=[dev.index] if dev.type == "cuda" else None)
        self.objective = Objective(cfg, self.setup.device)
        self.forward = functools.partial(step_forward, module, self.objective, views_with)
        if cfg.compile and dev.type == "cuda" and self.setup.world == 1:
            # One graph for the views, model and loss, its forward and backward replayed as CUDA graphs: the
            # host's kernel launches otherwise leave the GPU idle for part of each step (bench --whole-step).
            make_constants(dev)
            self.forward = torch.compile(self.forward, mode="reduce-overhead")
        elif cfg.compile and dev.type == "cuda":
            # Under DDP the gradient all-reduce runs between the graph's pieces: default mode, in three parts.
            self.objective.compile()
            self.forward = functools.partial(step_forward, torch.compile(module), self.objective,
                                             compiled_views(dev))
        self.aug_gen = torch.Generator(device=dev)

    def _provenance(self) -> dict:
        """What the run config needs beyond the recipe: the data split, the code version, the processes."""
        commit, dirty = source_version()
        return {"data/train_size": len(self.train_x), "data/val_size": len(self.val_x),
                "data/val_per_class": self.split.per_class, "data/val_seed": self.split.seed,
                "data/val_sha256": self.split.sha256, "code/git_commit": commit, "code/git_dirty": dirty,
                "dist/world_size": self.setup.world,
                "dist/backend": self.setup.backend if self.setup.world > 1 else "none"}

    # ----------------------------------------------------------------- checkpoints
    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.out) / self.cfg.run

    def _state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"projector.{k}": v for k, v in self.projector.state_dict().items()}
        out.update({f"probe.{k}": v for k, v in self.probe.state_dict().items()})
        out.update(_optimizer_tensors(self.opt))
        return out

    def save(self, name: str, with_state: bool, dtype=None) -> Path:
        return save_checkpoint(
            self.run_dir / name, self.model, run_config=self.run_config, step=self.step, epoch=self.epoch,
            extra_tensors=self._state_tensors() if with_state else None, dtype=dtype,
            extra_info={"run": self.cfg.run, "wandb_id": self.wandb_id, "objective": self.cfg.objective})

    def _maybe_resume(self) -> None:
        last = self.run_dir / "last"
        if not (last / "checkpoint.json").exists():
            return
        info, weights, state = read_checkpoint(last)
        saved = info.get("run_config") or {}
        recipe = self.cfg.flat()
        if {k: saved.get(k) for k in recipe} != recipe or saved.get("data/val_sha256") != self.split.sha256:
            raise UserError("a checkpoint of this run with a different config exists; "
                            "use the same options, another --name, or delete the folder", path=last)
        dev = self.setup.device
        self.model.load_state_dict(weights)
        self.projector.load_state_dict({k[10:]: v for k, v in state.items() if k.startswith("projector.")})
        self.probe.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("probe.")})
        _load_optimizer(self.opt, {k: v.to(dev) if k.endswith(("exp_avg", "exp_avg_sq")) else v
                                   for k, v in state.items() if k.startswith("opt.")})
        self.step, self.epoch, self.wandb_id = info["step"], info["epoch"], info.get("wandb_id")
        if self.setup.main:
            print(f"resuming {self.cfg.run} from {last} (epoch {self.epoch}, step {self.step})", flush=True)

    # ----------------------------------------------------------------- one step
    def _train_step(self, idx: torch.Tensor, lr: float) -> dict[str, torch.Tensor]:
        self.opt.param_groups[0]["lr"] = lr  # group 1 (online probe) keeps its constant lr
        u = draw_views(len(idx), self.cfg.aug, self.setup.device, self.aug_gen)
        return train_step(self.forward, self.opt, self.train_x[idx], u, self.objective.directions(self.step),
                          self.train_y[idx])

    @torch.no_grad()
    def online_probe_accuracy(self) -> torch.Tensor:
        """Top-1 of the online probe on the validation split (the test split is never read during training)."""
        self.model.eval()
        correct = torch.zeros((), device=self.setup.device)
        dev_type = self.setup.device.type
        for i in range(0, len(self.val_x), 1000):
            x = normalize(self.val_x[i:i + 1000], self.cfg.aug.global_size)
            with torch.autocast(device_type=dev_type, dtype=torch.bfloat16, enabled=dev_type == "cuda"):
                logits = self.probe(self.model(x).float())
            correct += (logits.argmax(1) == self.val_y[i:i + 1000]).sum()
        self.model.train()
        return correct / max(1, len(self.val_x))

    # ----------------------------------------------------------------- the run
    def _init_wandb(self):
        if not (self.cfg.wandb and self.setup.main):
            return None
        import wandb

        if self.wandb_id is None:
            self.wandb_id = f"{self.cfg.run}-{int(time.time())}"
        return wandb.init(project="lejepa-c100", name=self.cfg.run, id=self.wandb_id, dir=self.cfg.wandb_dir,
                          mode="offline", config=self.run_config, resume="allow",
                          settings=wandb.Settings(console="off", x_disable_stats=True))

    def fit(self) -> dict:
        cfg, s = self.cfg, self.setup
        run = self._init_wandb()
        total_steps = cfg.epochs * self.steps_per_epoch
        n_params = count_params(self.model)
        if s.main:
            print(f"{cfg.run}: {n_params / 1e6:.2f}M backbone params, {len(self.train_x)} train images, "
                  f"{self.steps_per_epoch} steps/epoch, {cfg.epochs} epochs, world {s.world}, device {s.device}",
                  flush=True)
        started = time.time()
        pending: list[tuple[int, float, dict]] = []  # (step, lr, metrics still on the device)

        def flush():
            if not pending:
                return
            keys = sorted(pending[0][2])
            values = torch.stack([torch.stack([m[k].float() for k in keys]) for _, _, m in pending]).cpu()
            if run is not None:
                for (step, lr, _), row in zip(pending, values.tolist()):
                    run.log({**dict(zip(keys, row)), "train/lr": lr}, step=step)
            pending.clear()

        summary = {}
        while self.epoch < cfg.epochs:
            epoch_start = time.time()
            # Every epoch's randomness derives from (seed, epoch, rank), so a resumed run repeats an uninterrupted one.
            self.aug_gen.manual_seed(cfg.seed * 7919 + 1000 * self.epoch + s.rank)
            gen = torch.Generator().manual_seed(cfg.seed * 100_003 + self.epoch)
            order = torch.randperm(len(self.train_x), generator=gen)
            take = order[: self.steps_per_epoch * cfg.batch_size][s.rank::s.world].to(s.device)
            for i in range(self.steps_per_epoch):
                lr = _lr_at(cfg, self.step, total_steps, self.steps_per_epoch)
                pending.append((self.step, lr, self._train_step(take[i * self.local_bs:(i + 1) * self.local_bs], lr)))
                self.step += 1
                if len(pending) >= cfg.log_every:
                    flush()
            flush()
            self.epoch += 1
            acc = self.online_probe_accuracy().item()
            secs = time.time() - epoch_start
            if run is not None:
                run.log({"epoch": self.epoch, "probe/val_acc": acc,
                         "perf/images_per_s": self.steps_per_epoch * cfg.batch_size / secs}, step=self.step - 1)
            if s.main:
                print(f"{cfg.run} epoch {self.epoch}/{cfg.epochs} probe/val_acc {acc:.4f} "
                      f"({secs:.1f}s, {self.steps_per_epoch * cfg.batch_size / secs:.0f} img/s)", flush=True)
            out_of_time = bool(cfg.time_limit_min) and (time.time() - started) > 60 * cfg.time_limit_min
            if dist.is_initialized():  # every process must stop after the same epoch: rank 0 decides
                flag = torch.tensor([float(out_of_time)], device=s.device)
                dist.broadcast(flag, src=0)
                out_of_time = bool(flag.item())
            if s.main and (self.epoch % cfg.ckpt_every == 0 or out_of_time or self.epoch == cfg.epochs):
                self.save("last", with_state=True)
            if out_of_time and self.epoch < cfg.epochs:
                if s.main:
                    print(f"{cfg.run}: time limit reached at epoch {self.epoch}; run the same command to resume",
                          flush=True)
                if run is not None:
                    run.finish()
                if dist.is_initialized():
                    dist.barrier()  # rank 0 has saved the checkpoint the others resume from
                return {"stopped_early": True, "epoch": self.epoch}
        wall = time.time() - started
        if s.main:
            self.save("final", with_state=False, dtype=torch.bfloat16)
            summary = self.final_evaluation()
            summary.update({"train/wall_s": wall, "train/params_backbone": n_params,
                            "train/epochs_done": self.epoch})
            if s.device.type == "cuda":
                summary["gpu/max_memory_gib"] = torch.cuda.max_memory_allocated(s.device) / 2 ** 30
            if run is not None:
                run.summary.update(summary)
                run.finish()
            print(f"{cfg.run}: final evaluation " + ", ".join(f"{k} {v:.4g}" for k, v in summary.items()), flush=True)
        if dist.is_initialized():
            dist.barrier()
        return summary

    def final_evaluation(self) -> dict:
        """Linear probe (weight decay chosen on validation), k-NN and effective rank of the frozen backbone;
        the test split is loaded and scored only for a final model (--eval-test)."""
        dev, cfg = self.setup.device, self.cfg
        size = cfg.aug.global_size  # the resolution the model was trained at
        train = split_features(self.model, self.train_x, self.train_y, dev, size)
        val = split_features(self.model, self.val_x, self.val_y, dev, size)
        test = None
        if cfg.eval_test:
            xte, yte = load_cifar100(cfg.data, "test", cfg.md5.get("test"))
            test = split_features(self.model, torch.from_numpy(xte).to(dev), torch.from_numpy(yte), dev, size)
        return evaluate_representation(train, val, test, weight_decays=cfg.final_probe_weight_decays, device=dev)


def step_forward(student: nn.Module, objective: Objective, views, images_u8: torch.Tensor, u: torch.Tensor,
                 directions: torch.Tensor | None,
                 labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A step's forward on this process's images: their views (`views(images_u8, u, aug)`, view-major: V x B),
    backbone, projector and online probe under bf16 autocast, and the loss to minimise (the objective's plus the
    probe's) with its parts. Under DDP the gradients are averaged over processes, and SIGReg / InfoNCE see the
    global batch, so N processes with B images each step like one process with N x B (tests/test_train_ddp.py)."""
    a = objective.cfg.aug
    glob, loc = views(images_u8, u, a)
    dev_type = glob.device.type
    with torch.autocast(device_type=dev_type, dtype=torch.bfloat16, enabled=dev_type == "cuda"):
        z, probe_logits = student(glob, loc)
    z = z.view(a.global_views + a.local_views, len(labels), -1)
    loss, metrics = objective(z, directions)
    probe_loss = F.cross_entropy(probe_logits.float(), labels.repeat(a.global_views))
    metrics.update({"train/loss": loss.detach(), "probe/train_loss": probe_loss.detach()})
    return loss + probe_loss, metrics


def train_step(forward, opt: torch.optim.Optimizer, images_u8: torch.Tensor, u: torch.Tensor,
               directions: torch.Tensor | None, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """One optimisation step: `forward` is `step_forward` with its student, objective and views bound (compiled
    or not). Returns the metrics, copied: a CUDA graph's outputs are overwritten by its next replay."""
    loss, metrics = forward(images_u8, u, directions, labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {k: v.clone() for k, v in metrics.items()}


class Objective:
    """The training loss on projections z (V x B x K): LeJEPA (SIGReg + invariance) or InfoNCE.

    `compile()` hands the loss to torch.compile: SIGReg's projections, cosines and sines over 17 knots are
    one fused kernel instead of a dozen memory-bound passes. The random directions stay outside the
    compiled graph (a seeded generator per step)."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.lejepa, self.info_nce = objectives.lejepa_loss, objectives.info_nce

    def compile(self) -> None:
        self.lejepa, self.info_nce = torch.compile(self.lejepa), torch.compile(self.info_nce)

    def directions(self, step: int) -> torch.Tensor | None:
        """SIGReg's random directions at this step (the same on every process); InfoNCE has none."""
        cfg = self.cfg
        if cfg.objective != "lejepa":
            return None
        return objectives.random_directions(cfg.proj_dim, cfg.num_slices, cfg.seed * 1_000_003 + step, self.device)

    def __call__(self, z: torch.Tensor,
                 directions: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        if cfg.objective == "lejepa":
            parts = self.lejepa(z, directions, cfg.lam, cfg.aug.global_views, cfg.knots, cfg.t_max)
            return parts["loss"], {"train/sigreg": parts["sigreg"].detach(), "train/inv": parts["inv"].detach()}
        loss = self.info_nce(z, cfg.temperature)
        return loss, {"train/infonce": loss.detach()}


def source_version() -> tuple[str, bool | None]:
    """(git commit, whether the tree had uncommitted changes) of the code that runs.

    Where the code runs from a copy of the tree whose .git is not the source's (a GPU machine),
    SITE_BUILDER_GIT_COMMIT and SITE_BUILDER_GIT_DIRTY ("0"/"1"), set by whoever copied it, say it and
    win over git; without either, "unknown"."""
    import subprocess

    if "SITE_BUILDER_GIT_COMMIT" in os.environ:
        dirty = os.environ.get("SITE_BUILDER_GIT_DIRTY")
        return os.environ["SITE_BUILDER_GIT_COMMIT"], None if dirty is None else dirty == "1"
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
