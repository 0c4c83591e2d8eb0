"""What a reader (online or offline) hands to the exporter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass
class RunData:
    rows: Iterable[dict[str, Any]]
    """History rows as wandb gives them: `{"_step": 3, "train/loss": 0.5, ...}`; absent/None = not logged."""
    config: dict[str, Any]
    summary: dict[str, Any]
    where: str
    """How errors name the run (the file or entity/project/run_id)."""
    source: str
    """Provenance written to meta.json: the run file relative to the project, or entity/project/run_id."""
    kind: str
    """"offline" or "online"."""
    run_id: str
    run_name: str
    project: str
    entity: str
    state: str
    start_time: str
    logged_with_wandb: str = ""
    """wandb version that wrote the run (offline files record it), "" where unknown."""
    warnings: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list, repr=False)
    """Credentials in use (the API key) that must never be written out; see history.redact."""
