"""pix2pix's options: the paper's defaults, and what this project adds for small data.

Improvements for small data and small budgets, each an option (off by default, so the
defaults stay the paper's recipe; ``configs/`` holds the shipped face recipes):

- ``upsample="resize"``: bilinear resize + 3x3 conv in the U-Net decoder (no checkerboard);
- ``noise_levels``: per-pixel noise inputs in that many outer decoder levels (StyleGAN's;
  ``services.trainer.nets.noise``), texture G can learn where L1 and the perceptual loss
  would average it away; ``lambda_diversity`` adds the mode-seeking term (Mao et al. 2019,
  ``recipes.losses.diversity_loss``) between two noise draws for one input, so G cannot
  learn to ignore its noise;
- ``num_D``, ``spectral_norm``, ``lambda_fm``: pix2pixHD's multi-scale PatchGAN with
  feature matching, spectral norm in D (``services.trainer.nets.MultiscaleDiscriminator``);
- ``n_layers_D``: D's patch (3: 70x70, 2: 34x34, 1: 16x16, 0: the paper's 1x1 PixelGAN);
- ``diffaugment``: the same differentiable augmentation on D's real and fake pairs, in the D
  and the G step (``recipes.diffaugment``);
- ``ema_beta``: an EMA copy of netG ("netG_ema") is what is evaluated and exported;
- ``lambda_perceptual``: + λ · the distance (``perceptual_distance``, L1 by default) between
  Inception features (``perceptual_layers``) of fake_B and real_B (``recipes.perceptual``;
  pix2pixHD's VGG loss, with the one pretrained network the project ships);
- ``lambda_attr``: + λ · the cross-entropy of an attribute classifier netC, trained on the
  real targets' FS2K labels alongside, on fake_B (StarGAN's D_cls; ``recipes.attribute_critic``);
  ``attr_size`` is the side netC reads (64, the evaluation's, costs 1/4 of 128 px; netC's
  weights do not depend on it, so a netC carries from a 128 px run into a 256 px one);
  ``attr_critic`` trains netC with no term on G, so that a later stage (``--init-from``) can
  start the term with a netC that already reads the photos; a netC trained alone on the real
  photos (``evaluation/attributes.py``, another seed than the evaluation's) is such a start too;
  ``attr_balance`` b weights each class of the term by its training-set frequency**-b;
- ``condition="style"``: FS2K's drawing style (1-3) as one-hot planes after the RGB input of
  G and D; the exported input has 3 + 3 channels and its manifest names the condition.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from services.trainer.recipes.diffaugment import parse_policy
from services.trainer.recipes.perceptual import PerceptualOptions

MAX_NUM_DOWNS = 8


class Pix2PixOptions(PerceptualOptions):
    model_config = ConfigDict(extra="forbid")

    ngf: int = Field(default=64, gt=0)  # generator width (last conv layer)
    ndf: int = Field(default=64, gt=0)  # discriminator width (first conv layer)
    # the reference code's name; 3: 70x70 patches, 1: 16x16, 0: the PixelGAN (1x1)
    n_layers_D: int = Field(default=3, ge=0)  # noqa: N815
    num_downs: int | None = Field(default=None, ge=5)  # None: from the image size
    norm: Literal["batch", "instance", "none"] = "instance"  # netG (why: recipes.pix2pix)
    norm_D: Literal["batch", "instance", "none"] = "batch"  # noqa: N815
    use_dropout: bool = True
    lambda_l1: float = Field(default=100.0, ge=0)
    gan_mode: Literal["vanilla", "lsgan"] = "vanilla"
    init_gain: float = Field(default=0.02, gt=0)
    # --- beyond the paper (the list above); defaults are the paper's
    upsample: Literal["transpose", "resize"] = "transpose"
    noise_levels: int = Field(default=0, ge=0)  # decoder levels with per-pixel noise inputs
    lambda_diversity: float = Field(default=0.0, ge=0)  # mode-seeking term (needs the noise)
    num_D: int = Field(default=1, ge=1, le=4)  # noqa: N815  PatchGANs at 1, 1/2, 1/4 … scale
    spectral_norm: bool = False  # in every conv of D (use with norm_D="none")
    lambda_fm: float = Field(default=0.0, ge=0)  # D feature matching (pix2pixHD uses 10)
    diffaugment: str = ""  # e.g. "color,translation,cutout"; "" = off
    ema_beta: float = Field(default=0.0, ge=0, lt=1)  # EMA of netG for eval/export; 0 = off
    condition: Literal["none", "style"] = "none"  # FS2K drawing style as extra input planes
    lambda_attr: float = Field(default=0.0, ge=0)  # FS2K attribute classifier netC on fake_B
    attr_critic: bool = False  # train netC even at lambda_attr 0, for a later stage's term
    attr_size: int | None = Field(default=None, ge=16)  # netC's input side; None: image_size
    attr_balance: float = Field(default=0.0, ge=0, le=1)  # G's term: class frequency**-b

    @field_validator("diffaugment")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        parse_policy(value)
        return value

    @model_validator(mode="after")
    def _diversity_needs_noise(self) -> Pix2PixOptions:
        if self.lambda_diversity > 0 and not self.noise_levels:
            raise ValueError("lambda_diversity needs noise_levels > 0: the noise it keeps apart")
        return self

    @model_validator(mode="after")
    def _attr_size_needs_critic(self) -> Pix2PixOptions:
        if self.attr_size is not None and not (self.lambda_attr > 0 or self.attr_critic):
            raise ValueError("attr_size sizes netC, which only lambda_attr > 0 or attr_critic adds")
        return self

    @model_validator(mode="after")
    def _attr_balance_needs_term(self) -> Pix2PixOptions:
        if self.attr_balance > 0 and not self.lambda_attr > 0:
            raise ValueError("attr_balance weights the classes of lambda_attr's term: set both")
        return self


def num_downs_for(image_size: int) -> int:
    """Downsamplings for a side: 8 for 256, 7 for 128, 6 for 64, 5 for 32 (at most 8)."""
    n = 0
    while n < MAX_NUM_DOWNS and image_size % 2 ** (n + 1) == 0:
        n += 1
    if n < 5:
        raise ValueError(f"pix2pix needs an image size divisible by 32, got {image_size}")
    return n
