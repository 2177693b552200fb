"""The torch-free list of recipe names (API, command line) is the trainer's registry."""

from __future__ import annotations

from services.trainer.recipes import RECIPES
from shared.trainings import RECIPE_NAMES


def test_recipe_names_match_the_registered_recipes() -> None:
    assert set(RECIPE_NAMES) == set(RECIPES)
