"""pix2pixHD's feature-matching loss: G matches D's hidden features of real pairs.

feats_fake = feature_lists(netD, fake_pair)   # per scale, per layer (last: logits)
loss_G_FM = lambda_fm * feature_matching(feats_fake, feature_lists(netD, real_pair))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from services.trainer.nets import MultiscaleDiscriminator, NLayerDiscriminator
from services.trainer.recipes.base import unwrap


def feature_lists(netD: nn.Module, x: Tensor) -> list[list[Tensor]]:
    """Per scale, every layer's features (last: logits) of a single or multi-scale PatchGAN."""
    plain = unwrap(netD)
    if isinstance(plain, MultiscaleDiscriminator):
        return plain.features(x)
    assert isinstance(plain, NLayerDiscriminator)
    return [plain.features(x)]


def feature_matching(fake: list[list[Tensor]], real: list[list[Tensor]]) -> Tensor:
    """pix2pixHD's loss: mean over scales of the summed L1 between D's hidden features."""
    terms = [
        F.l1_loss(f.float(), r.float()) for fs, rs in zip(fake, real, strict=True)
        for f, r in zip(fs[:-1], rs[:-1], strict=True)
    ]  # fmt: skip
    return torch.stack(terms).sum() / len(fake)
