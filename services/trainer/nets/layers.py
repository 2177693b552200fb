"""Building blocks shared by every architecture: normalisation factory and weight init.

The init follows pix2pix/CycleGAN/DCGAN: conv and linear weights ~ N(0, gain), biases 0,
batch-norm scales ~ N(1, gain), shifts 0.
"""

from __future__ import annotations

from typing import Literal

from torch import nn
from torch.nn.utils import parametrize

NormName = Literal["batch", "instance", "none"]


def norm_layer(norm: str, num_features: int) -> nn.Module:
    """Return the normalisation layer called `norm` for `num_features` channels.

    "batch": BatchNorm2d (affine, running statistics; eval mode uses them).
    "instance": InstanceNorm2d without affine parameters or running statistics, as in
    pytorch-CycleGAN-and-pix2pix (statistics are taken per image, in train and eval alike).
    "none": identity.
    """
    if norm == "batch":
        return nn.BatchNorm2d(num_features)
    if norm == "instance":
        return nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}: expected 'batch', 'instance' or 'none'")


def uses_bias(norm: str) -> bool:
    """Convolutions before a batch norm need no bias (the norm's shift replaces it)."""
    return norm != "batch"


def init_weights(
    net: nn.Module, gain: float = 0.02, scheme: Literal["normal", "glorot"] = "normal"
) -> nn.Module:
    """Initialise `net` in place; returns it. Convolutions and linear layers get zero biases and
    "normal": N(0, gain) weights, norm layers N(1, gain) scales (the pix2pix/DCGAN scheme);
    "glorot": Glorot-uniform weights (TensorFlow's default), norm layers left as PyTorch made
    them. Glorot keeps the signal's scale through deep stacks without normalisation, where
    N(0, 0.02) shrinks it (SketchyGAN's MRU discriminator)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            # a spectral-normed layer's own weight is computed; initialise the raw one
            weight = m.weight
            if parametrize.is_parametrized(m, "weight"):
                weight = getattr(m.parametrizations, "weight").original  # noqa: B009
            if scheme == "glorot":
                nn.init.xavier_uniform_(weight)
            else:
                nn.init.normal_(weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif (
            scheme == "normal"
            and isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d)
            and m.weight is not None
        ):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net
