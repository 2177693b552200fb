"""Training recipes; importing this package registers every one in ``base.RECIPES``."""

from __future__ import annotations

from services.trainer.recipes import (  # noqa: F401  (each module registers its recipe)
    cyclegan,
    pix2pix,
    resnet_cgan,
    siamese_gan,
    sketchygan,
    vae,
)
from services.trainer.recipes.base import RECIPES, Recipe

__all__ = ["RECIPES", "get_recipe"]


def get_recipe(name: str) -> type[Recipe]:
    """The recipe class registered as ``name``; ValueError naming the known ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
