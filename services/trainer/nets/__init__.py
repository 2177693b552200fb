"""Generator and discriminator architectures, and the registry that rebuilds served nets.

`build_serving_net(architecture, **kwargs)` builds the generator named in a manifest with
the constructor arguments recorded there, wrapped for serving (one tensor in, one out):

    "unet"        TranslateWrapper(UNetGenerator(**kwargs))
    "resnet"      TranslateWrapper(ResnetGenerator(**kwargs))
    "resnet-cgan" TranslateWrapper(ResnetCGANGenerator(**kwargs))
    "sketchy"     SketchyTranslateWrapper(SketchyGenerator(**kwargs)): the noise is a plane
    "dcgan"       GenerateWrapper(DCGANGenerator(**kwargs), "dcgan")
    "vae"         GenerateWrapper(ConvVAE(**kwargs), "vae")

The wrapper's state_dict is the generator's with keys prefixed "netG.".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from services.trainer.nets.dcgan import DCGANGenerator, SiameseDiscriminator
from services.trainer.nets.layers import init_weights, norm_layer
from services.trainer.nets.patchgan import MultiscaleDiscriminator, NLayerDiscriminator
from services.trainer.nets.resnet_cgan import (
    CombinedModel,
    ResnetCGANDiscriminator,
    ResnetCGANGenerator,
    frozen,
)
from services.trainer.nets.resnet_generator import ResnetGenerator
from services.trainer.nets.serving import GenerateWrapper, SketchyTranslateWrapper, TranslateWrapper
from services.trainer.nets.sketchygan import MRU, SketchyDiscriminator, SketchyGenerator
from services.trainer.nets.unet import UNetGenerator
from services.trainer.nets.vae import ConvVAE

__all__ = [
    "ARCHITECTURES",
    "MRU",
    "CombinedModel",
    "ConvVAE",
    "DCGANGenerator",
    "GenerateWrapper",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "ResnetCGANDiscriminator",
    "ResnetCGANGenerator",
    "ResnetGenerator",
    "SiameseDiscriminator",
    "SketchyDiscriminator",
    "SketchyGenerator",
    "SketchyTranslateWrapper",
    "TranslateWrapper",
    "UNetGenerator",
    "build_serving_net",
    "frozen",
    "init_weights",
    "norm_layer",
]


def _unet(**kwargs: Any) -> nn.Module:
    return TranslateWrapper(UNetGenerator(**kwargs))


def _resnet(**kwargs: Any) -> nn.Module:
    return TranslateWrapper(ResnetGenerator(**kwargs))


def _resnet_cgan(**kwargs: Any) -> nn.Module:
    return TranslateWrapper(ResnetCGANGenerator(**kwargs))


def _sketchy(**kwargs: Any) -> nn.Module:
    return SketchyTranslateWrapper(SketchyGenerator(**kwargs))


def _dcgan(**kwargs: Any) -> nn.Module:
    return GenerateWrapper(DCGANGenerator(**kwargs), "dcgan")


def _vae(**kwargs: Any) -> nn.Module:
    return GenerateWrapper(ConvVAE(**kwargs), "vae")


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "unet": _unet,
    "resnet": _resnet,
    "resnet-cgan": _resnet_cgan,
    "sketchy": _sketchy,
    "dcgan": _dcgan,
    "vae": _vae,
}


def build_serving_net(architecture: str, **kwargs: Any) -> nn.Module:
    """The serving-wrapped generator for `architecture`, built with `kwargs` (untrained)."""
    try:
        factory = ARCHITECTURES[architecture]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {architecture!r}; known: {known}") from None
    return factory(**kwargs)
