"""Losses more than one recipe uses."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

GanMode = Literal["vanilla", "lsgan"]


def gan_loss(pred: Tensor, target_is_real: bool, mode: GanMode = "vanilla") -> Tensor:
    """The discriminator's verdict against an all-1 (real) or all-0 (fake) target, in fp32.

    vanilla: BCE with logits (pix2pix, DCGAN); lsgan: MSE (CycleGAN). fp32 keeps it stable
    under AMP autocast.
    """
    pred = pred.float()
    target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(pred, target)
    return F.binary_cross_entropy_with_logits(pred, target)
