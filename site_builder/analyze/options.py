"""What `analyze` is asked to do and what it reports: typed values without torch, so that the command
line (`analyze --help`) works with the base install; the work itself is in pipeline.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# CIFAR-100 test indices of the panel (test image i has fine label i % 100): fox (34), chimpanzee (21),
# bear (3), bicycle (8), motorcycle (48), pickup truck (58), each a clear, centred example.
PANEL_INDICES = (34, 121, 403, 408, 348, 58)
METRIC_COLUMNS = ["entropy", "sparsity", "max_attention", "head_diversity", "head_similarity", "uniform_entropy"]


@dataclass
class Options:
    """What to analyze and how; `checkpoint` None means a freshly initialised ViT-nano seeded by `seed`."""

    checkpoint: Path | None
    data: Path
    out: Path | None = None  # default: exports/figures, or exports/explorers with `explorers`
    name: str | None = None
    device: str = "auto"
    images: tuple[int, ...] = PANEL_INDICES
    embeddings: int = 1024
    probe: bool = False
    explorers: bool = False  # instead: the explorers' files (explorers.py) of all 10,000 test images
    explorer_resolution: int | None = None  # input size of the explorers' forward passes; None: as trained
    seed: int = 0
    force: bool = False

    @property
    def random_init(self) -> bool:
        return self.checkpoint is None


@dataclass
class Result:
    target: Path
    cache_key: str
    cached: bool  # True: the folder was up to date and nothing was computed
    device: str = ""
    table: list[dict] = field(default_factory=list)  # attention metrics, one row per panel resolution
    embedding: dict = field(default_factory=dict)
    probe: dict | None = None
    explorers: dict | None = None
    seconds: dict[str, float] = field(default_factory=dict)
