"""Per-pixel noise inputs (StyleGAN's, Karras et al. 2019): texture the generator can learn.

    y = x + weight[c] * noise        x: (N, C, H, W); noise: (N or 1, 1, H, W); weight: (1, C, 1, 1)

One learned scale per channel, zero at init, so a net starts out as it would without noise.
Training draws fresh N(0, 1) noise at every call; in eval mode (evaluation, export, serving)
the noise is one fixed map (StyleGAN2's ``noise_mode="const"``), drawn from a fixed seed when
the module is built, so the served graph stays deterministic and exports as a constant. The
map is not in the state dict: every build of the same net draws the same one.
"""

from __future__ import annotations

import torch
from torch import nn

MAX_SIDE = 256  # the largest feature map side a fixed noise map covers


class NoiseInjection(nn.Module):
    fixed: torch.Tensor  # (1, 1, max_side, max_side): the eval-mode noise map

    def __init__(self, channels: int, seed: int = 0, max_side: int = MAX_SIDE) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))
        fixed = torch.randn(1, 1, max_side, max_side, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("fixed", fixed, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape  # (N, C, H, W)
        if self.training:
            noise = torch.randn(n, 1, h, w, device=x.device, dtype=x.dtype)
        else:
            noise = self.fixed[:, :, :h, :w].to(x.dtype)  # (1, 1, H, W)
        return x + self.weight * noise
