"""What a model cost to train, summed over every run that continued it.

A run's ``Compute`` counts optimizer steps, training images seen, CPU seconds (``cpu_clock``:
the process's threads and its finished child processes, i.e. the DataLoader's workers) and wall
seconds. A run started with ``--init-from`` begins from the totals of the
weights it continues (``base``), so a published manifest's ``compute`` is cumulative:

    {"steps": 12000, "images_seen": 48000, "cpu_hours": 1.6, "wall_hours": 0.85}
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

KEYS = ("steps", "images_seen", "cpu_hours", "wall_hours")


def cpu_clock() -> float:
    """CPU seconds of this process (all threads) and of its children that have ended.

    DataLoader workers are child processes: their CPU time is added when an epoch's loader
    shuts them down, so within an epoch the count lags by the workers' share.
    """
    times = os.times()
    return time.process_time() + times.children_user + times.children_system


@dataclass
class Compute:
    base: dict[str, float] = field(default_factory=dict)  # totals of what this run continues
    steps: int = 0  # this run's, including its own resumes
    images: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    _cpu0: float = field(default=0.0, repr=False)
    _wall0: float = field(default=0.0, repr=False)

    def start(self) -> None:
        """Mark the start of a stretch of training (after data loading and set-up)."""
        self._cpu0, self._wall0 = cpu_clock(), time.monotonic()

    def add(self, steps: int, images: int) -> None:
        """Count ``steps`` steps over ``images`` images, and the time since the last call."""
        cpu, wall = cpu_clock(), time.monotonic()
        self.cpu_s += cpu - self._cpu0
        self.wall_s += wall - self._wall0
        self._cpu0, self._wall0 = cpu, wall
        self.steps += steps
        self.images += images

    def totals(self) -> dict[str, float]:
        """Cumulative figures (base + this run), as published in the manifest."""
        b = self.base
        return {
            "steps": int(b.get("steps", 0)) + self.steps,
            "images_seen": int(b.get("images_seen", 0)) + self.images,
            "cpu_hours": round(float(b.get("cpu_hours", 0.0)) + self.cpu_s / 3600, 4),
            "wall_hours": round(float(b.get("wall_hours", 0.0)) + self.wall_s / 3600, 4),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "base": dict(self.base),
            "steps": self.steps,
            "images": self.images,
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base = {k: float(v) for k, v in state.get("base", {}).items()}
        self.steps, self.images = int(state["steps"]), int(state["images"])
        self.cpu_s, self.wall_s = float(state["cpu_s"]), float(state["wall_s"])
