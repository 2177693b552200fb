"""A first tiny run to start others from: the weights, ``--init-from`` and bundle tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from services.trainer.engine.loop import train
from services.trainer.engine.weights import pack_checkpoint
from services.trainer.recipes.pix2pix import Pix2PixRecipe
from shared.registry import Registry
from tests.trainer.tiny_runs import TINY_OPTIONS, load_state, one_thread, tiny_config

NAME = "sketch2photo-pix2pix"  # the tiny run's published name (the recipe's default)
BUDGET_S = 0.5
MANY_EPOCHS = 50  # 250 steps: far more than the budget allows


@dataclass
class FirstRun:
    """A tiny run stopped by its CPU budget and published into ``registry``."""

    root: Path
    registry: Registry
    steps: int
    total_steps_planned: int
    checkpoint: Path
    state: dict[str, Any]
    weights: Path  # the checkpoint packed as a weights file


def make_first_run(root: Path) -> FirstRun:
    """A tiny pix2pix run stopped by its CPU budget, published, and packed."""
    registry = Registry(root / "models")
    config = tiny_config(
        root / "run", epochs=MANY_EPOCHS, epochs_decay=0, cpu_budget_s=BUDGET_S, publish="always"
    )
    with one_thread():
        final = train(config, registry=registry)
    assert final.state == "finished"
    assert final.checkpoint is not None
    checkpoint = Path(final.checkpoint)
    state = load_state(checkpoint)
    weights = pack_checkpoint(state, root / "weights" / "g.safetensors", source=str(checkpoint))
    return FirstRun(root, registry, final.step, MANY_EPOCHS * 5, checkpoint, state, weights)


def fresh_recipe(tmp_path: Path, seed: int = 123, **options: Any) -> Pix2PixRecipe:
    torch.manual_seed(seed)  # a different init from the first run's
    config = tiny_config(tmp_path, options={**TINY_OPTIONS, **options})
    return Pix2PixRecipe(config, torch.device("cpu"))


def fp16(params: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.half().float() if v.is_floating_point() else v for k, v in params.items()}


def assert_same(got: dict[str, Tensor], want: dict[str, Tensor]) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        assert torch.equal(got[k].float(), v.float()), k


def differs(got: dict[str, Tensor], want: dict[str, Tensor]) -> bool:
    return any(not torch.equal(got[k].float(), v.float()) for k, v in want.items())
