"""SketchyGAN (Chen & Hays 2018): MRU generator and discriminator fed the sketch at every scale.

Where the paper is terse, its released code (wchen342/SketchyGAN, TensorFlow) decides; a
Keras re-implementation that dropped the noise and the diversity loss is not followed.

    D: ½ [BCE(D(real_B | real_A), 1) + BCE(D(fake_B | real_A), 0)]     (standard GAN loss)
       + λ_gp · E[max(0, ‖∇D(x̂)‖ − 1)²]    one-sided DRAGAN penalty, x̂ = real + α·(perturbed − real)
       + λ_aux_d · focal-CE(class head(real_B), y)                        (γ = 2)
    G: BCE(D(fake_B | real_A), 1) + λ_aux_g · CE(class head(fake_B), y)
       + λ_l1 · |fake_B − real_B| + λ_perceptual · Σ_l |φ_l(fake_B) − φ_l(real_B)|
       + λ_diversity · −mean_i( mean|G(s_i, z1_i) − G(s_i, z2_i)| / ‖z1_i − z2_i‖₂ )

The GAN terms sum the discriminator's logit map over its positions (mean over the batch), as the
released code does. Defaults are the released code's: λ_l1 = 10, λ_perceptual = 10 · 0.3,
λ_diversity = 10, λ_gp = 10, λ_aux = 1 (D) and 0.5 (G); Adam β = (0, 0.9), lr 2e-4 for G and
4e-4 for D, batch 12, 64x64 images (the paper's size), noise z ~ N(0, I) of 256 dims.
The learning-rate schedule is the loop's (the released code decayed linearly to 0.2x).

Auxiliary classes: the original classified Sketchy's object categories; here one FS2K attribute
(`aux_attribute`, "auto" = "gender" on FS2K data, none elsewhere) or none (no class head).
Perceptual features: Inception, see `services.trainer.recipes.perceptual` (disabled with a warning
when no local Inception file exists; never downloaded).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, field_validator
from torch import Tensor

from services.trainer.data import ATTRIBUTE_NAMES, ATTRIBUTES, DatasetLayoutError, detect_layout
from services.trainer.nets import (
    SketchyDiscriminator,
    SketchyGenerator,
    init_weights,
)
from services.trainer.recipes.base import Amp, EvalOutput, ExportSpec, Recipe, register
from services.trainer.recipes.losses import diversity_loss
from services.trainer.recipes.perceptual import LazyPerceptualLoss, PerceptualOptions
from shared.manifest import TensorSpec

log = logging.getLogger(__name__)


class SketchyGANOptions(PerceptualOptions):
    model_config = ConfigDict(extra="forbid")

    ngf: int = 64  # generator base width (released code: 64)
    ndf: int = 64  # discriminator base width
    num_levels: int = 4  # MRU levels down / up (64 -> 4); sides must divide by 2**num_levels
    noise_dim: int = 256  # z ~ N(0, I), broadcast over the bottleneck
    norm: Literal["batch", "instance", "none"] = "batch"  # generator normalisation
    lambda_l1: float = 10.0
    lambda_perceptual: float = Field(default=3.0, ge=0)  # 10 · 0.3 in the released code
    lambda_diversity: float = 10.0  # 0 disables (not recommended: the point of the noise)
    lambda_gp: float = 10.0  # one-sided DRAGAN gradient penalty on D; 0 disables
    aux_attribute: str | None = "auto"  # an FS2K attribute, "auto" or None (no class head)
    lambda_aux_d: float = 1.0
    lambda_aux_g: float = 0.5
    aux_focal_gamma: float = 2.0  # focal loss on D's class head (0: plain cross-entropy)
    lr_d_ratio: float = 2.0  # D's learning rate = ratio · lr (released code: 4e-4 vs 2e-4)
    beta2: float | None = 0.9  # Adam β2 (None: TrainConfig.beta2)
    # glorot: TensorFlow's default, as the released code had. "normal" (N(0, 0.02), pix2pix's)
    # shrinks the signal through the unnormalised MRU levels of D: at 128 px its logits start
    # near 1e-3 and its GAN loss stayed at ln 2 per position for 200 steps (MODELS.md)
    init: Literal["glorot", "normal"] = "glorot"

    @field_validator("aux_attribute")
    @classmethod
    def _known_attribute(cls, v: str | None) -> str | None:
        if v is None or v.lower() in ("none", "null", ""):
            return None
        if v != "auto" and v not in ATTRIBUTES:
            raise ValueError(f"aux_attribute must be auto, none or one of {ATTRIBUTE_NAMES}")
        return v


def dragan_interpolate(real: Tensor) -> Tensor:
    """x̂ = x + α·(x + ½·std(x)·u − x), α ~ U[0, 1) per image, u ~ U[0, 1) per value."""
    perturbed = real + 0.5 * real.std() * torch.rand_like(real)
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    return (real + alpha * (perturbed - real)).detach()  # (N, 3, H, W)


def one_sided_penalty(logits: Tensor, inputs: Tensor) -> Tensor:
    """mean max(0, ‖∂Σlogits/∂inputs‖₂ − 1)², differentiable.

    Not multiplied by an fp16 GradScaler's scale (as the AMP docs do against underflow): the
    per-value gradients that matter here (norm ≳ 1 over C·H·W values) sit far above fp16's
    smallest numbers, while the scale (2**16) made them overflow.
    """
    (grad,) = torch.autograd.grad(logits.float().sum(), inputs, create_graph=True)
    slopes = grad.float().flatten(1).norm(dim=1)  # (N,)
    return (slopes - 1).clamp(min=0).pow(2).mean()


def gan_loss(logits: Tensor, target: float) -> Tensor:
    """BCE with logits, summed over the logit map (N, 1, h, w), averaged over the batch."""
    loss = F.binary_cross_entropy_with_logits(
        logits.float(), torch.full_like(logits, target, dtype=torch.float32), reduction="none"
    )
    return loss.flatten(1).sum(1).mean()


def focal_cross_entropy(logits: Tensor, labels: Tensor, gamma: float) -> Tensor:
    """mean (1 − p_y)^γ · CE(logits, y) (Lin et al. 2017); γ = 0 is plain cross-entropy."""
    ce = F.cross_entropy(logits.float(), labels, reduction="none")  # (N,)
    return ((1 - torch.exp(-ce)) ** gamma * ce).mean()


def resolve_aux_attribute(option: str | None, data: str) -> str | None:
    """ "auto": "gender" when `data` is an FS2K folder, else None; other values unchanged."""
    if option != "auto":
        return option
    try:
        return "gender" if detect_layout(data) == "fs2k" else None
    except (DatasetLayoutError, OSError):
        return None


@register
class SketchyGANRecipe(Recipe):
    name = "sketchygan"
    data_kind = "paired"
    Options = SketchyGANOptions
    default_image_size = 64
    default_batch_size = 12
    default_lr = 2e-4
    default_beta1 = 0.0

    options: SketchyGANOptions

    def build(self) -> None:
        o = self.options
        if self.image_size % 2**o.num_levels or self.image_size**2 < o.noise_dim:
            raise ValueError(
                f"sketchygan: image_size {self.image_size} must be divisible by "
                f"2**num_levels = {2**o.num_levels}, and its square hold noise_dim "
                f"{o.noise_dim} (the noise travels as one input plane)"
            )
        self.aux_attribute = resolve_aux_attribute(o.aux_attribute, self.config.data)
        num_classes = ATTRIBUTES[self.aux_attribute][0] if self.aux_attribute else 0
        netG = SketchyGenerator(3, 3, o.noise_dim, o.ngf, o.num_levels, o.norm)
        netD = SketchyDiscriminator(3, 3, o.ndf, o.num_levels, num_classes)
        self.nets = {
            "netG": init_weights(netG, scheme=o.init).to(self.device),
            "netD": init_weights(netD, scheme=o.init).to(self.device),
        }
        betas = (self.betas[0], o.beta2 if o.beta2 is not None else self.betas[1])
        self.optimizers = {
            "netG": torch.optim.Adam(netG.parameters(), lr=self.lr, betas=betas),
            "netD": torch.optim.Adam(netD.parameters(), lr=self.lr * o.lr_d_ratio, betas=betas),
        }
        self.perceptual = LazyPerceptualLoss(o, self.name)
        self.eval_rng = torch.Generator().manual_seed(self.config.seed + 1)
        log.info(
            "sketchygan: %dx%d, aux attribute %s, noise %d",
            self.image_size,
            self.image_size,
            self.aux_attribute,
            o.noise_dim,
        )

    def class_labels(self, batch: dict[str, Tensor]) -> Tensor | None:
        if self.aux_attribute is None:
            return None
        if "attrs" not in batch:
            raise ValueError(
                f"sketchygan: aux_attribute={self.aux_attribute!r} needs FS2K attributes "
                "(batch['attrs']); set options.aux_attribute=null for other data"
            )
        return batch["attrs"][:, ATTRIBUTE_NAMES.index(self.aux_attribute)].long()  # (N,)

    def train_step(self, batch: dict[str, Tensor], amp: Amp) -> dict[str, float]:
        o = self.options
        netG, netD = self.nets["netG"], self.nets["netD"]
        real_A, real_B = batch["A"], batch["B"]  # sketch, photo: (N, 3, H, W)
        labels = self.class_labels(batch)  # (N,) or None
        n = real_A.shape[0]
        zero = torch.zeros((), device=real_A.device)

        # one generator pass, two noises per sketch: z[:n] and z[n:]
        z = torch.randn(2 * n, o.noise_dim, device=real_A.device)  # (2N, noise_dim)
        with amp.autocast():
            fakes = netG(torch.cat([real_A, real_A]), z)  # (2N, 3, H, W)
        fake_B, fake_B2 = fakes[:n], fakes[n:]

        # D: real pairs -> 1, fake pairs -> 0, penalty around the reals, classes of the reals
        images = [real_B, fake_B.detach()]
        interp = None
        if o.lambda_gp > 0:
            interp = dragan_interpolate(real_B).requires_grad_(True)
            images.append(interp)
        with amp.autocast():
            adv, cls = netD(torch.cat(images), real_A.repeat(len(images), 1, 1, 1))
            loss_D_gan = 0.5 * (gan_loss(adv[:n], 1.0) + gan_loss(adv[n : 2 * n], 0.0))
            loss_D_gp = zero if interp is None else one_sided_penalty(adv[2 * n :], interp)
            loss_D_aux = zero
            if labels is not None and cls is not None:
                loss_D_aux = focal_cross_entropy(cls[:n], labels, o.aux_focal_gamma)
            loss_D = loss_D_gan + o.lambda_gp * loss_D_gp + o.lambda_aux_d * loss_D_aux
        amp.step(loss_D, self.optimizers["netD"])

        # G: fool D, be classified as the sketch's class, match the photo, keep noises apart
        perceptual = self.perceptual.get(self.device)
        with amp.autocast():
            adv_fake, cls_fake = netD(fake_B, real_A)
            loss_G_gan = gan_loss(adv_fake, 1.0)
            loss_G_aux = zero
            if labels is not None and cls_fake is not None:
                loss_G_aux = F.cross_entropy(cls_fake.float(), labels)
            loss_G_l1 = (fake_B.float() - real_B).abs().mean()
            loss_G_perceptual = zero if perceptual is None else perceptual(fake_B, real_B)
            loss_G_div = diversity_loss(fake_B, fake_B2, z[:n], z[n:])
            loss_G = (
                loss_G_gan
                + o.lambda_aux_g * loss_G_aux
                + o.lambda_l1 * loss_G_l1
                + o.lambda_perceptual * loss_G_perceptual
                + o.lambda_diversity * loss_G_div
            )
        amp.step(loss_G, self.optimizers["netG"])

        losses = {
            "loss_D": loss_D,
            "loss_D_gan": loss_D_gan,
            "loss_D_gp": loss_D_gp,
            "loss_D_aux": loss_D_aux,
            "loss_G": loss_G,
            "loss_G_gan": loss_G_gan,
            "loss_G_aux": loss_G_aux,
            "loss_G_l1": loss_G_l1,
            "loss_G_perceptual": loss_G_perceptual,
            "loss_G_div": loss_G_div,
        }
        values = torch.stack([v.detach().float() for v in losses.values()]).tolist()
        return dict(zip(losses, values, strict=True))

    @torch.no_grad()
    def evaluate_batch(self, batch: dict[str, Tensor]) -> EvalOutput:
        netG = self.nets["netG"]
        real_A = batch["A"]  # (N, 3, H, W)
        n = real_A.shape[0]
        fake_B = netG(real_A, real_A.new_zeros(n, self.options.noise_dim))  # as served: z = 0
        z = torch.randn(n, self.options.noise_dim, generator=self.eval_rng).to(real_A.device)
        fake_noisy = netG(real_A, z)
        grid = {"sketch": real_A, "fake": fake_B, "fake_noise": fake_noisy}
        if "B" in batch:
            grid["real"] = batch["B"]
        return EvalOutput(fake=fake_B, real=batch.get("B"), grid=grid)

    def arch_kwargs(self) -> dict[str, int | str]:
        o = self.options
        return {
            "in_channels": 3,
            "out_channels": 3,
            "noise_dim": o.noise_dim,
            "ngf": o.ngf,
            "num_levels": o.num_levels,
            "norm": o.norm,
        }

    def exports(self) -> list[ExportSpec]:
        kwargs = self.arch_kwargs()
        net = self.serving_net("sketchy", kwargs)
        size, noise_dim = self.image_size, self.options.noise_dim
        # the sketch's 3 planes, then the noise plane (z in its first noise_dim values)
        sketch = TensorSpec(height=size, width=size, channels=3 + 1, noise_dim=noise_dim)
        image = TensorSpec(kind="image", height=size, width=size)
        direction = self.config.direction
        return [
            ExportSpec(
                model_name=self.config.model_name or f"{direction}-sketchygan",
                task=direction,
                architecture="sketchy",
                arch_kwargs=kwargs,
                net=net,
                input=sketch,
                output=image,
                description=f"SketchyGAN (MRU, noise as the last input plane) {direction}, "
                f"{size}x{size}",
            )
        ]

    def extra_state(self) -> dict[str, Any]:
        return {"eval_rng": self.eval_rng.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "eval_rng" in state:
            self.eval_rng.set_state(state["eval_rng"])
