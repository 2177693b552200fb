"""SketchyGAN (Chen & Hays 2018): masked residual units fed the sketch at every scale.

MRU, with x the feature map and I the sketch resized to x's scale, [.,.] channel concat:
    m = σ(conv_m[x, I])            mask on x's channels (stride 1, at x's scale)
    n = σ(conv_n[x, I])            output gate
    z = f(norm(conv_z[m ⊙ x, I]))  new content, f = ReLU (generator) / LeakyReLU (discriminator)
    y = (1 − n) ⊙ conv_x(x) + n ⊙ z
conv_x is a 1x1 conv (channel matching) at stride 1. For resample="down", conv_n, conv_z and
conv_x are 3x3 stride-2 convs, so y is at half x's scale while I stays at x's scale. For
resample="up", x is first upsampled (nearest, 2x) and I must be at the upsampled scale.

Choices where the paper leaves room (documented here, used by the sketchygan recipe):
- The sketch pyramid is built by repeated 2x2 average pooling of the input sketch.
- Generator: a U-Net of MRUs. Encoder level i maps scale i to i+1 (widths ngf*2**i, capped
  at ngf*8) fed I_i; the noise vector (N, noise_dim) is broadcast over the bottleneck and
  concatenated to it, then a stride-1 MRU mixes it; decoder level i upsamples
  [d_{i+1}, e_{i+1}] (skip connection) to scale i, fed I_i; a 3x3 conv + tanh gives RGB.
  Input sides must be divisible by 2**num_levels. Noise ~ N(0, I); served as the input's last
  plane (services.trainer.nets.serving), zeros (its mean) unless a request asks for variations.
- Discriminator: MRUs going down, each fed [image, sketch] at its own scale (LeakyReLU, no
  norm, so any GAN loss or gradient penalty works); heads: a 3x3 conv giving a map of
  adversarial logits, and, when num_classes > 0, global average pooling + a linear layer
  giving class logits (softmax for object categories, per-logit sigmoid for FS2K's
  attributes; the trainer picks the loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from services.trainer.nets.layers import norm_layer, uses_bias


def sketch_pyramid(sketch: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[sketch, sketch/2, ..., sketch/2**levels] by 2x2 average pooling."""
    pyramid = [sketch]
    for _ in range(levels):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2))
    return pyramid


class MRU(nn.Module):
    """Masked residual unit: (x (N, in_ch, H, W), I (N, sketch_ch, ...)) -> y (N, out_ch, ...)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        sketch_ch: int = 3,
        resample: str = "none",
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if resample not in ("none", "down", "up"):
            raise ValueError(f"resample must be 'none', 'down' or 'up', got {resample!r}")
        self.resample = resample
        stride = 2 if resample == "down" else 1
        cat_ch = in_ch + sketch_ch
        self.conv_m = nn.Conv2d(cat_ch, in_ch, 3, stride=1, padding=1)
        self.conv_n = nn.Conv2d(cat_ch, out_ch, 3, stride=stride, padding=1)
        self.conv_z = nn.Conv2d(cat_ch, out_ch, 3, stride=stride, padding=1, bias=uses_bias(norm))
        self.norm = norm_layer(norm, out_ch)
        self.act: nn.Module = nn.ReLU() if activation == "relu" else nn.LeakyReLU(0.2)
        if stride == 1:
            self.conv_x = nn.Conv2d(in_ch, out_ch, 1)
        else:
            self.conv_x = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, sketch: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (N, in_ch, 2H, 2W)
        xi = torch.cat([x, sketch], dim=1)  # (N, in_ch + sketch_ch, H, W)
        m = torch.sigmoid(self.conv_m(xi))  # (N, in_ch, H, W)
        n = torch.sigmoid(self.conv_n(xi))  # (N, out_ch, H_out, W_out)
        z = self.act(self.norm(self.conv_z(torch.cat([m * x, sketch], dim=1))))
        return (1 - n) * self.conv_x(x) + n * z  # (N, out_ch, H_out, W_out)


def level_widths(base: int, num_levels: int) -> list[int]:
    return [min(base * 2**i, base * 8) for i in range(num_levels)]


class SketchyGenerator(nn.Module):
    """(sketch (N, C, H, W), noise (N, noise_dim)) -> image (N, out_channels, H, W) in [-1, 1]."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        noise_dim: int = 64,
        ngf: int = 64,
        num_levels: int = 4,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.noise_dim = noise_dim
        self.num_levels = num_levels
        chs = level_widths(ngf, num_levels)  # width of e_1 .. e_L
        self.encoder = nn.ModuleList(
            MRU(in_channels if i == 0 else chs[i - 1], chs[i], in_channels, "down", norm)
            for i in range(num_levels)
        )
        self.bottleneck = MRU(chs[-1] + noise_dim, chs[-1], in_channels, "none", norm)
        # decoder[i] maps [d_{i+1}, e_{i+1}] (2 chs[i] channels) at scale i+1 to d_i at scale i
        self.decoder = nn.ModuleList(
            MRU(2 * chs[i], chs[i - 1] if i > 0 else ngf, in_channels, "up", norm)
            for i in range(num_levels)
        )
        self.to_rgb = nn.Conv2d(ngf, out_channels, 3, padding=1)

    def forward(self, sketch: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        pyramid = sketch_pyramid(sketch, self.num_levels)  # I_0 (H) .. I_L (H / 2**L)
        feats = []
        x = sketch
        for i, mru in enumerate(self.encoder):
            x = mru(x, pyramid[i])  # e_{i+1}: (N, chs[i], H / 2**(i+1), ...)
            feats.append(x)
        # broadcast the noise over the bottleneck: (N, noise_dim, h, w), shape-agnostic
        noise_map = noise[:, :, None, None] * torch.ones_like(x[:, :1])
        d = self.bottleneck(torch.cat([x, noise_map], dim=1), pyramid[-1])
        for i in reversed(range(self.num_levels)):
            d = self.decoder[i](torch.cat([d, feats[i]], dim=1), pyramid[i])  # d_i
        return torch.tanh(self.to_rgb(d))  # (N, out_channels, H, W)


class SketchyDiscriminator(nn.Module):
    """(image, sketch) -> (adversarial logits (N, 1, h, w), class logits (N, K) or None)."""

    def __init__(
        self,
        in_channels: int = 3,
        sketch_channels: int = 3,
        ndf: int = 64,
        num_levels: int = 4,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.num_levels = num_levels
        cond_ch = in_channels + sketch_channels
        chs = level_widths(ndf, num_levels)
        self.levels = nn.ModuleList(
            MRU(cond_ch if i == 0 else chs[i - 1], chs[i], cond_ch, "down", "none", "lrelu")
            for i in range(num_levels)
        )
        self.adv_head = nn.Conv2d(chs[-1], 1, 3, padding=1)
        self.cls_head = nn.Linear(chs[-1], num_classes) if num_classes > 0 else None

    def forward(
        self, image: torch.Tensor, sketch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        cond = torch.cat([image, sketch], dim=1)  # (N, C_img + C_sketch, H, W)
        pyramid = sketch_pyramid(cond, self.num_levels - 1)
        x = cond
        for i, mru in enumerate(self.levels):
            x = mru(x, pyramid[i])  # (N, chs[i], H / 2**(i+1), ...)
        adv = self.adv_head(x)  # (N, 1, H / 2**L, W / 2**L)
        cls = self.cls_head(x.mean(dim=(2, 3))) if self.cls_head is not None else None
        return adv, cls
