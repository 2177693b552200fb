"""What a training run reports while it runs, and what it leaves when it ends."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PublishedVersion(BaseModel):
    model: str
    version: int
    metrics: dict[str, float] = Field(default_factory=dict)
    served: bool  # CURRENT moved to it (it was not worse than the served version)


class Progress(BaseModel):
    """Sent by the loop to ``on_progress`` every ``log_every`` steps and at each event."""

    state: str = "running"  # running | evaluating | publishing | finished | canceled | failed
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    total_epochs: int = 0
    images_per_s: float = 0.0
    eta_s: float | None = None
    losses: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)  # latest evaluation
    published: list[PublishedVersion] = Field(default_factory=list)
    checkpoint: str | None = None  # latest checkpoint path (resume from it)
    run_dir: str | None = None
    message: str = ""
