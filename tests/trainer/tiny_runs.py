"""Tiny pix2pix runs for the training-loop tests: 32 px synthetic pairs, 4-wide nets.

Each run takes a second or two on one CPU thread. Tests pin torch to one thread (the suite
shares two busy cores; more threads only contend) and subprocesses get OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import torch

from services.trainer.commands import main
from services.trainer.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
TINY_OPTIONS: dict[str, Any] = {"ngf": 4, "ndf": 4}
SYNC_BN_SEED = 0  # the batch ddp_worker.py normalises with GlooSyncBatchNorm


def tiny_fields(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """TrainConfig fields of a tiny pix2pix run: 10 training pairs, batch 2 (5 steps an epoch),
    one epoch at the initial rate and two of decay (15 steps), no DataLoader workers."""
    base: dict[str, Any] = {
        "recipe": "pix2pix",
        "data": "synthetic://10?val=2",
        "image_size": 32,
        "batch_size": 2,
        "epochs": 1,
        "epochs_decay": 2,
        "num_workers": 0,
        "log_every": 1,
        "checkpoint_every": 1000,
        "eval_samples": 2,
        "run_dir": str(run_dir),
        "options": dict(TINY_OPTIONS),
    }
    base.update(fields)
    return base


def tiny_config(run_dir: Path, **fields: Any) -> TrainConfig:
    return TrainConfig.model_validate(tiny_fields(run_dir, **fields))


@contextmanager
def one_thread() -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a trainer subprocess: the repo importable, one thread, quiet logs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "S2I_LOG_LEVEL": "WARNING", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def python() -> str:
    return sys.executable


def load_state(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``python -m services.trainer *argv`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()
