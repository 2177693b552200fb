"""``vae``: a convolutional VAE (Kingma & Welling 2014) on 32x32 images (CIFAR-10 cats/dogs).

The brief's autoencoder counterpart of the Siamese GAN (section C). netG is the whole
``nets.ConvVAE`` (encoder q(z|x) = N(mu, diag exp(logvar)) and decoder); the decoder alone is
served, fed z ~ N(0, I) by the worker (task "generate").

Loss: the negative ELBO per image, averaged over the batch:

    recon = sum over pixels (x_hat - x)^2        (Gaussian decoder, fixed variance 1/2, no const)
    KL    = -1/2 * sum over z (1 + logvar - mu^2 - exp(logvar))
    loss  = recon + beta * KL                     (beta = 1: the ELBO; beta != 1: a beta-VAE)

Optimiser: Adam lr 1e-3, betas (0.9, 0.999), as is common practice for VAEs (the paper used
Adagrad); batch 100 (the paper's M), 100 epochs at a constant rate (no decay), PyTorch's
default init. Images are in [-1, 1]; labels, if any, are ignored (an unconditional model).

Evaluation: held-out images are reconstructed from the posterior mean (EvalOutput.fake vs
.real; "val_recon", the publish metric, is their mean squared error per pixel, lower is
better) and the grid gets samples from the prior with a fixed seed, comparable across
evaluations. ``sample(n)`` gives prior samples for distribution metrics (FID).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from services.trainer.nets import ConvVAE
from services.trainer.recipes.base import Amp, EvalOutput, ExportSpec, Recipe, register, unwrap
from shared.manifest import TensorSpec

IMAGE_SIZE = 32  # ConvVAE's fixed resolution
GRID_SEED = 1234  # prior samples in the grid: the same z at every evaluation


class VAEOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    z_dim: int = Field(default=128, gt=0)  # latent size
    nf: int = Field(default=32, gt=0)  # first encoder conv width
    beta: float = Field(default=1.0, ge=0)  # KL weight; 1 is the plain ELBO


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image: (N, z_dim) x 2 -> (N,)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


@register
class VAERecipe(Recipe):
    name = "vae"
    data_kind = "images"
    Options = VAEOptions
    default_image_size = IMAGE_SIZE
    default_batch_size = 100
    default_epochs = 100
    default_epochs_decay = 0
    default_lr = 1e-3
    default_beta1 = 0.9
    default_publish_metric = "val_recon"

    options: VAEOptions

    def build(self) -> None:
        if self.image_size != IMAGE_SIZE:
            raise ValueError(
                f"the vae recipe works at {IMAGE_SIZE}x{IMAGE_SIZE}, not {self.image_size}"
            )
        self.arch_kwargs = {"z_dim": self.options.z_dim, "nf": self.options.nf, "in_channels": 3}
        netG = ConvVAE(**self.arch_kwargs).to(self.device)
        self.nets = {"netG": netG}
        self.optimizers = {"G": torch.optim.Adam(netG.parameters(), lr=self.lr, betas=self.betas)}

    def losses(self, real: Tensor) -> dict[str, Tensor]:
        """Negative ELBO terms for a batch (N, 3, 32, 32), each averaged over images."""
        recon, mu, logvar = self.nets["netG"](real)  # (N, 3, 32, 32), (N, z), (N, z)
        loss_recon = F.mse_loss(recon.float(), real.float(), reduction="sum") / len(real)
        loss_kl = kl_divergence(mu.float(), logvar.float()).mean()
        return {
            "recon": loss_recon,
            "kl": loss_kl,
            "loss": loss_recon + self.options.beta * loss_kl,
        }

    def train_step(self, batch: dict[str, Tensor], amp: Amp) -> dict[str, float]:
        with amp.autocast():
            losses = self.losses(batch["B"])
        amp.step(losses["loss"], self.optimizers["G"])
        values = torch.stack([v.detach().float() for v in losses.values()]).tolist()
        return dict(zip(losses, values, strict=True))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images (n, 3, 32, 32) in [-1, 1] decoded from z ~ N(0, I)."""
        z = torch.randn(n, self.options.z_dim, generator=generator).to(self.device)  # (n, z_dim)
        vae = cast(ConvVAE, unwrap(self.nets["netG"]))
        return vae.decode(z).float().clamp(-1.0, 1.0)

    @torch.no_grad()
    def evaluate_batch(self, batch: dict[str, Tensor]) -> EvalOutput:
        real = batch["B"]  # (N, 3, 32, 32)
        fake = self.nets["netG"](real)[0].float().clamp(-1.0, 1.0)  # eval mode: decoded mu
        prior = self.sample(len(real), torch.Generator().manual_seed(GRID_SEED))
        grid = {"real": real, "reconstruction": fake, "prior sample": prior}
        return EvalOutput(fake=fake, real=real, grid=grid)

    def exports(self) -> list[ExportSpec]:
        net = self.serving_net("vae", self.arch_kwargs)
        return [
            ExportSpec(
                model_name=self.config.model_name or "catdog-vae",
                task="generate",
                architecture="vae",
                arch_kwargs=dict(self.arch_kwargs),
                net=net.eval(),
                input=TensorSpec(kind="noise", z_dim=self.options.z_dim, layout="NC"),
                output=TensorSpec(kind="image", height=IMAGE_SIZE, width=IMAGE_SIZE),
                description=f"Conv VAE decoder, z ~ N(0, I) (beta {self.options.beta:g})",
            )
        ]
