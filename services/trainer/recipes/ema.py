"""An exponential moving average of a generator's weights, for evaluation and serving.

Averaging G over the last few hundred steps removes much of the step-to-step jitter of GAN
training (Yazici et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training";
used by ProGAN, StyleGAN, BigGAN). The copy is a net of its own in ``recipe.nets``
("netG_ema"), so checkpoints and resumes carry it; it has no optimizer.

    ema_update(netG_ema, netG, beta=0.999, step=step)    # after every G step
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(netG: nn.Module) -> nn.Module:
    """A frozen copy of ``netG`` to average into."""
    ema = copy.deepcopy(netG)
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: nn.Module, net: nn.Module, *, beta: float, step: int) -> None:
    """ema = b * ema + (1 - b) * net, with b = min(beta, (1 + step) / (10 + step)) so early
    steps are not dominated by the random initialisation; buffers are copied."""
    b = min(beta, (1.0 + step) / (10.0 + step))
    for p_ema, p in zip(ema.parameters(), net.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - b)
    for b_ema, buf in zip(ema.buffers(), net.buffers(), strict=True):
        b_ema.copy_(buf)
