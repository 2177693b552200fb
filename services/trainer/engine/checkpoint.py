"""Checkpoints: everything a run needs to continue exactly where it stopped.

``run_dir/checkpoints/step_NNNNNN.pt`` (the last ``KEEP_LAST`` are kept) and ``latest.pt``
(a hard link to the newest), each written to a temporary file, fsynced and renamed, so a
kill never leaves a half-written checkpoint. Contents (plain types and tensors only, loaded
with ``torch.load(..., weights_only=True)``):

    format, config (JSON-able dict), recipe,
    nets {name: state_dict of the plain module}, optimizers, schedulers, scaler,
    step, epoch, batch (batches of `epoch` already trained: the position inside the epoch),
    extra (recipe.extra_state()), rng (python, numpy, torch, cuda), data (sampler seed,
    world size), metrics (latest evaluation), published (PublishedVersion dicts)

The data order needs no generator state: it is a function of (seed, epoch, rank), see
``services.trainer.data.loading``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from services.trainer.config import TrainConfig
from services.trainer.recipes.base import Recipe, unwrap
from shared.registry import atomic_write

log = logging.getLogger(__name__)

FORMAT = 1
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.pt"
KEEP_LAST = 3  # step_*.pt files kept besides latest.pt


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR


def collect_state(
    recipe: Recipe,
    schedulers: Mapping[str, LRScheduler],
    scaler: torch.amp.GradScaler | None,
    *,
    step: int,
    epoch: int,
    batch: int,
    rng: dict[str, Any],
    world_size: int = 1,
    metrics: dict[str, float] | None = None,
    published: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "config": recipe.config.model_dump(mode="json"),
        "recipe": recipe.name,
        "nets": {name: unwrap(net).state_dict() for name, net in recipe.nets.items()},
        "optimizers": {name: opt.state_dict() for name, opt in recipe.optimizers.items()},
        "schedulers": {name: s.state_dict() for name, s in schedulers.items()},
        "scaler": scaler.state_dict() if scaler is not None else {},
        "step": step,
        "epoch": epoch,
        "batch": batch,
        "extra": recipe.extra_state(),
        "rng": rng,
        "data": {"seed": recipe.config.seed, "world_size": world_size},
        "metrics": dict(metrics or {}),
        "published": list(published or []),
    }


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``step_NNNNNN.pt`` atomically, point ``latest.pt`` at it, prune old ones."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{int(state['step']):06d}.pt"
    with atomic_write(path) as tmp:
        torch.save(state, tmp)
    with atomic_write(folder / LATEST) as tmp:
        try:
            os.link(path, tmp)
        except OSError:  # no hard links on this filesystem
            shutil.copyfile(path, tmp)
    for old in sorted(folder.glob("step_*.pt"))[:-KEEP_LAST]:
        with contextlib.suppress(OSError):
            old.unlink()
    log.info("checkpoint %s", path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a trainer checkpoint (format {state.get('format')!r})")
    return state


def restore_state(
    recipe: Recipe,
    schedulers: Mapping[str, LRScheduler],
    scaler: torch.amp.GradScaler | None,
    state: dict[str, Any],
) -> None:
    """Nets, optimizers, schedulers, scaler and the recipe's extra state (not the RNG)."""
    if set(state["nets"]) != set(recipe.nets):
        raise ValueError(
            f"checkpoint has nets {sorted(state['nets'])}, recipe {recipe.name} has "
            f"{sorted(recipe.nets)}"
        )
    for name, net in recipe.nets.items():
        unwrap(net).load_state_dict(state["nets"][name])
    for name, opt in recipe.optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    for name, sched in schedulers.items():
        if name in state["schedulers"]:
            sched.load_state_dict(state["schedulers"][name])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    recipe.load_extra_state(state["extra"])


def config_from_checkpoint(state: dict[str, Any], **overrides: Any) -> TrainConfig:
    data = dict(state["config"])
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.model_validate(data)


def recipe_from_checkpoint(
    path: Path, device: torch.device | str = "cpu", **overrides: Any
) -> tuple[Recipe, dict[str, Any]]:
    """The checkpoint's recipe with its trained nets (eval mode), and the checkpoint."""
    from services.trainer.recipes import get_recipe  # importing it registers every recipe

    state = load_checkpoint(path)
    config = config_from_checkpoint(state, **overrides)
    recipe = get_recipe(config.recipe)(config, torch.device(device))
    for name, net in recipe.nets.items():
        net.load_state_dict(state["nets"][name])
        net.eval()
    return recipe, state
