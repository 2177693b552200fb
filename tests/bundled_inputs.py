"""The fixed requests every bundled model is tested with: one table for the regression test of
its weights (tests/shared/test_bundled_models.py) and the stack test that calls each one
(tests/integration/test_launcher.py). Inputs come from the model's dataset (``tests/data``);
a generate model gets seeded latents (``shared.latents``), per class where it has classes."""

from __future__ import annotations

from pathlib import Path

from shared.manifest import Manifest

DATA = Path(__file__).parent / "data"
# (manifest.dataset, manifest.task) -> input images under tests/data
TRANSLATE_INPUTS = {
    ("fs2k", "sketch2photo"): ["fs2k/sketch1-sketch0001.jpg", "fs2k/sketch3-sketch0154.jpg"],
    ("fs2k", "photo2sketch"): ["fs2k/photo1-image0001.jpg", "fs2k/photo3-image0154.jpg"],
    ("edges2shoes_100", "sketch2photo"): ["edges2shoes/106_AB-edges.png"],
    ("facades", "sketch2photo"): ["facades/1-labels.png"],
}
GENERATE_SEEDS = (0, 1)


def translate_inputs(manifest: Manifest) -> list[Path]:
    """The images to translate with ``manifest``'s model (KeyError: add its dataset above)."""
    return [DATA / rel for rel in TRANSLATE_INPUTS[(str(manifest.dataset), manifest.task)]]


def generate_requests(manifest: Manifest) -> list[tuple[int, str | None]]:
    """(seed, class_name) pairs to generate with: each seed, for each class if it has any."""
    classes: list[str | None] = list(manifest.input.class_names) or [None]
    return [(seed, c) for seed in GENERATE_SEEDS for c in classes]
