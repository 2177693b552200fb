"""Siamese-discriminator GAN on 32x32 images (brief section C), e.g. CIFAR-10 cats and dogs.

Generator: DCGAN (Radford et al. 2016) from z ~ N(0, I) of 100 dims, optionally with a one-hot
class appended (`conditional`). Discriminator: a Siamese network scoring how alike the two
images of a pair are (a similarity logit, see ``nets.SiameseDiscriminator``). With real'
another real image of the same class (a batch neighbour) and fake = G(z, class of real):

    D: BCE(sim(real, real'), 1) + BCE(sim(real, fake), 0)   (tell the pairs apart)
    G: BCE(sim(real, fake), 1)                              (make its images score as real)

Pairing each fake with a real of its own class is what makes the conditioning learnable: the
Siamese discriminator itself has no class input. Both pairs go through D in one call.
Defaults are DCGAN's: Adam lr 2e-4, β1 0.5, batch 64 (the brief), constant learning rate.

Conditional: by default (None) on when the dataset's training split has class folders (two
or more; cat and dog), with their names in label order; `class_names` overrides the names.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from services.trainer.data import DatasetLayoutError, detect_layout
from services.trainer.data.common import split_dir
from services.trainer.data.folders import class_folders
from services.trainer.nets import (
    DCGANGenerator,
    SiameseDiscriminator,
    init_weights,
)
from services.trainer.recipes.base import Amp, EvalOutput, ExportSpec, Recipe, register
from shared.manifest import TensorSpec

log = logging.getLogger(__name__)

IMAGE_SIZE = 32  # the DCGAN generator's fixed output side


class SiameseGANOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    z_dim: int = 100
    ngf: int = 64
    ndf: int = 64
    embed_dim: int = 128  # Siamese embedding width
    norm_D: Literal["batch", "none"] = "batch"  # noqa: N815  (pix2pix's option name)
    spectral_norm: bool = False  # in every layer of D (use with norm_D="none")
    # feature matching (Salimans et al. 2016): G also matches the batch mean of D's embedding
    # of real images; 0 = off. Against the collapse of every fake to one image.
    lambda_fm: float = Field(default=0.0, ge=0)
    conditional: bool | None = None  # None: when the dataset has class folders
    class_names: list[str] | None = None  # None: the dataset's class folders, sorted


def dataset_classes(data: str, layout: str = "auto") -> list[str]:
    """Class folder names of `data`'s training split in label order; [] for other layouts."""
    if layout not in ("auto", "class-folders"):
        return []
    try:
        if layout == "auto" and detect_layout(data) != "class-folders":
            return []
        return class_folders(split_dir(Path(data), "train"))
    except (DatasetLayoutError, OSError):
        return []


def same_class_partner(labels: Tensor) -> Tensor:
    """For each i the index of the next sample with the same label (cyclically): (N,) long."""
    partner = torch.arange(labels.shape[0], device=labels.device)
    for c in labels.unique():
        idx = (labels == c).nonzero().squeeze(1)  # (K,)
        partner[idx] = idx.roll(-1)
    return partner


