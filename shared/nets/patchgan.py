"""PatchGAN discriminator (Isola et al. 2017) and the shared weight init.

With n_layers=3 every output logit sees a 70x70 patch of the input: conv 4x4 s2 (ndf, no
norm), then n_layers-1 more stride-2 convs doubling the width (capped at ndf*8), one
stride-1 conv (ndf*2**min(n_layers, 3)) and a stride-1 conv to one channel. For pix2pix the
input is the pair (real_A, B) concatenated on channels, hence in_channels=6.

The output is a map of raw logits (no sigmoid): the GAN losses apply BCEWithLogits or MSE
(LSGAN) to it.
"""

from __future__ import annotations

import torch
from torch import nn

from shared.nets.layers import init_weights, norm_layer, uses_bias

__all__ = ["NLayerDiscriminator", "init_weights"]


class NLayerDiscriminator(nn.Module):
    """(N, in_channels, H, W) -> logits (N, 1, H', W'); H'=W'=30 for 256 px, n_layers=3."""

    def __init__(
        self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch"
    ) -> None:
        super().__init__()
        bias = uses_bias(norm)
        kw, padw = 4, 1
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, kernel_size=kw, stride=2, padding=padw),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(
                    ndf * prev, ndf * mult, kernel_size=kw, stride=2, padding=padw, bias=bias
                ),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kw, stride=1, padding=padw, bias=bias),
            norm_layer(norm, ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, kernel_size=kw, stride=1, padding=padw),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (N, 1, H', W') logits
