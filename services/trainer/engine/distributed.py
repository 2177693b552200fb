"""One process per device: torchrun's environment, the process group, and net wrapping.

Under ``torchrun`` (env ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) the trainer joins the
process group (NCCL on CUDA, gloo on CPU), puts each rank on ``cuda:LOCAL_RANK``, converts
batch norm to synchronised batch norm and wraps every trained net in
DistributedDataParallel. Only rank 0 logs, evaluates, checkpoints and publishes.

DDP settings for GAN recipes, which call netD several times per step and run it frozen
(``requires_grad=False``) in the generator step:

- ``find_unused_parameters=True``: a forward whose backward reaches none of the net's
  parameters (the frozen netD) must not leave DDP waiting for their gradients;
- ``broadcast_buffers=False``: running statistics are already identical on every rank
  (synchronised batch norm), and broadcasting them before each of several forwards in one
  step would modify tensors autograd saved.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import cast

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from services.trainer.engine.sync_batchnorm import convert_sync_batchnorm

log = logging.getLogger(__name__)


@dataclass
class DistContext:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False  # this process started the group (and ends it)
    bn_group: dist.ProcessGroup | None = None  # batch-norm statistics (CPU: a gloo group)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(choice: str, local_rank: int = 0) -> torch.device:
    """ "auto": this rank's GPU when CUDA is available, else the CPU."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda was asked for but CUDA is not available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup_distributed(device_choice: str) -> DistContext:
    """Join torchrun's process group when launched by it; a single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_choice, local_rank)
    if world_size <= 1:
        return DistContext(device=device)
    initialized_here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        initialized_here = True
    # CPU batch-norm statistics travel in their own group, apart from DDP's gradient buckets
    bn_group = (
        cast(dist.ProcessGroup, dist.new_group(backend="gloo")) if device.type == "cpu" else None
    )
    log.info("rank %d of %d on %s", rank, world_size, device)
    return DistContext(device, rank, world_size, local_rank, initialized_here, bn_group)


def teardown_distributed(ctx: DistContext) -> None:
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in net.modules())


def prepare_nets(
    nets: dict[str, nn.Module], ctx: DistContext, *, channels_last: bool, compile: bool
) -> dict[str, nn.Module]:
    """Move to the device (channels_last if asked), sync BN + DDP under torchrun, compile."""
    out: dict[str, nn.Module] = {}
    for name, net in nets.items():
        net = net.to(ctx.device)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        trainable = any(p.requires_grad for p in net.parameters())
        if ctx.enabled and trainable:
            if has_batchnorm(net):
                net = convert_sync_batchnorm(net, ctx.device, ctx.bn_group)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # broadcast_buffers' new name
                net = DistributedDataParallel(
                    net,
                    device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None,
                    find_unused_parameters=True,
                    broadcast_buffers=False,
                )
        if compile:
            net = torch.compile(net)  # type: ignore[assignment]
        out[name] = net
    return out


def max_over_ranks(ctx: DistContext, value: float) -> float:
    """The largest of each rank's ``value``, on every rank (one all-reduce under DDP)."""
    if not ctx.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a stop request)."""
    return max_over_ranks(ctx, 1.0 if flag else 0.0) > 0


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
