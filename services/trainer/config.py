"""A training run's configuration: defaults < config file (YAML or JSON) < ``--set`` overrides.

Recipe hyperparameters live in ``options`` and are validated by the recipe's own
``Options`` model, whose defaults are the paper's (see ``services/trainer/recipes/``).

    python -m services.trainer train --recipe pix2pix --data DATA --config run.yaml \\
        --set batch_size=4 --set options.lambda_l1=50 --set amp=bf16
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.manifest import MODEL_NAME_PATTERN

# dataset layouts (services.trainer.data.open_dataset); "auto": detected from the folder
Layout = Literal[
    "auto", "fs2k", "paired-folders", "unpaired", "aligned", "class-folders", "synthetic"
]
LAYOUTS: tuple[str, ...] = get_args(Layout)[1:]


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: str  # a registered recipe (RECIPE_NAMES, or one a test registers)
    data: str = Field(..., description="dataset folder, or synthetic://N for N synthetic pairs")
    layout: Layout = "auto"
    direction: Literal["sketch2photo", "photo2sketch"] = "sketch2photo"
    # side-by-side (aligned) data: the half that is the model's input; None: the left half
    # for sketch2photo, the right for photo2sketch (facades: label -> photo is "right")
    input_half: Literal["left", "right"] | None = None
    image_size: int | None = None  # None: the recipe's default
    load_size: int | None = None  # resize before the random crop (None: 286/256 of the size)
    fit: Literal["resize", "letterbox"] = "resize"  # non-square images: stretch or pad (white)
    cache: bool = False  # paired data: decode once into memory (services.trainer.data.cache)
    batch_size: int | None = None  # None: the recipe's default (per process under DDP)
    epochs: int | None = None  # epochs at the initial learning rate (None: recipe default)
    epochs_decay: int | None = None  # then linear decay to zero over these epochs
    max_steps: int | None = None  # stop after this many optimizer steps (budgets, tests)
    cpu_budget_s: float | None = None  # stop after this much CPU time (engine/compute.py)
    # the learning-rate decay (engine/schedules.py): "epochs", per epoch as in the paper;
    # "budget", per step over the run's progress (steps / planned steps, max_steps included,
    # or CPU / cpu_budget_s, the larger), so a run its budget stops still ends at rate 0
    schedule: Literal["epochs", "budget"] = "epochs"
    # what to start from, in order (engine/weights.py): weights files, attribute classifier
    # files (netC), model folders, bundled models or NAME[@VERSION]s; a later one's nets
    # replace an earlier one's; one string is one source
    init_from: tuple[str, ...] = ()
    init_skip: tuple[str, ...] = ()  # nets init_from leaves fresh (e.g. "netD"); one string: one
    lr: float | None = None
    beta1: float | None = None
    beta2: float = 0.999
    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    num_workers: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every: int = 50  # steps between JSONL / TensorBoard / progress lines
    checkpoint_every: int = 500  # steps between checkpoints (and at every epoch end)
    eval_every: int = 1  # epochs between evaluations (sample grid + metrics)
    eval_samples: int = 64  # held-out pairs used by an evaluation
    publish_every: int = 0  # epochs between publishes; 0: only at the end
    publish: Literal["if-better", "always", "never"] = "if-better"
    publish_metric: str | None = None  # None: the recipe's default (lower is better unless
    #                                   listed in HIGHER_IS_BETTER)
    # None: the recipe's default (cyclegan: two models); checked here, not after training
    model_name: str | None = Field(default=None, pattern=MODEL_NAME_PATTERN)
    run_dir: Path | None = None  # None: <S2I_RUN_ROOT>/<recipe>-<timestamp>
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("init_from", "init_skip", mode="before")
    @classmethod
    def _one_item_may_be_a_string(cls, value: Any) -> Any:
        return () if value is None else (value,) if isinstance(value, str) else value

    @classmethod
    def load(
        cls, *, file: Path | None = None, overrides: list[str] | None = None, **fields: Any
    ) -> TrainConfig:
        data: dict[str, Any] = {}
        if file is not None:
            data = load_file(file)
        data.update({k: v for k, v in fields.items() if v is not None})
        for item in overrides or []:
            apply_override(data, item)
        return cls.model_validate(data)


HIGHER_IS_BETTER = frozenset(
    {"ssim", "psnr", "fsim", "attr_acc_fake", "attr_acc_ratio", "attr_bacc_fake", "attr_bacc_ratio"}
)


def load_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml  # pyyaml comes with the trainer extra

        loaded = yaml.safe_load(text)
    else:
        loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return loaded


def apply_override(data: dict[str, Any], item: str) -> None:
    """``key=value`` or ``options.key=value``; the value is parsed as JSON when it can be."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key=value")
    key, raw = item.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    target = data
    *parents, leaf = key.strip().split(".")
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ValueError(f"override {item!r}: {part} is not a mapping")
    target[leaf] = value
