"""The 128x128 ResNet cGAN of the brief (section A), layer by layer.

Generator (widths for the default ngf=32):
    conv1 32 7x7 s1, conv2 64 3x3 s2, conv3 128 3x3 s2, each BatchNorm + ReLU;
    six residual blocks, each two 3x3 convs with BatchNorm + ReLU, where the output of the
    first conv stage is added to the output of the second (y = a + b, a = relu(bn(conv(x))),
    b = relu(bn(conv(a))), as the brief states, not the He et al. x + F(x));
    deconv1 64 and deconv2 32 (3x3 s2 transposed convs, BatchNorm + ReLU) back to the input
    resolution; conv_out: three 3x3 filters, tanh (images live in [-1, 1]).

Discriminator: conv 4x4 s2 + LeakyReLU(0.2), then n_layers-1 more conv 4x4 s2 each with
BatchNorm + LeakyReLU, flatten, one dense neuron. It returns the dense neuron's LOGIT: the
brief's "dense + sigmoid" probability is sigmoid(logit), and the loss applies the sigmoid
inside BCEWithLogitsLoss, which equals BCE(sigmoid(logit)) but is numerically stable.

CombinedModel is the Keras "combined" model: real_A -> netG -> fake_B -> netD -> verdict,
trained for the generator step with netD frozen (see `frozen`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_ch: int, out_ch: int, kernel_size: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(True),
    )


def deconv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 stride-2 transposed conv that exactly doubles H and W."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(True),
    )


class AddResidualBlock(nn.Module):
    """Two conv-BN-ReLU stages; the first stage's output is added to the second's."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.stage1 = conv_bn_relu(dim, dim, 3, 1)
        self.stage2 = conv_bn_relu(dim, dim, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.stage1(x)  # (N, dim, H, W)
        return a + self.stage2(a)


class ResnetCGANGenerator(nn.Module):
    """(N, in_channels, H, W) -> (N, out_channels, H, W) in [-1, 1]; H, W divisible by 4."""

    def __init__(
        self, in_channels: int = 3, out_channels: int = 3, ngf: int = 32, n_blocks: int = 6
    ) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(in_channels, ngf, 7, 1)
        self.conv2 = conv_bn_relu(ngf, ngf * 2, 3, 2)
        self.conv3 = conv_bn_relu(ngf * 2, ngf * 4, 3, 2)
        self.res_blocks = nn.Sequential(*[AddResidualBlock(ngf * 4) for _ in range(n_blocks)])
        self.deconv1 = deconv_bn_relu(ngf * 4, ngf * 2)
        self.deconv2 = deconv_bn_relu(ngf * 2, ngf)
        self.conv_out = nn.Conv2d(ngf, out_channels, 3, stride=1, padding=1)

    def forward(self, real_A: torch.Tensor) -> torch.Tensor:
        x = self.conv1(real_A)  # (N, ngf, H, W)
        x = self.conv2(x)  # (N, 2 ngf, H/2, W/2)
        x = self.conv3(x)  # (N, 4 ngf, H/4, W/4)
        x = self.res_blocks(x)  # (N, 4 ngf, H/4, W/4)
        x = self.deconv1(x)  # (N, 2 ngf, H/2, W/2)
        x = self.deconv2(x)  # (N, ngf, H, W)
        return torch.tanh(self.conv_out(x))  # fake_B: (N, C_out, H, W)


class ResnetCGANDiscriminator(nn.Module):
    """(N, in_channels, image_size, image_size) -> (N, 1) logit that the image is real."""

    def __init__(
        self, image_size: int = 128, in_channels: int = 3, ndf: int = 64, n_layers: int = 4
    ) -> None:
        super().__init__()
        if image_size % 2**n_layers:
            raise ValueError(f"image_size {image_size} must be divisible by {2**n_layers}")
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        ch = ndf
        for _ in range(1, n_layers):
            out = min(ch * 2, ndf * 8)
            layers += [
                nn.Conv2d(ch, out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.LeakyReLU(0.2, True),
            ]
            ch = out
        self.features = nn.Sequential(*layers)
        side = image_size // 2**n_layers
        self.dense = nn.Linear(ch * side * side, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (N, C, S/2**n, S/2**n)
        return self.dense(torch.flatten(h, 1))  # (N, 1) logit; sigmoid gives P(real)


class CombinedModel(nn.Module):
    """real_A -> (fake_B, netD(fake_B)) for the generator step.

    With `upsample_to` set (the original's 64-in / 128-discriminator mode) fake_B is
    upsampled with nearest neighbour (Keras UpSampling2D) to upsample_to x upsample_to before
    the discriminator; the returned fake_B is that upsampled image, the one netD judged and
    the one to compare with the 128 px target.
    """

    def __init__(self, netG: nn.Module, netD: nn.Module, upsample_to: int | None = None) -> None:
        super().__init__()
        self.netG = netG
        self.netD = netD
        self.upsample_to = upsample_to

    def forward(self, real_A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fake_B = self.netG(real_A)  # (N, 3, H, W)
        if self.upsample_to is not None:
            size = (self.upsample_to, self.upsample_to)
            fake_B = F.interpolate(fake_B, size=size, mode="nearest")  # (N, 3, S, S)
        return fake_B, self.netD(fake_B)  # verdict: (N, 1) logit


@contextmanager
def frozen(netD: nn.Module) -> Iterator[nn.Module]:
    """Set requires_grad=False on netD's parameters inside the block, then restore each flag.

    Gradients still flow through netD to the generator; netD's own .grad stay untouched.
    """
    params = list(netD.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield netD
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
