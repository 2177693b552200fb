"""A run's records: ``run_dir/log.jsonl`` and TensorBoard scalars in ``run_dir/tb``.

JSONL: one object per line, appended (a resumed run continues the same file)::

    {"event": "train", "step": 50, "epoch": 1, "losses": {...}, "lr": {"G": 0.0002, ...},
     "images_per_s": 12.3, "time": 1700000000.0}
    {"event": "eval", "step": 400, "epoch": 2, "metrics": {"val_l1": 0.31, ...}, "time": ...}
    {"event": "publish", "step": ..., "published": [{"model": ..., "version": ...}], ...}

TensorBoard: loss/<name>, lr/<optimizer>, perf/images_per_s, metrics/<name>.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

JSONL_FILE = "log.jsonl"
TB_DIR = "tb"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no NaN / inf


class StepMeter:
    """Mean losses, images/s and seconds/step over a log window of training steps."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.t0, self.steps, self.images = time.perf_counter(), 0, 0
        self.sums: dict[str, float] = {}

    def add(self, losses: dict[str, float], images: int) -> None:
        self.steps, self.images = self.steps + 1, self.images + images
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)

    def flush(self) -> tuple[dict[str, float], float, float]:
        """(mean losses, images per second, seconds per step) of the window; starts a new one."""
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        steps = max(self.steps, 1)
        out = ({k: v / steps for k, v in self.sums.items()}, self.images / elapsed, elapsed / steps)
        self.reset()
        return out


class RunLogger:
    """Writes the run's JSONL log and TensorBoard scalars (rank 0 only)."""

    def __init__(self, run_dir: Path, *, tensorboard: bool = True) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / JSONL_FILE
        self._file = self.path.open("a", encoding="utf-8")
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(run_dir / TB_DIR))
            except ImportError:  # tensorboard is part of the trainer extra
                log.warning("tensorboard is not installed; no TensorBoard scalars")

    def write(self, record: dict[str, Any]) -> None:
        record = {**record, "time": time.time()}
        self._file.write(json.dumps(record, allow_nan=False, default=str) + "\n")
        self._file.flush()

    def _scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self._tb is None:
            return
        for name, value in values.items():
            if math.isfinite(value):
                self._tb.add_scalar(f"{prefix}/{name}", value, step)

    def train(
        self,
        *,
        step: int,
        epoch: int,
        losses: dict[str, float],
        lr: dict[str, float],
        images_per_s: float,
    ) -> None:
        self.write(
            {
                "event": "train",
                "step": step,
                "epoch": epoch,
                "losses": {k: _finite(v) for k, v in losses.items()},
                "lr": lr,
                "images_per_s": round(images_per_s, 3),
            }
        )
        self._scalars("loss", losses, step)
        self._scalars("lr", lr, step)
        self._scalars("perf", {"images_per_s": images_per_s}, step)

    def evaluation(
        self, *, step: int, epoch: int, metrics: dict[str, float], grid: str | None = None
    ) -> None:
        self.write(
            {
                "event": "eval",
                "step": step,
                "epoch": epoch,
                "metrics": {k: _finite(v) for k, v in metrics.items()},
                "grid": grid,
            }
        )
        self._scalars("metrics", metrics, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
