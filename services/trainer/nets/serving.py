"""Export wrappers: ONE tensor in, ONE tensor out, what gets traced, exported and served.

Each wrapper keeps the generator as `self.netG`, so a wrapper's state_dict keys are the
generator's keys prefixed with "netG.". Put the wrapper in eval mode before exporting:
batch norm then uses running statistics and dropout is off. The forward passes contain no
data-dependent Python control flow: `torch.jit.trace` and the ONNX exporter (with a dynamic
batch axis) record every operation, and the batch size is read from tensor shapes by ops.
"""

from __future__ import annotations

import torch
from torch import nn

from services.trainer.nets.dcgan import DCGANGenerator
from services.trainer.nets.sketchygan import SketchyGenerator
from services.trainer.nets.vae import ConvVAE


class TranslateWrapper(nn.Module):
    """image (N, 3, H, W) in [-1, 1] -> image (N, 3, H, W) clamped to [-1, 1]."""

    def __init__(self, netG: nn.Module) -> None:
        super().__init__()
        self.netG = netG

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.netG(image).clamp(-1.0, 1.0)


class SketchyTranslateWrapper(nn.Module):
    """input (N, C + 1, H, W) -> image (N, 3, H, W) clamped to [-1, 1].

    The first C planes (the generator's in_channels) are the sketch; the last carries the
    noise z (N, noise_dim) in its first noise_dim values, row-major (``TensorSpec.noise_dim``,
    filled by ``shared.model_input``): an all-zero plane is the prior's mean, z = 0.
    """

    def __init__(self, netG: SketchyGenerator) -> None:
        super().__init__()
        self.netG = netG
        self.image_channels = netG.in_channels
        self.noise_dim = netG.noise_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = x[:, : self.image_channels]  # (N, C, H, W)
        noise = x[:, -1].flatten(1)[:, : self.noise_dim]  # (N, H * W) -> (N, noise_dim)
        return self.netG(image, noise).clamp(-1.0, 1.0)


class GenerateWrapper(nn.Module):
    """latent (N, latent_dim) -> image (N, 3, 32, 32) in [-1, 1].

    kind="dcgan": latent_dim = z_dim + num_classes, the one-hot class appended to z (see
    DCGANGenerator.latent). kind="vae": latent_dim = z_dim, decoded by ConvVAE.decode.
    """

    def __init__(self, netG: DCGANGenerator | ConvVAE, kind: str = "dcgan") -> None:
        super().__init__()
        expected = {"dcgan": DCGANGenerator, "vae": ConvVAE}.get(kind)
        if expected is None:
            raise ValueError(f"kind must be 'dcgan' or 'vae', got {kind!r}")
        if not isinstance(netG, expected):
            raise TypeError(f"kind={kind!r} needs a {expected.__name__}, got {type(netG).__name__}")
        self.netG = netG
        self.kind = kind

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        if isinstance(self.netG, ConvVAE):
            out = self.netG.decode(latent)  # (N, 3, 32, 32)
        else:
            out = self.netG.from_latent(latent)  # (N, 3, 32, 32)
        return out.clamp(-1.0, 1.0)
