"""Synchronised batch norm for every device: torch's SyncBatchNorm on GPUs, ours on CPUs.

``torch.nn.SyncBatchNorm`` only runs on CUDA (and DDP refuses it on CPU modules), so
multi-process CPU training (gloo) would normalise each rank's shard with its own statistics.
:class:`GlooSyncBatchNorm` computes the batch statistics over all ranks with a differentiable
all-reduce of (sum, sum of squares, count), exactly the SyncBatchNorm maths; its running
statistics therefore stay identical on every rank. Same parameters, buffers and state_dict
keys as BatchNorm, so checkpoints and exports do not change.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class GlooSyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are reduced over ``process_group`` (any backend)."""

    def __init__(
        self, num_features: int, process_group: dist.ProcessGroup | None = None, **kwargs: object
    ) -> None:
        super().__init__(num_features, **kwargs)  # type: ignore[arg-type]
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def _world(self) -> int:
        if not (dist.is_available() and dist.is_initialized()):
            return 1
        return dist.get_world_size(self.process_group)

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self._world() == 1:
            return super().forward(input)
        self._check_input_dim(input)
        x = input.float()  # statistics in fp32, also under autocast
        C = x.shape[1]
        dims = [0, *range(2, x.dim())]
        count = x.new_tensor([x.numel() / C])
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), count])  # (2C + 1,)
        stats = dist_fn.all_reduce(stats, group=self.process_group or dist.group.WORLD)
        total = stats[-1]
        mean = stats[:C] / total  # (C,)
        var = (stats[C : 2 * C] / total - mean * mean).clamp_min(0.0)  # biased, (C,)
        if self.track_running_stats and self.running_mean is not None:
            assert self.running_var is not None
            assert self.num_batches_tracked is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    self.momentum
                    if self.momentum is not None
                    else 1.0 / float(self.num_batches_tracked)
                )
                unbiased = var * total / (total - 1).clamp_min(1.0)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        shape = [1, C] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.weight is not None and self.bias is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)


def convert_sync_batchnorm(
    net: nn.Module, device: torch.device, process_group: dist.ProcessGroup | None = None
) -> nn.Module:
    """Every BatchNorm of ``net`` synchronised across ranks (in place where possible).

    CUDA: ``nn.SyncBatchNorm.convert_sync_batchnorm``; CPU: :class:`GlooSyncBatchNorm`. The
    new layers reuse the old parameters and buffers, so optimizers built before stay valid.
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net, process_group)
    return _convert_cpu(net, process_group)


def _convert_cpu(module: nn.Module, group: dist.ProcessGroup | None) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, GlooSyncBatchNorm):
        out = GlooSyncBatchNorm(
            module.num_features,
            group,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child, group))
    return out
