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


def diversity_loss(
    fake_1: Tensor, fake_2: Tensor, z_1: Tensor | None = None, z_2: Tensor | None = None
) -> Tensor:
    """−mean_i mean|fake_1,i − fake_2,i| / ‖z_1,i − z_2,i‖₂: lower when images differ more.

    Mao et al. 2019's mode-seeking term, SketchyGAN's diversity loss: fake_1, fake_2 (N, ...)
    are G's outputs for the same inputs under two noise draws z_1, z_2 (N, ...). Without z
    (noise drawn inside the net, as pix2pix's noise inputs), the noise distance is taken as 1.
    """
    image_dist = (fake_1.float() - fake_2.float()).abs().flatten(1).mean(1)  # (N,)
    if z_1 is None or z_2 is None:
        return -image_dist.mean()
    noise_dist = (z_1.float() - z_2.float()).flatten(1).norm(dim=1)  # (N,)
    return -(image_dist / noise_dist.clamp(min=1e-8)).mean()
