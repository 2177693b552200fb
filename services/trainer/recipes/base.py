"""The contract between the training loop and a recipe.

A recipe owns its networks, optimizers and losses and knows how to do one training step; the
loop (``services/trainer/loop.py``) owns everything else: data, devices, AMP, DDP wrapping,
schedules, checkpoints, logging, evaluation and publishing. Recipes register themselves in
``RECIPES`` with :func:`register`.

Batches are dicts of tensors already on the device (NCHW float32 in [-1, 1]):

- ``paired``:   {"A": source (N,3,H,W), "B": target (N,3,H,W)} (+ "attrs" (N,K) for FS2K)
- ``unpaired``: {"A": domain A (N,3,H,W), "B": domain B (N,3,H,W)} drawn independently
- ``images``:   {"B": image (N,3,H,W)} (+ "label" (N,) for class folders)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel
from torch import Tensor, nn
from torch.utils.data import Dataset

from services.trainer.config import TrainConfig
from services.trainer.nets import build_serving_net
from shared.manifest import Task, TensorSpec

DataKind = Literal["paired", "unpaired", "images"]


@dataclass
class Amp:
    """Mixed precision for a step: ``with amp.autocast(): ...`` then ``amp.step(loss, opt)``.

    fp16 uses one GradScaler for all optimizers (scale updated once per step by the loop);
    bf16 needs no scaler; "off" is plain fp32.
    """

    mode: Literal["off", "bf16", "fp16"]
    device_type: str
    scaler: torch.amp.GradScaler | None = None

    def autocast(self) -> AbstractContextManager[Any]:
        if self.mode == "off":
            return nullcontext()
        dtype = torch.bfloat16 if self.mode == "bf16" else torch.float16
        return torch.autocast(self.device_type, dtype=dtype)

    def step(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward ``loss`` and step ``optimizer`` (zeroing its grads first)."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
        else:
            loss.backward()
            optimizer.step()

    def update(self) -> None:
        """Called by the loop once after every training step."""
        if self.scaler is not None:
            self.scaler.update()


@dataclass
class ExportSpec:
    """One model a recipe publishes: its serving net (one tensor in, one out) and manifest bits."""

    model_name: str
    task: Task
    architecture: str  # a key of services.trainer.nets.ARCHITECTURES
    arch_kwargs: dict[str, Any]
    net: (
        nn.Module
    )  # built with services.trainer.nets.build_serving_net(architecture, **arch_kwargs)
    input: TensorSpec
    output: TensorSpec
    description: str = ""


@dataclass
class EvalOutput:
    """What an evaluation batch gives the metrics: generated and reference images."""

    fake: Tensor  # (N, 3, H, W) in [-1, 1]
    real: Tensor | None = None  # the paired target, when there is one
    grid: dict[str, Tensor] = field(default_factory=dict)  # rows of the sample grid, by name
    # recipe-specific metrics of this batch (e.g. {"val_recon": ...}); the loop averages them
    # over the evaluation, weighted by batch size, beside the paired metrics it computes
    metrics: dict[str, float] = field(default_factory=dict)


class Recipe(ABC):
    name: ClassVar[str]
    data_kind: ClassVar[DataKind]
    Options: ClassVar[type[BaseModel]]  # hyperparameters, paper defaults
    default_image_size: ClassVar[int]
    default_batch_size: ClassVar[int] = 1
    default_epochs: ClassVar[int] = 100
    default_epochs_decay: ClassVar[int] = 100
    default_lr: ClassVar[float] = 2e-4
    default_beta1: ClassVar[float] = 0.5
    default_publish_metric: ClassVar[str] = "val_l1"

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        self.config = config
        self.options = self.Options.model_validate(config.options)
        self.device = device
        self.image_size = config.image_size or self.default_image_size
        # every trained net, by name ("netG", "netD_A", …). The loop may replace an entry by a
        # DDP wrapper or a compiled module: always call nets through this dict, and use
        # unwrap(net) to reach the plain module (state dicts, exports).
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.build()

    @property
    def lr(self) -> float:
        return self.config.lr if self.config.lr is not None else self.default_lr

    @property
    def betas(self) -> tuple[float, float]:
        beta1 = self.config.beta1 if self.config.beta1 is not None else self.default_beta1
        return (beta1, self.config.beta2)

    @abstractmethod
    def build(self) -> None:
        """Create ``self.nets`` (initialised as in the paper) and ``self.optimizers``."""

    @abstractmethod
    def train_step(self, batch: dict[str, Tensor], amp: Amp) -> dict[str, float]:
        """One optimisation step on every net; returns the losses as floats."""

    @abstractmethod
    @torch.no_grad()
    def evaluate_batch(self, batch: dict[str, Tensor]) -> EvalOutput:
        """Generated images (eval mode is set by the loop) for metrics and the sample grid."""

    @abstractmethod
    def exports(self) -> list[ExportSpec]:
        """The serving nets to publish, built from the current weights (CPU, fp32, eval)."""

    def serving_net(
        self, architecture: str, arch_kwargs: Mapping[str, Any], generator: str = "netG"
    ) -> nn.Module:
        """The serving wrapper of ``architecture`` (``nets.build_serving_net``) holding a copy
        of ``self.nets[generator]``'s weights: CPU, floating point in fp32, eval mode."""
        net = build_serving_net(architecture, **arch_kwargs)
        state = unwrap(self.nets[generator]).state_dict()
        net.load_state_dict({f"netG.{k}": cpu_fp32(v) for k, v in state.items()})
        return net.eval()

    def see_training_set(self, dataset: Dataset[dict[str, Any]]) -> None:
        """Called by the loop once before the first step (also on a resume) with the training
        set, e.g. for class frequencies; read labels, not images (``data.attribute_rows``)."""
        del dataset

    def generators(self) -> Iterator[nn.Module]:
        """Nets whose change the tests check (default: every net named like netG*)."""
        return (net for name, net in self.nets.items() if name.startswith("netG"))

    def extra_state(self) -> dict[str, Any]:
        """Recipe state besides nets and optimizers to checkpoint (e.g. CycleGAN image pools).

        Tensors and plain Python values only: checkpoints load with ``weights_only=True``.
        """
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        del state


RECIPES: dict[str, type[Recipe]] = {}


def register(cls: type[Recipe]) -> type[Recipe]:
    RECIPES[cls.name] = cls
    return cls


def cpu_fp32(t: Tensor) -> Tensor:
    """A detached CPU copy, floating point tensors in fp32 (for exports)."""
    t = t.detach().cpu()
    return t.float() if t.is_floating_point() else t


def unwrap(net: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper and/or ``torch.compile``."""
    inner = getattr(net, "module", net)  # DistributedDataParallel
    return getattr(inner, "_orig_mod", inner)  # torch.compile's OptimizedModule
