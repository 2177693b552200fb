"""``pix2pix``: conditional GAN with a U-Net generator and a PatchGAN (Isola et al. 2017).

As in pytorch-CycleGAN-and-pix2pix (``pix2pix_model.py``), per step on a batch (real_A, real_B):

    fake_B = netG(real_A)
    D: loss_D = 0.5 * (GAN(netD([real_A, fake_B.detach()]), 0) + GAN(netD([real_A, real_B]), 1))
    G: loss_G = GAN(netD([real_A, fake_B]), 1) + lambda_l1 * |fake_B - real_B|_1   (netD frozen)

netG: U-Net (``services.trainer.nets.UNetGenerator``) with num_downs from the image size (8 for 256
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

Improvements for small data and small budgets are options, off by default
(``recipes.pix2pix_options``); ``configs/`` holds the shipped face recipes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from services.trainer.nets import (
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    UNetGenerator,
    init_weights,
)
from services.trainer.recipes.attribute_critic import (
    attribute_labels,
    build_attribute_critic,
    critic_loss,
    generator_attribute_loss,
    training_class_weights,
)
from services.trainer.recipes.base import Amp, EvalOutput, ExportSpec, Recipe, register, unwrap
from services.trainer.recipes.diffaugment import augment_alike
from services.trainer.recipes.ema import ema_copy, ema_update
from services.trainer.recipes.feature_matching import feature_lists, feature_matching
from services.trainer.recipes.losses import diversity_loss, gan_loss
from services.trainer.recipes.perceptual import LazyPerceptualLoss
from services.trainer.recipes.pix2pix_options import Pix2PixOptions, num_downs_for
from services.trainer.recipes.style_condition import NUM_STYLES, STYLE, style_planes
from shared.manifest import TensorSpec

log = logging.getLogger(__name__)


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
        self.num_conditions = NUM_STYLES if opts.condition == "style" else 0
        self.arch_kwargs: dict[str, Any] = {
            "in_channels": 3 + self.num_conditions,
            "out_channels": 3,
            "num_downs": num_downs,
            "ngf": opts.ngf,
            "norm": opts.norm,
            "use_dropout": opts.use_dropout,
        }
        if opts.upsample != "transpose":  # older manifests have no such key
            self.arch_kwargs["upsample"] = opts.upsample
        if opts.noise_levels:
            self.arch_kwargs["noise_levels"] = opts.noise_levels
        netG = init_weights(UNetGenerator(**self.arch_kwargs), opts.init_gain)
        d_kwargs: dict[str, Any] = {
            "in_channels": 6 + self.num_conditions,
            "ndf": opts.ndf,
            "n_layers": opts.n_layers_D,
            "norm": opts.norm_D,
            "spectral_norm": opts.spectral_norm,
        }
        smallest = self.image_size // 2 ** (opts.num_D - 1)
        if smallest < 2 ** (opts.n_layers_D + 2):
            raise ValueError(
                f"num_D={opts.num_D} at {self.image_size} px gives the last PatchGAN "
                f"{smallest} px, too small for n_layers_D={opts.n_layers_D}; "
                f"use fewer scales or layers"
            )
        netD: nn.Module = MultiscaleDiscriminator(opts.num_D, **d_kwargs)
        if opts.num_D == 1:
            netD = NLayerDiscriminator(**d_kwargs)  # the paper's single PatchGAN
        self.nets = {
            "netG": netG.to(self.device),
            "netD": init_weights(netD, opts.init_gain).to(self.device),
        }
        self.optimizers = {
            name: torch.optim.Adam(
                self.nets[f"net{name}"].parameters(), lr=self.lr, betas=self.betas
            )
            for name in ("G", "D")
        }
        if opts.lambda_attr > 0 or opts.attr_critic:
            self.nets["netC"] = build_attribute_critic(opts.attr_size or self.image_size).to(
                self.device
            )
            self.optimizers["C"] = torch.optim.Adam(
                self.nets["netC"].parameters(), lr=self.lr, betas=self.betas
            )
        if opts.ema_beta > 0:
            self.nets["netG_ema"] = ema_copy(self.nets["netG"])
        self.g_steps = 0
        self.perceptual = LazyPerceptualLoss(opts, self.name)
        self.attr_weights: list[Tensor] | None = None  # set by see_training_set

    def see_training_set(self, dataset: Dataset[dict[str, Any]]) -> None:
        if self.options.attr_balance > 0:
            weights = training_class_weights(dataset, self.options.attr_balance)
            self.attr_weights = [w.to(self.device) for w in weights]  # once, not every step
            log.info("attribute term class weights: %s", [w.tolist() for w in self.attr_weights])

    def gan_loss(self, preds: Tensor | list[Tensor], target_is_real: bool) -> Tensor:
        """Mean over the discriminator's scales."""
        preds = preds if isinstance(preds, list) else [preds]
        losses = [gan_loss(p, target_is_real, self.options.gan_mode) for p in preds]
        return torch.stack(losses).mean()

    def conditioned(self, real_A: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """(N, 3, H, W) -> (N, 3 + K, H, W): the input with K one-hot style planes."""
        if not self.num_conditions:
            return real_A
        if "attrs" not in batch:
            raise ValueError("options.condition='style' needs FS2K items (batch['attrs'])")
        style = batch["attrs"][:, STYLE].long()  # (N,)
        return torch.cat([real_A, style_planes(style, self.num_conditions, real_A)], 1)

    def d_input(self, cond_A: Tensor, B: Tensor) -> Tensor:
        """(N, 3 + K + 3, H, W): the conditioning input and an output image, D's pair."""
        return torch.cat([cond_A, B], 1)

    def train_step(self, batch: dict[str, Tensor], amp: Amp) -> dict[str, float]:
        opts = self.options
        real_A, real_B = batch["A"], batch["B"]  # (N, 3, H, W) each
        cond_A = self.conditioned(real_A, batch)  # (N, 3 + K, H, W)
        netG, netD = self.nets["netG"], self.nets["netD"]
        policy, color_from = opts.diffaugment, cond_A.shape[1]
        with amp.autocast():
            fake_B = netG(cond_A)  # (N, 3, H, W)
        # D: real pairs -> 1, fake pairs -> 0 (each pair augmented alike, if DiffAugment is on)
        netD.requires_grad_(True)
        with amp.autocast():
            real_pair, fake_pair = augment_alike(
                policy, color_from, self.d_input(cond_A, real_B), self.d_input(cond_A, fake_B)
            )
            pred_fake = netD(fake_pair.detach())  # (N, 1, h, w) logits (a list: multi-scale)
            pred_real = netD(real_pair)
            loss_D_fake = self.gan_loss(pred_fake, False)
            loss_D_real = self.gan_loss(pred_real, True)
            loss_D = 0.5 * (loss_D_fake + loss_D_real)
        amp.step(loss_D, self.optimizers["D"])
        if "netC" in self.nets:  # netC: the real photos' attribute labels
            labels = attribute_labels(batch)  # (N, K)
            with amp.autocast():
                loss_C = critic_loss(self.nets["netC"], real_B, labels)
            amp.step(loss_C, self.optimizers["C"])
        # G: fool netD (frozen), stay close to the target, match D's features of the target
        netD.requires_grad_(False)
        losses: dict[str, Tensor] = {}
        with amp.autocast():
            if opts.lambda_fm > 0:  # the real pair only for feature matching
                real_pair, fake_pair = augment_alike(
                    policy, color_from, self.d_input(cond_A, real_B), self.d_input(cond_A, fake_B)
                )
                feats_fake = feature_lists(netD, fake_pair)
                with torch.no_grad():
                    feats_real = feature_lists(netD, real_pair)
                losses["G_GAN"] = self.gan_loss([f[-1] for f in feats_fake], True)
                losses["G_FM"] = opts.lambda_fm * feature_matching(feats_fake, feats_real)
            else:
                (fake_pair,) = augment_alike(policy, color_from, self.d_input(cond_A, fake_B))
                losses["G_GAN"] = self.gan_loss(netD(fake_pair), True)
            losses["G_L1"] = (fake_B.float() - real_B.float()).abs().mean() * opts.lambda_l1
            perceptual = self.perceptual.get(self.device)
            if perceptual is not None:
                losses["G_perceptual"] = opts.lambda_perceptual * perceptual(fake_B, real_B)
            if opts.lambda_diversity > 0:  # a second draw of G's noise for the same inputs
                fake_B2 = netG(cond_A)  # (N, 3, H, W)
                losses["G_diversity"] = opts.lambda_diversity * diversity_loss(fake_B, fake_B2)
            if opts.lambda_attr > 0:  # netC (frozen) should read real_B's labels off fake_B
                attr_loss = generator_attribute_loss(
                    self.nets["netC"], fake_B, labels, self.attr_weights
                )
                losses["G_attr"] = opts.lambda_attr * attr_loss
            loss_G = torch.stack(list(losses.values())).sum()
        amp.step(loss_G, self.optimizers["G"])
        netD.requires_grad_(True)
        if "netG_ema" in self.nets:
            ema_update(self.nets["netG_ema"], unwrap(netG), beta=opts.ema_beta, step=self.g_steps)
        self.g_steps += 1
        losses.update(D_real=loss_D_real, D_fake=loss_D_fake)
        if "netC" in self.nets:
            losses["C_attr"] = loss_C
        values = torch.stack([v.detach().float() for v in losses.values()]).tolist()
        return dict(zip(losses, values, strict=True))

    @property
    def serving_generator_name(self) -> str:
        """The net that is evaluated and exported: the EMA copy when there is one."""
        return "netG_ema" if "netG_ema" in self.nets else "netG"

    def serving_generator(self) -> nn.Module:
        return self.nets[self.serving_generator_name]

    def generators(self) -> Iterator[nn.Module]:
        yield self.nets["netG"]

    @torch.no_grad()
    def evaluate_batch(self, batch: dict[str, Tensor]) -> EvalOutput:
        real_A, real_B = batch["A"], batch["B"]  # (N, 3, H, W) each
        cond_A = self.conditioned(real_A, batch)
        fake_B = self.serving_generator()(cond_A).float().clamp(-1.0, 1.0)
        grid = {"real_A": real_A, "fake_B": fake_B, "real_B": real_B}
        return EvalOutput(fake=fake_B, real=real_B.float(), grid=grid)

    def extra_state(self) -> dict[str, Any]:
        return {"g_steps": self.g_steps}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.g_steps = int(state.get("g_steps", 0))

    def model_name(self) -> str:
        if self.config.model_name:
            return self.config.model_name
        return f"{self.config.direction}-pix2pix"

    def exports(self) -> list[ExportSpec]:
        net = self.serving_net("unet", self.arch_kwargs, self.serving_generator_name)
        size = self.image_size
        image = TensorSpec(kind="image", height=size, width=size, fit=self.config.fit)
        source = image
        if self.num_conditions:
            source = image.model_copy(
                update={
                    "channels": 3 + self.num_conditions,
                    "condition": "style",
                    "condition_values": [str(i + 1) for i in range(self.num_conditions)],
                }
            )
        task = self.config.direction
        return [
            ExportSpec(
                model_name=self.model_name(),
                task=task,
                architecture="unet",
                arch_kwargs=dict(self.arch_kwargs),
                net=net.eval(),
                input=source,
                output=image,
                description=f"pix2pix {task} (U-Net + PatchGAN, Isola et al. 2017)",
            )
        ]
