"""``cyclegan``: CycleGAN (Zhu et al. 2017) between face sketches (A) and face photos (B).

Nets (the brief's naming, section B): netG_A2B sketch -> photo and netG_B2A photo -> sketch
(ResNet generators, 9 blocks at 256 px, 6 below), netD_A judges sketches (real_A vs fake_A)
and netD_B photos (real_B vs fake_B): 70x70 PatchGANs, instance norm everywhere. (The
reference code calls the photo judge D_A; here the letter is the domain judged.)

Losses as in pytorch-CycleGAN-and-pix2pix, with LSGAN (MSE to 1 / 0) by default:

    loss_G = GAN(netD_B(fake_B), 1) + GAN(netD_A(fake_A), 1)
             + lambda_cycle * (|rec_A - real_A|_1 + |rec_B - real_B|_1)
             + lambda_cycle * lambda_identity * (|netG_A2B(real_B) - real_B|_1
                                                 + |netG_B2A(real_A) - real_A|_1)
    loss_D_X = 0.5 * (GAN(netD_X(real_X), 1) + GAN(netD_X(pool_X(fake_X)), 0))

One step: both generators (one Adam, discriminators frozen), then both discriminators (one
Adam) on fakes drawn through a 50-image pool each. Adam 2e-4 (0.5, 0.999), batch 1,
N(0, 0.02) init, 100 epochs + 100 of linear decay: the paper's defaults.

Batches are {"A": sketches, "B": photos} with the config's default direction (the data
layer swaps the domains for ``direction=photo2sketch``, and the task names follow). Two
models are published: ``sketch2photo-cyclegan`` (netG_A2B) and ``photo2sketch-cyclegan``
(netG_B2A); with ``model_name`` set, the names are ``<task>-<model_name>``.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from services.trainer.nets import (
    NLayerDiscriminator,
    ResnetGenerator,
    frozen,
    init_weights,
)
from services.trainer.recipes.base import Amp, EvalOutput, ExportSpec, Recipe, register
from services.trainer.recipes.image_pool import ImagePool
from services.trainer.recipes.losses import gan_loss
from shared.manifest import Task, TensorSpec


class CycleGANOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ngf: int = Field(default=64, gt=0)
    ndf: int = Field(default=64, gt=0)
    n_blocks: int | None = Field(default=None, ge=0)  # None: 9 at >= 256 px, else 6
    n_layers_d: int = Field(default=3, gt=0)  # 3: 70x70 patches
    norm: Literal["instance", "batch", "none"] = "instance"
    use_dropout: bool = False
    gan_mode: Literal["lsgan", "vanilla"] = "lsgan"
    lambda_cycle: float = Field(default=10.0, ge=0)  # lambda_A = lambda_B
    lambda_identity: float = Field(default=0.5, ge=0)  # times lambda_cycle; 0 disables
    pool_size: int = Field(default=50, ge=0)  # 0 disables the pools
    init_gain: float = Field(default=0.02, gt=0)


def other_task(task: Task) -> Task:
    return "photo2sketch" if task == "sketch2photo" else "sketch2photo"


@register
class CycleGANRecipe(Recipe):
    name = "cyclegan"
    data_kind = "unpaired"
    Options = CycleGANOptions
    default_image_size = 256
    default_batch_size = 1
    default_epochs = 100
    default_epochs_decay = 100
    default_lr = 2e-4
    default_beta1 = 0.5

    options: CycleGANOptions

    def build(self) -> None:
        opts = self.options
        n_blocks = (
            opts.n_blocks if opts.n_blocks is not None else 9 if self.image_size >= 256 else 6
        )
        self.arch_kwargs: dict[str, Any] = {
            "in_channels": 3,
            "out_channels": 3,
            "ngf": opts.ngf,
            "n_blocks": n_blocks,
            "norm": opts.norm,
            "use_dropout": opts.use_dropout,
        }
        for name in ("netG_A2B", "netG_B2A"):
            self.nets[name] = init_weights(ResnetGenerator(**self.arch_kwargs), opts.init_gain)
        for name in ("netD_A", "netD_B"):
            netD = NLayerDiscriminator(3, ndf=opts.ndf, n_layers=opts.n_layers_d, norm=opts.norm)
            self.nets[name] = init_weights(netD, opts.init_gain)
        self.nets = {name: net.to(self.device) for name, net in self.nets.items()}
        params_G = itertools.chain(
            self.nets["netG_A2B"].parameters(), self.nets["netG_B2A"].parameters()
        )
        params_D = itertools.chain(
            self.nets["netD_A"].parameters(), self.nets["netD_B"].parameters()
        )
        self.optimizers = {
            "G": torch.optim.Adam(params_G, lr=self.lr, betas=self.betas),
            "D": torch.optim.Adam(params_D, lr=self.lr, betas=self.betas),
        }
        # fake_A feeds netD_A, fake_B netD_B; own seeded streams, saved in extra_state
        self.fake_A_pool = ImagePool(opts.pool_size, seed=self.config.seed * 2 + 1)
        self.fake_B_pool = ImagePool(opts.pool_size, seed=self.config.seed * 2 + 2)

    def gan_loss(self, pred: Tensor, target_is_real: bool) -> Tensor:
        return gan_loss(pred, target_is_real, self.options.gan_mode)

    def generator_step(
        self, real_A: Tensor, real_B: Tensor, amp: Amp
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Both generators, discriminators frozen; returns (fake_A, fake_B) detached + losses."""
        netG_A2B, netG_B2A = self.nets["netG_A2B"], self.nets["netG_B2A"]
        netD_A, netD_B = self.nets["netD_A"], self.nets["netD_B"]
        lam, lam_idt = (
            self.options.lambda_cycle,
            self.options.lambda_cycle * self.options.lambda_identity,
        )
        losses: dict[str, Tensor] = {}
        with frozen(netD_A), frozen(netD_B):
            with amp.autocast():
                fake_B = netG_A2B(real_A)  # (N, 3, H, W) photo from sketch
                rec_A = netG_B2A(fake_B)  # (N, 3, H, W) back to the sketch
                fake_A = netG_B2A(real_B)  # (N, 3, H, W) sketch from photo
                rec_B = netG_A2B(fake_A)  # (N, 3, H, W) back to the photo
                losses["G_A2B"] = self.gan_loss(netD_B(fake_B), True)
                losses["G_B2A"] = self.gan_loss(netD_A(fake_A), True)
                losses["cycle_A"] = lam * l1(rec_A, real_A)
                losses["cycle_B"] = lam * l1(rec_B, real_B)
                if lam_idt > 0:  # each generator should leave its own output domain alone
                    losses["idt_A2B"] = lam_idt * l1(netG_A2B(real_B), real_B)
                    losses["idt_B2A"] = lam_idt * l1(netG_B2A(real_A), real_A)
                loss_G = torch.stack(list(losses.values())).sum()
            amp.step(loss_G, self.optimizers["G"])
        losses["G"] = loss_G
        return fake_A.detach(), fake_B.detach(), losses

    def discriminator_step(
        self, real_A: Tensor, real_B: Tensor, fake_A: Tensor, fake_B: Tensor, amp: Amp
    ) -> dict[str, Tensor]:
        netD_A, netD_B = self.nets["netD_A"], self.nets["netD_B"]
        fake_A = self.fake_A_pool.query(fake_A)  # (N, 3, H, W), partly from history
        fake_B = self.fake_B_pool.query(fake_B)
        with amp.autocast():
            loss_D_A = 0.5 * (
                self.gan_loss(netD_A(real_A), True) + self.gan_loss(netD_A(fake_A), False)
            )
            loss_D_B = 0.5 * (
                self.gan_loss(netD_B(real_B), True) + self.gan_loss(netD_B(fake_B), False)
            )
        amp.step(loss_D_A + loss_D_B, self.optimizers["D"])  # disjoint parameters: two updates
        return {"D_A": loss_D_A, "D_B": loss_D_B}

    def train_step(self, batch: dict[str, Tensor], amp: Amp) -> dict[str, float]:
        real_A, real_B = batch["A"], batch["B"]  # (N, 3, H, W) each, unpaired
        fake_A, fake_B, losses = self.generator_step(real_A, real_B, amp)
        losses |= self.discriminator_step(real_A, real_B, fake_A, fake_B, amp)
        values = torch.stack([v.detach().float() for v in losses.values()]).tolist()
        return dict(zip(losses, values, strict=True))

    @torch.no_grad()
    def evaluate_batch(self, batch: dict[str, Tensor]) -> EvalOutput:
        """fake = netG_A2B(A); real = the item's B (its target when the held-out set is paired)."""
        real_A, real_B = batch["A"], batch["B"]
        fake_B = self.nets["netG_A2B"](real_A).float().clamp(-1.0, 1.0)
        fake_A = self.nets["netG_B2A"](real_B).float().clamp(-1.0, 1.0)
        grid = {
            "real_A": real_A,
            "fake_B": fake_B,
            "rec_A": self.nets["netG_B2A"](fake_B).float().clamp(-1.0, 1.0),
            "real_B": real_B,
            "fake_A": fake_A,
            "rec_B": self.nets["netG_A2B"](fake_A).float().clamp(-1.0, 1.0),
        }
        return EvalOutput(fake=fake_B, real=real_B, grid=grid)

    def model_name(self, task: Task) -> str:
        return f"{task}-{self.config.model_name or 'cyclegan'}"

    def exports(self) -> list[ExportSpec]:
        task_A2B: Task = self.config.direction
        image = TensorSpec(kind="image", height=self.image_size, width=self.image_size)
        specs = []
        for net_name, task in (("netG_A2B", task_A2B), ("netG_B2A", other_task(task_A2B))):
            net = self.serving_net("resnet", self.arch_kwargs, net_name)
            specs.append(
                ExportSpec(
                    model_name=self.model_name(task),
                    task=task,
                    architecture="resnet",
                    arch_kwargs=dict(self.arch_kwargs),
                    net=net.eval(),
                    input=image,
                    output=image,
                    description=f"CycleGAN {task} ({net_name}, Zhu et al. 2017)",
                )
            )
        return specs

    def extra_state(self) -> dict[str, Any]:
        return {
            "fake_A_pool": self.fake_A_pool.state_dict(),
            "fake_B_pool": self.fake_B_pool.state_dict(),
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.fake_A_pool.load_state_dict(state["fake_A_pool"])
        self.fake_B_pool.load_state_dict(state["fake_B_pool"])


def l1(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute error in fp32."""
    return (x.float() - y.float()).abs().mean()