@register
class SiameseGANRecipe(Recipe):
    name = "siamese-gan"
    data_kind = "images"
    Options = SiameseGANOptions
    default_image_size = IMAGE_SIZE
    default_batch_size = 64
    default_epochs = 100
    default_epochs_decay = 0
    default_lr = 2e-4
    default_beta1 = 0.5
    default_publish_metric = "fid"

    options: SiameseGANOptions

    def build(self) -> None:
        o = self.options
        if self.image_size != IMAGE_SIZE:
            raise ValueError(
                f"siamese-gan generates {IMAGE_SIZE}x{IMAGE_SIZE} images, "
                f"not image_size={self.image_size}"
            )
        found = dataset_classes(self.config.data, self.config.layout)
        names = o.class_names if o.class_names is not None else found
        self.conditional = o.conditional if o.conditional is not None else len(names) >= 2
        if self.conditional and len(names) < 2:
            raise ValueError(
                "siamese-gan: conditional needs two or more classes; set "
                "options.class_names or use class-folder data"
            )
        self.class_names = list(names) if self.conditional else []
        netG = DCGANGenerator(o.z_dim, o.ngf, len(self.class_names), 3)
        netD = SiameseDiscriminator(3, o.ndf, o.embed_dim, o.norm_D, o.spectral_norm)
        self.nets = {
            "netG": init_weights(netG).to(self.device),
            "netD": init_weights(netD).to(self.device),
        }
        self.optimizers = {
            "netG": torch.optim.Adam(netG.parameters(), lr=self.lr, betas=self.betas),
            "netD": torch.optim.Adam(netD.parameters(), lr=self.lr, betas=self.betas),
        }
        self.eval_rng = torch.Generator().manual_seed(self.config.seed + 1)
        log.info("siamese-gan: classes %s", self.class_names or "none (unconditional)")

    def class_labels(self, batch: dict[str, Tensor]) -> Tensor | None:
        if not self.conditional:
            return None
        if "label" not in batch:
            raise ValueError(
                "siamese-gan: conditional training needs batch['label'] "
                "(class folders); set options.conditional=false"
            )
        return batch["label"].long()  # (N,)

    def train_step(self, batch: dict[str, Tensor], amp: Amp) -> dict[str, float]:
        netG, netD = self.nets["netG"], self.nets["netD"]
        real = batch["B"]  # (N, 3, 32, 32)
        n = real.shape[0]
        labels = self.class_labels(batch)  # (N,) or None
        partner = same_class_partner(labels if labels is not None else real.new_zeros(n))
        real_2 = real[partner]  # another real of the same class: (N, 3, 32, 32)
        z = torch.randn(n, self.options.z_dim, device=real.device)  # (N, z_dim)
        with amp.autocast():
            fake = netG(z, labels)  # (N, 3, 32, 32)

        # D: (real, real') similar -> 1, (real, fake) -> 0, both pairs in one call
        with amp.autocast():
            sim = netD(torch.cat([real, real]), torch.cat([real_2, fake.detach()])).float()
            sim_real, sim_fake = sim[:n], sim[n:]  # (N,) each
            loss_D_real = F.binary_cross_entropy_with_logits(sim_real, torch.ones_like(sim_real))
            loss_D_fake = F.binary_cross_entropy_with_logits(sim_fake, torch.zeros_like(sim_fake))
            loss_D = loss_D_real + loss_D_fake
        amp.step(loss_D, self.optimizers["netD"])

        # G: make (real, fake) score as similar
        with amp.autocast():
            sim_g = netD(real, fake).float()  # (N,)
            loss_G_gan = F.binary_cross_entropy_with_logits(sim_g, torch.ones_like(sim_g))
            loss_G_fm = torch.zeros((), device=real.device)
            if self.options.lambda_fm:
                embed = cast(SiameseDiscriminator, netD).embed
                e_real = embed(real).detach().float().mean(0)  # (embed_dim,)
                e_fake = embed(fake).float().mean(0)  # (embed_dim,)
                loss_G_fm = F.mse_loss(e_fake, e_real)
            loss_G = loss_G_gan + self.options.lambda_fm * loss_G_fm
        amp.step(loss_G, self.optimizers["netG"])

        values = torch.stack(
            [
                loss_D.detach(),
                loss_D_real.detach(),
                loss_D_fake.detach(),
                loss_G.detach(),
                loss_G_fm.detach(),
                torch.sigmoid(sim_real.detach()).mean(),
                torch.sigmoid(sim_fake.detach()).mean(),
            ]
        ).tolist()
        keys = ("loss_D", "loss_D_real", "loss_D_fake", "loss_G", "loss_G_fm", "D_real_pair",
                "D_fake_pair")  # fmt: skip
        return dict(zip(keys, values, strict=True))

    def latent(self, n: int, labels: Tensor | None) -> Tensor:
        """(n, z_dim + classes) from the private evaluation generator, as the worker builds it."""
        z = torch.randn(n, self.options.z_dim, generator=self.eval_rng)  # (n, z_dim)
        if self.conditional:
            if labels is None:
                labels = torch.randint(len(self.class_names), (n,), generator=self.eval_rng)
            z = torch.cat([z, F.one_hot(labels.long().cpu(), len(self.class_names)).float()], 1)
        return z

    @torch.no_grad()
    def evaluate_batch(self, batch: dict[str, Tensor]) -> EvalOutput:
        real = batch["B"]  # (N, 3, 32, 32)
        n = real.shape[0]
        latent = self.latent(n, batch.get("label") if self.conditional else None).to(real.device)
        z = latent[:, : self.options.z_dim]  # (N, z_dim)
        labels = latent[:, self.options.z_dim :].argmax(1) if self.conditional else None
        fake = self.nets["netG"](z, labels)  # (N, 3, 32, 32)
        return EvalOutput(fake=fake, real=None, grid={"real": real, "fake": fake})

    def arch_kwargs(self) -> dict[str, int]:
        o = self.options
        return {
            "z_dim": o.z_dim,
            "ngf": o.ngf,
            "num_classes": len(self.class_names),
            "out_channels": 3,
        }

    def exports(self) -> list[ExportSpec]:
        kwargs = self.arch_kwargs()
        net = self.serving_net("dcgan", kwargs)
        return [
            ExportSpec(
                model_name=self.config.model_name or "catdog-siamese-gan",
                task="generate",
                architecture="dcgan",
                arch_kwargs=kwargs,
                net=net,
                input=TensorSpec(
                    kind="noise",
                    z_dim=self.options.z_dim,
                    layout="NC",
                    num_classes=len(self.class_names),
                    class_names=self.class_names,
                ),
                output=TensorSpec(kind="image", height=IMAGE_SIZE, width=IMAGE_SIZE),
                description="DCGAN generator trained against a Siamese discriminator"
                + (f" (classes: {', '.join(self.class_names)})" if self.class_names else ""),
            )
        ]

    def extra_state(self) -> dict[str, Any]:
        return {"eval_rng": self.eval_rng.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "eval_rng" in state:
            self.eval_rng.set_state(state["eval_rng"])
