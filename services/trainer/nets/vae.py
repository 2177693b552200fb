"""Convolutional VAE for 32x32 images (Kingma & Welling 2014), the brief's autoencoder.

Encoder: conv 4x4 s2 32 -> 16 (nf), 8 (2 nf), 4 (4 nf), BatchNorm after all but the first,
LeakyReLU 0.2; linear heads to mu and logvar (z_dim each). Decoder: linear to (4 nf, 4, 4),
transposed convs 4x4 s2 to 8, 16 (BatchNorm + ReLU) and 32 (tanh): images in [-1, 1].
forward samples z in training and uses mu in eval mode (deterministic reconstructions).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvVAE(nn.Module):
    def __init__(self, z_dim: int = 128, nf: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.nf = nf
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, nf, 4, 2, 1),  # 16x16
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False),  # 8x8
            nn.BatchNorm2d(nf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False),  # 4x4
            nn.BatchNorm2d(nf * 4),
            nn.LeakyReLU(0.2, True),
            nn.Flatten(),
        )
        self.fc_mu = nn.Linear(nf * 4 * 16, z_dim)
        self.fc_logvar = nn.Linear(nf * 4 * 16, z_dim)
        self.fc_dec = nn.Linear(z_dim, nf * 4 * 16)
        self.decoder = nn.Sequential(
            nn.ReLU(True),
            nn.ConvTranspose2d(nf * 4, nf * 2, 4, 2, 1, bias=False),  # 8x8
            nn.BatchNorm2d(nf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(nf * 2, nf, 4, 2, 1, bias=False),  # 16x16
            nn.BatchNorm2d(nf),
            nn.ReLU(True),
            nn.ConvTranspose2d(nf, in_channels, 4, 2, 1),  # 32x32
            nn.Tanh(),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)  # (N, 4 nf * 16)
        return self.fc_mu(h), self.fc_logvar(h)  # (N, z_dim) each

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # (N, z_dim)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc_dec(z).view(-1, self.nf * 4, 4, 4)  # (N, 4 nf, 4, 4)
        return self.decoder(h)  # (N, C, 32, 32)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar) if self.training else mu
        return self.decode(z), mu, logvar
