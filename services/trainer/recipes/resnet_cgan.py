"""``resnet-cgan``: the 128x128 ResNet cGAN of the brief (section A).

netG (services.trainer.nets.ResnetCGANGenerator) translates a sketch to a photo; netD
(ResnetCGANDiscriminator) gives one logit per image, P(real) = sigmoid(logit). The generator is
trained THROUGH the combined model (real_A -> netG -> fake_B -> netD -> verdict) with netD's
weights frozen (``services.trainer.nets.frozen``), on the combined model's two outputs:

    loss_G = BCE(verdict, 1) + lambda_l1 * |fake_B - real_B|_1          (GAN + optional L1)
    loss_D = 0.5 * (BCE(netD(real_B), 1) + BCE(netD(fake_B), 0))

lambda_l1 defaults to 100 (pix2pix's value): the brief's combined model OUTPUTS the generated
image besides the verdict, which only makes sense with a loss on that image; 0 gives the pure
GAN. One step is: the generator step through the combined model, then the discriminator step
on the same (detached) fake_B (the order of the CycleGAN reference code: one generator forward
per step; a Keras loop trains D first, which only shifts D by one update).

``combined_input_size`` (e.g. 64 with image_size 128) is the original's mode: netG gets the
sketch downsampled (area) to that size and its output is upsampled (nearest, Keras
UpSampling2D) to image_size for netD and for L1 against the full-size target. The served model
is then netG alone at combined_input_size (the worker resizes to and from it).

Defaults the brief leaves open follow pix2pix: Adam 2e-4 (0.5, 0.999), N(0, 0.02) init,
100 + 100 epochs (linear decay); batch 16 (BatchNorm wants more than one image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from services.trainer.nets import (
    CombinedModel,
    ResnetCGANDiscriminator,
    ResnetCGANGenerator,
    frozen,
    init_weights,
)
from services.trainer.recipes.base import Amp, EvalOutput, ExportSpec, Recipe, register
from services.trainer.recipes.losses import gan_loss
from shared.manifest import TensorSpec


class ResnetCGANOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ngf: int = Field(default=32, gt=0)  # conv1 width (32, 64, 128 through the encoder)
    n_blocks: int = Field(default=6, ge=0)  # residual blocks
    ndf: int = Field(default=64, gt=0)  # first discriminator conv width
    n_layers_d: int = Field(default=4, gt=0)  # stride-2 convs before the dense neuron
    lambda_l1: float = Field(default=100.0, ge=0)  # 0: GAN loss only
    combined_input_size: int | None = Field(default=None, gt=0)  # e.g. 64: netG at 64, netD at 128
    init_gain: float = Field(default=0.02, gt=0)  # std of the N(0, gain) weight init


@register
class ResnetCGANRecipe(Recipe):
    name = "resnet-cgan"
    data_kind = "paired"
    Options = ResnetCGANOptions
    default_image_size = 128
    default_batch_size = 16
    default_epochs = 100
    default_epochs_decay = 100
    default_lr = 2e-4
    default_beta1 = 0.5
    default_publish_metric = "val_l1"

    options: ResnetCGANOptions

    def build(self) -> None:
        opts = self.options
        self.input_size = opts.combined_input_size or self.image_size  # netG's side
        if self.input_size % 4 or self.image_size % self.input_size:
            raise ValueError(
                f"combined_input_size {self.input_size} must be divisible by 4 and divide "
                f"image_size {self.image_size}"
            )
        # UpSampling2D to the discriminator's size, only in the 64-in mode
        self.upsample_to = self.image_size if self.input_size != self.image_size else None
        netG = ResnetCGANGenerator(3, 3, ngf=opts.ngf, n_blocks=opts.n_blocks)
        netD = ResnetCGANDiscriminator(self.image_size, 3, ndf=opts.ndf, n_layers=opts.n_layers_d)
        self.nets = {
            "netG": init_weights(netG, opts.init_gain).to(self.device),
            "netD": init_weights(netD, opts.init_gain).to(self.device),
        }
        self.optimizers = {
            "G": torch.optim.Adam(netG.parameters(), lr=self.lr, betas=self.betas),
            "D": torch.optim.Adam(netD.parameters(), lr=self.lr, betas=self.betas),
        }

    def generator_input(self, real_A: Tensor) -> Tensor:
        """(N, 3, S, S) -> (N, 3, s, s) with s = combined_input_size (identity by default)."""
        if self.input_size == real_A.shape[-1]:
            return real_A
        return F.interpolate(real_A, size=(self.input_size, self.input_size), mode="area")

    def combined(self) -> CombinedModel:
        """The Keras combined model over the nets as the loop holds them (DDP, compiled)."""
        return CombinedModel(self.nets["netG"], self.nets["netD"], upsample_to=self.upsample_to)

    def gan_loss(self, logits: Tensor, target_is_real: bool) -> Tensor:
        return gan_loss(logits, target_is_real)  # BCE on the dense+sigmoid verdict

    def generator_step(
        self, real_A: Tensor, real_B: Tensor, amp: Amp
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Generator step through the combined model, netD frozen; returns fake_B (detached)."""
        netD = self.nets["netD"]
        with frozen(netD):  # gradients flow through netD to netG; netD's own stay untouched
            with amp.autocast():
                fake_B, verdict = self.combined()(self.generator_input(real_A))  # (N,3,S,S), (N,1)
                loss_G_GAN = self.gan_loss(verdict, True)
                loss_G_L1 = (fake_B.float() - real_B.float()).abs().mean()
                loss_G = loss_G_GAN + self.options.lambda_l1 * loss_G_L1
            amp.step(loss_G, self.optimizers["G"])
        return fake_B.detach(), {"G_GAN": loss_G_GAN, "G_L1": loss_G_L1, "G": loss_G}

    def discriminator_step(self, real_B: Tensor, fake_B: Tensor, amp: Amp) -> dict[str, Tensor]:
        netD = self.nets["netD"]
        with amp.autocast():
            loss_D_real = self.gan_loss(netD(real_B), True)
            loss_D_fake = self.gan_loss(netD(fake_B), False)
            loss_D = 0.5 * (loss_D_real + loss_D_fake)
        amp.step(loss_D, self.optimizers["D"])
        return {"D_real": loss_D_real, "D_fake": loss_D_fake, "D": loss_D}

    def train_step(self, batch: dict[str, Tensor], amp: Amp) -> dict[str, float]:
        real_A, real_B = batch["A"], batch["B"]  # (N, 3, S, S) each
        fake_B, losses = self.generator_step(real_A, real_B, amp)
        losses |= self.discriminator_step(real_B, fake_B, amp)
        values = torch.stack([v.detach().float() for v in losses.values()]).tolist()
        return dict(zip(losses, values, strict=True))

    @torch.no_grad()
    def evaluate_batch(self, batch: dict[str, Tensor]) -> EvalOutput:
        real_A, real_B = batch["A"], batch["B"]
        fake_B = self.nets["netG"](self.generator_input(real_A))  # (N, 3, s, s)
        if self.upsample_to is not None:
            fake_B = F.interpolate(fake_B, size=real_B.shape[-2:], mode="nearest")
        fake_B = fake_B.float().clamp(-1.0, 1.0)
        return EvalOutput(
            fake=fake_B, real=real_B, grid={"real_A": real_A, "fake_B": fake_B, "real_B": real_B}
        )

    def exports(self) -> list[ExportSpec]:
        opts = self.options
        arch_kwargs = {
            "in_channels": 3,
            "out_channels": 3,
            "ngf": opts.ngf,
            "n_blocks": opts.n_blocks,
        }
        net = self.serving_net("resnet-cgan", arch_kwargs)
        image = TensorSpec(kind="image", height=self.input_size, width=self.input_size)
        task = self.config.direction
        mode = ""
        if self.upsample_to is not None:
            mode = f", {self.input_size} px in, upsampled to {self.image_size} for netD"
        return [
            ExportSpec(
                model_name=self.config.model_name or f"{task}-resnet-cgan",
                task=task,
                architecture="resnet-cgan",
                arch_kwargs=arch_kwargs,
                net=net.eval(),
                input=image,
                output=image,
                description=f"ResNet cGAN {task} (brief A, GAN + {opts.lambda_l1:g} L1{mode})",
            )
        ]
