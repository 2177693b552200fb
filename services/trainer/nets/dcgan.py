"""DCGAN generator for 32x32 images and the Siamese discriminator (brief section C).

DCGANGenerator (Radford et al. 2016, sized for CIFAR-10): the latent (z, optionally with a
one-hot class appended) is a 1x1 map; transposed convs 4x4 give 4x4 (ngf*4), 8x8 (ngf*2),
16x16 (ngf), each BatchNorm + ReLU, then 32x32 RGB with tanh.

SiameseDiscriminator: one conv embedding tower e(.) shared by both images of a pair
(conv 4x4 s2, LeakyReLU 0.2, BatchNorm after all but the first, 32 -> 16 -> 8 -> 4, then a
linear layer to embed_dim); the pair's similarity logit is linear(|e(a) − e(b)|), symmetric
in (a, b). Both images go through the tower in one batch, so batch-norm statistics never
tell a batch of fakes from a batch of reals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from services.trainer.nets.layers import norm_layer, uses_bias


class DCGANGenerator(nn.Module):
    """(z (N, z_dim), labels (N,) int64 or None) -> image (N, out_channels, 32, 32) in [-1, 1]."""

    def __init__(
        self, z_dim: int = 100, ngf: int = 64, num_classes: int = 0, out_channels: int = 3
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.latent_dim = z_dim + num_classes
        self.net = nn.Sequential(
            nn.ConvTranspose2d(self.latent_dim, ngf * 4, 4, 1, 0, bias=False),  # 4x4
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),  # 8x8
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),  # 16x16
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, out_channels, 4, 2, 1),  # 32x32
            nn.Tanh(),
        )

    def latent(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """[z, one_hot(labels)]: (N, z_dim + num_classes); the input of `from_latent`."""
        if self.num_classes == 0:
            return z
        if labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        return torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)

    def from_latent(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent[:, :, None, None])  # (N, C, 32, 32)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.from_latent(self.latent(z, labels))


class SiameseDiscriminator(nn.Module):
    """(a, b) each (N, C, 32, 32) -> similarity logit (N,); `embed(x)` -> (N, embed_dim)."""

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        embed_dim: int = 128,
        norm: str = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        bias = uses_bias(norm)
        self.tower = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 4, 2, 1),  # 16x16
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=bias),  # 8x8
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=bias),  # 4x4
            norm_layer(norm, ndf * 4),
            nn.LeakyReLU(0.2, True),
            nn.Flatten(),
            nn.Linear(ndf * 4 * 4 * 4, embed_dim),
        )
        self.head = nn.Linear(embed_dim, 1)
        if spectral_norm:  # every conv and linear layer (Miyato et al. 2018)
            for parent in (self.tower, self):
                for name, m in list(parent.named_children()):
                    if isinstance(m, nn.Conv2d | nn.Linear):
                        setattr(parent, name, nn.utils.parametrizations.spectral_norm(m))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower(x)  # (N, embed_dim)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = a.shape[0]
        e = self.embed(torch.cat([a, b], dim=0))  # (2N, embed_dim), one batch for both
        return self.head(torch.abs(e[:n] - e[n:])).squeeze(1)  # (N,)
