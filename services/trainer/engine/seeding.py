"""Seeds, deterministic mode, and the RNG state a checkpoint carries.

Reproducibility rests on three rules:

- everything is seeded from ``config.seed`` (python, numpy, torch; ``+ rank`` under DDP);
- a data item's augmentation draws from its own generator, seeded by (seed, epoch, index)
  (``item_seed``), so the data order and crops do not depend on workers or on a resume;
- whatever is not a training step (evaluation, exports) runs inside :func:`isolated_rng`, so
  it leaves the training RNG streams untouched: a resumed run that skips an evaluation draws
  the same dropout masks as the uninterrupted one.

RNG states are stored as tensors and plain Python values, so checkpoints load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import torch

_MIX = 1_000_003  # a prime for combining seeds


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one (epoch, item) of a run seeded with ``seed``."""
    return ((seed * _MIX + epoch) * _MIX + index) % (2**63 - 1)


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: python and numpy seeds from the worker's torch seed."""
    del worker_id
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


@contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms + cuDNN flags inside the block (restored afterwards).

    Off: cuDNN benchmark mode (fastest kernels, not bitwise reproducible on GPU).
    """
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        # warn_only: an op without a deterministic kernel warns instead of failing the run
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:]


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU and CUDA RNG states as weights_only-loadable values."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = cast(
        tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True)
    )
    return {
        "python": {
            "version": version,
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run the block with every RNG seeded from ``seed``; restore the outer states after."""
    saved = capture_rng_state()
    try:
        seed_everything(seed)
        yield
    finally:
        restore_rng_state(saved)
