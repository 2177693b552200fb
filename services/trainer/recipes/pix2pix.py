"""``pix2pix``: conditional GAN with a U-Net generator and a PatchGAN (Isola et al. 2017).

As in pytorch-CycleGAN-and-pix2pix (``pix2pix_model.py``), per step on a batch (real_A, real_B):

    fake_B = netG(real_A)
    D: loss_D = 0.5 * (GAN(netD([real_A, fake_B.detach()]), 0) + GAN(netD([real_A, real_B]), 1))
    G: loss_G = GAN(netD([real_A, fake_B]), 1) + lambda_l1 * |fake_B - real_B|_1   (netD frozen)

netG: U-Net (``shared.nets.UNetGenerator``) with num_downs from the image size (8 for 256
px, 7 for 128, 6 for 64, 5 for 32), dropout in the innermost decoder blocks (the noise of the
paper). netD: 70x70 PatchGAN (n_layers_D=3) on the channel-concatenated (input, output) pair.
Normalisation: the paper uses batch norm at batch size 1 and keeps batch statistics at test
time, which is instance normalisation; a served graph runs in eval mode, and with batch
norm's running statistics the bootstrap U-Net's held-out L1 was 0.38 against 0.137 with
per-example statistics. So netG defaults to instance norm (the same maths the paper tests
with, and safe under dynamic batching: no example changes another's output); netD keeps
batch norm. N(0, 0.02) init, vanilla GAN loss (BCE with logits; "lsgan" optional), λ=100,
Adam lr 2e-4 β=(0.5, 0.999), batch 1, 100 epochs + 100 of linear decay: the paper's
defaults. Batches are {"A": source, "B": target} after the data layer's direction switch, so
the published model's task is ``config.direction``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from services.trainer.recipes.base import Amp, EvalOutput, ExportSpec, Recipe, register, unwrap
from services.trainer.recipes.losses import gan_loss
from shared.manifest import TensorSpec
from shared.nets import NLayerDiscriminator, UNetGenerator, build_serving_net, init_weights

MAX_NUM_DOWNS = 8


class Pix2PixOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ngf: int = Field(default=64, gt=0)  # generator width (last conv layer)
    ndf: int = Field(default=64, gt=0)  # discriminator width (first conv layer)
    n_layers_D: int = Field(default=3, gt=0)  # noqa: N815  (the reference code's name); 3: 70x70
    num_downs: int | None = Field(default=None, ge=5)  # None: from the image size
    norm: Literal["batch", "instance", "none"] = "instance"  # netG (see the module doc)
    norm_D: Literal["batch", "instance", "none"] = "batch"  # noqa: N815
    use_dropout: bool = True
    lambda_l1: float = Field(default=100.0, ge=0)
    gan_mode: Literal["vanilla", "lsgan"] = "vanilla"
    init_gain: float = Field(default=0.02, gt=0)


def num_downs_for(image_size: int) -> int:
    """Downsamplings for a side: 8 for 256, 7 for 128, 6 for 64, 5 for 32 (at most 8)."""
    n = 0
    while n < MAX_NUM_DOWNS and image_size % 2 ** (n + 1) == 0:
        n += 1
    if n < 5:
        raise ValueError(f"pix2pix needs an image size divisible by 32, got {image_size}")
    return n


@register
class Pix2PixRecipe(Recipe):
    name = "pix2pix"
    data_kind = "paired"
    Options = Pix2PixOptions
    default_image_size = 256
    default_batch_size = 1
    default_epochs = 100
    default_epochs_decay = 100
    default_lr = 2e-4
    default_beta1 = 0.5
    default_publish_metric = "val_l1"

    options: Pix2PixOptions

    def build(self) -> None:
        opts = self.options
        num_downs = opts.num_downs or num_downs_for(self.image_size)
        if self.image_size % 2**num_downs:
            raise ValueError(f"image size {self.image_size} not divisible by 2**{num_downs}")
        self.arch_kwargs: dict[str, Any] = {
            "in_channels": 3,
            "out_channels": 3,
            "num_downs": num_downs,
            "ngf": opts.ngf,
            "norm": opts.norm,
            "use_dropout": opts.use_dropout,
        }
        netG = UNetGenerator(**self.arch_kwargs)
        netD = NLayerDiscriminator(6, ndf=opts.ndf, n_layers=opts.n_layers_D, norm=opts.norm_D)
        self.nets = {
            "netG": init_weights(netG, opts.init_gain).to(self.device),
            "netD": init_weights(netD, opts.init_gain).to(self.device),
        }
        self.optimizers = {
            name: torch.optim.Adam(
                self.nets[f"net{name}"].parameters(), lr=self.lr, betas=self.betas
            )
            for name in ("G", "D")
        }

    def gan_loss(self, pred: Tensor, target_is_real: bool) -> Tensor:
        return gan_loss(pred, target_is_real, self.options.gan_mode)

    def train_step(self, batch: dict[str, Tensor], amp: Amp) -> dict[str, float]:
        real_A, real_B = batch["A"], batch["B"]  # (N, 3, H, W) each
        netG, netD = self.nets["netG"], self.nets["netD"]
        with amp.autocast():
            fake_B = netG(real_A)  # (N, 3, H, W)
        # D: real pairs -> 1, fake pairs -> 0
        netD.requires_grad_(True)
        with amp.autocast():
            pred_fake = netD(torch.cat([real_A, fake_B.detach()], 1))  # (N, 1, h, w) logits
            pred_real = netD(torch.cat([real_A, real_B], 1))
            loss_D_fake = self.gan_loss(pred_fake, False)
            loss_D_real = self.gan_loss(pred_real, True)
            loss_D = 0.5 * (loss_D_fake + loss_D_real)
        amp.step(loss_D, self.optimizers["D"])
        # G: fool netD (frozen) and stay close to the target
        netD.requires_grad_(False)
        with amp.autocast():
            pred_fake = netD(torch.cat([real_A, fake_B], 1))
            loss_G_GAN = self.gan_loss(pred_fake, True)
            loss_G_L1 = (fake_B.float() - real_B.float()).abs().mean() * self.options.lambda_l1
            loss_G = loss_G_GAN + loss_G_L1
        amp.step(loss_G, self.optimizers["G"])
        netD.requires_grad_(True)
        losses = {
            "G_GAN": loss_G_GAN,
            "G_L1": loss_G_L1,
            "D_real": loss_D_real,
            "D_fake": loss_D_fake,
        }
        values = torch.stack([v.detach().float() for v in losses.values()]).tolist()
        return dict(zip(losses, values, strict=True))

    @torch.no_grad()
    def evaluate_batch(self, batch: dict[str, Tensor]) -> EvalOutput:
        real_A, real_B = batch["A"], batch["B"]  # (N, 3, H, W) each
        fake_B = self.nets["netG"](real_A).float().clamp(-1.0, 1.0)
        grid = {"real_A": real_A, "fake_B": fake_B, "real_B": real_B}
        return EvalOutput(fake=fake_B, real=real_B.float(), grid=grid)

    def model_name(self) -> str:
        if self.config.model_name:
            return self.config.model_name
        return f"{self.config.direction}-pix2pix"

    def exports(self) -> list[ExportSpec]:
        net = build_serving_net("unet", **self.arch_kwargs)
        state = unwrap(self.nets["netG"]).state_dict()
        net.load_state_dict(
            {
                f"netG.{k}": v.detach().float().cpu() if v.is_floating_point() else v.detach().cpu()
                for k, v in state.items()
            }
        )
        image = TensorSpec(kind="image", height=self.image_size, width=self.image_size)
        task = self.config.direction
        return [
            ExportSpec(
                model_name=self.model_name(),
                task=task,
                architecture="unet",
                arch_kwargs=dict(self.arch_kwargs),
                net=net.eval(),
                input=image,
                output=image,
                description=f"pix2pix {task} (U-Net + PatchGAN, Isola et al. 2017)",
            )
        ]
