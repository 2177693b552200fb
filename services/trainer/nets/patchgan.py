"""PatchGAN discriminator (Isola et al. 2017) and the shared weight init.

With n_layers=3 every output logit sees a 70x70 patch of the input: conv 4x4 s2 (ndf, no
norm), then n_layers-1 more stride-2 convs doubling the width (capped at ndf*8), one
stride-1 conv (ndf*2**min(n_layers, 3)) and a stride-1 conv to one channel. For pix2pix the
input is the pair (real_A, B) concatenated on channels, hence in_channels=6. n_layers=0 is the
paper's PixelGAN: 1x1 convs (ndf, 2*ndf, 1), so every logit judges one pixel's colour.

The output is a map of raw logits (no sigmoid): the GAN losses apply BCEWithLogits or MSE
(LSGAN) to it. ``spectral_norm=True`` wraps every convolution in spectral normalisation
(Miyato et al. 2018), which bounds D's Lipschitz constant; pair it with norm="none".

``MultiscaleDiscriminator`` (pix2pixHD, Wang et al. 2018) runs ``num_D`` such PatchGANs on
the input at 1, 1/2, 1/4 … scale and returns every layer's features, for the
feature-matching loss (``features(x)[scale][layer]``, the last layer being the logits).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from services.trainer.nets.layers import init_weights, norm_layer, uses_bias

__all__ = ["MultiscaleDiscriminator", "NLayerDiscriminator", "init_weights"]


class NLayerDiscriminator(nn.Module):
    """(N, in_channels, H, W) -> logits (N, 1, H', W'); H'=W'=30 for 256 px, n_layers=3."""

    def __init__(
        self,
        in_channels: int = 6,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        layers = (
            pixel_layers(in_channels, ndf, norm)
            if n_layers == 0
            else patch_layers(in_channels, ndf, n_layers, norm)
        )
        if spectral_norm:
            layers = [
                nn.utils.parametrizations.spectral_norm(m) if isinstance(m, nn.Conv2d) else m
                for m in layers
            ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (N, 1, H', W') logits

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every LeakyReLU, then the logits (N, 1, H', W')."""
        out: list[torch.Tensor] = []
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                out.append(x)
        out.append(x)
        return out


def patch_layers(in_channels: int, ndf: int, n_layers: int, norm: str) -> list[nn.Module]:
    """The PatchGAN: n_layers 4x4 stride-2 convs, a 4x4 stride-1 conv, a conv to logits."""
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
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kw, stride=2, padding=padw, bias=bias),
            norm_layer(norm, ndf * mult),
            nn.LeakyReLU(0.2, True),
        ]
    prev, mult = mult, min(2**n_layers, 8)
    return [
        *layers,
        nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kw, stride=1, padding=padw, bias=bias),
        norm_layer(norm, ndf * mult),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * mult, 1, kernel_size=kw, stride=1, padding=padw),
    ]


def pixel_layers(in_channels: int, ndf: int, norm: str) -> list[nn.Module]:
    """The PixelGAN (n_layers 0): 1x1 convs, one logit per pixel, (N, 1, H, W)."""
    return [
        nn.Conv2d(in_channels, ndf, kernel_size=1),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=uses_bias(norm)),
        norm_layer(norm, ndf * 2),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(ndf * 2, 1, kernel_size=1),
    ]


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs, the k-th on the input average-pooled k times (3x3, stride 2)."""

    def __init__(self, num_D: int = 2, **kwargs: Any) -> None:
        super().__init__()
        self.scales = nn.ModuleList(NLayerDiscriminator(**kwargs) for _ in range(num_D))

    def features(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, netD in enumerate(self.scales):
            assert isinstance(netD, NLayerDiscriminator)
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(netD.features(x))
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [f[-1] for f in self.features(x)]  # logits per scale
