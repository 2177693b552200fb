"""pix2pix U-Net generator (Isola et al. 2017), as in pytorch-CycleGAN-and-pix2pix.

The net is built recursively from the innermost block outwards: every block is
down (LeakyReLU 0.2, conv 4x4 s2, norm) -> submodule -> up (ReLU, transposed conv 4x4 s2,
norm), and its output is concatenated with its input (the skip connection). The outermost
block ends in tanh and has no skip.

`num_downs` is the number of stride-2 downsamplings: 8 for 256 px (the paper's "U-Net-256"),
7 for 128 px, 6 for 64 px. The input height and width must be divisible by 2**num_downs
(the bottleneck is then 1x1 for the paper's sizes). num_downs must be at least 5.

Dropout (p=0.5) sits in the three innermost ngf*8 decoder blocks, as in the paper. In eval
mode (serving, export) it is off, so the generator is deterministic.

noise_levels > 0 adds a per-pixel noise input (``services.trainer.nets.noise``: a learned
scale per channel, zero at init; a fixed noise map in eval mode) after the up-convolution of
that many decoder levels, counted from the outermost one below the output (0: none, the paper).

upsample="transpose" is the paper's 4x4 stride-2 transposed convolution; "resize" is a
bilinear 2x resize followed by a 3x3 convolution, which cannot leave the checkerboard pattern
of uneven kernel overlap (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from services.trainer.nets.layers import norm_layer, uses_bias
from services.trainer.nets.noise import NoiseInjection

Upsample = Literal["transpose", "resize"]


def up_conv(in_nc: int, out_nc: int, bias: bool, upsample: str) -> nn.Module:
    """(N, in_nc, H, W) -> (N, out_nc, 2H, 2W)."""
    if upsample == "transpose":
        return nn.ConvTranspose2d(in_nc, out_nc, kernel_size=4, stride=2, padding=1, bias=bias)
    if upsample == "resize":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_nc, out_nc, kernel_size=3, stride=1, padding=1, bias=bias),
        )
    raise ValueError(f"upsample must be 'transpose' or 'resize', got {upsample!r}")


class UNetSkipBlock(nn.Module):
    """One U-Net level: x -> [x, up(sub(down(x)))] (or just the up path when outermost)."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        in_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
        upsample: Upsample = "transpose",
        noise_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        in_nc = outer_nc if in_nc is None else in_nc
        bias = uses_bias(norm)
        downconv = nn.Conv2d(in_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        layers: list[nn.Module]
        if outermost:
            assert submodule is not None
            upconv = up_conv(inner_nc * 2, outer_nc, True, upsample)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = up_conv(inner_nc, outer_nc, bias, upsample)
            layers = [downrelu, downconv, uprelu, upconv, norm_layer(norm, outer_nc)]
        else:
            assert submodule is not None
            upconv = up_conv(inner_nc * 2, outer_nc, bias, upsample)
            layers = [downrelu, downconv, norm_layer(norm, inner_nc), submodule]
            layers += [uprelu, upconv]
            if noise_seed is not None:  # (N, outer_nc, H, W) + per-pixel noise
                layers.append(NoiseInjection(outer_nc, seed=noise_seed))
            layers.append(norm_layer(norm, outer_nc))
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], dim=1)  # (N, in_nc + outer_nc, H, W)


class UNetGenerator(nn.Module):
    """U-Net generator: (N, in_channels, H, W) in [-1, 1] -> (N, out_channels, H, W) in [-1, 1]."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = True,
        upsample: Upsample = "transpose",
        noise_levels: int = 0,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        if not 0 <= noise_levels <= num_downs - 2:  # every level but the output and innermost
            raise ValueError(f"noise_levels must be in [0, {num_downs - 2}], got {noise_levels}")
        self.num_downs = num_downs
        kw: dict[str, Any] = {"norm": norm, "upsample": upsample}

        def noise(level: int) -> dict[str, Any]:  # level 1: the outermost below the output
            return {"noise_seed": level} if level <= noise_levels else {}

        block = UNetSkipBlock(ngf * 8, ngf * 8, innermost=True, **kw)
        for i in range(num_downs - 5):
            block = UNetSkipBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout,
                                  **kw, **noise(num_downs - 2 - i))  # fmt: skip
        block = UNetSkipBlock(ngf * 4, ngf * 8, submodule=block, **kw, **noise(3))
        block = UNetSkipBlock(ngf * 2, ngf * 4, submodule=block, **kw, **noise(2))
        block = UNetSkipBlock(ngf, ngf * 2, submodule=block, **kw, **noise(1))
        self.model = UNetSkipBlock(
            out_channels, ngf, in_nc=in_channels, submodule=block, outermost=True, **kw
        )

    def forward(self, real_A: torch.Tensor) -> torch.Tensor:
        # real_A: (N, C_in, H, W), H and W divisible by 2**num_downs
        return self.model(real_A)  # fake_B: (N, C_out, H, W)
