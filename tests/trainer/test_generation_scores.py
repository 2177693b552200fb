"""score-generators: FID of published generate models between a floor (noise) and a ceiling
(real training images), with the worker's own latents (shared.latents)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from services.trainer.evaluation.fid import FIDScorer
from services.trainer.evaluation.generation import NOISE, TRAIN, markdown_table, score_generators
from shared.latents import generate_latents
from shared.manifest import TensorSpec
from shared.registry import Registry
from tests.integration.models import publish_dcgan

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


def smooth_images(root: Path, split: str, per_class: int) -> None:
    """Blurred colour fields, reddish cats and bluish dogs (32x32 JPEGs)."""
    rng = np.random.default_rng(len(split))
    for c, tint in (("cat", (60, 0, -40)), ("dog", (-40, 0, 60))):
        (root / split / c).mkdir(parents=True)
        for i in range(per_class):
            base = rng.integers(60, 190, (4, 4, 3)).astype(np.int16) + np.array(tint)
            img = Image.fromarray(base.clip(0, 255).astype(np.uint8)).resize((32, 32))
            img.save(root / split / c / f"{i}.jpg")


class PooledConv(nn.Module):
    """A fixed random conv and global statistics: features that tell noise from smooth images."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # (N, 8, 30, 30)
        return torch.cat([y.mean((2, 3)), y.std((2, 3))], 1)  # (N, 16)


def test_rows_are_the_floor_each_model_and_the_ceiling_with_per_class_fid(
    tmp_path: Path,
) -> None:
    data = tmp_path / "catdog"
    smooth_images(data, "train", 40)
    smooth_images(data, "test", 30)
    registry = Registry(tmp_path / "models")
    publish_dcgan(registry, "gan", gain=0.2)

    results = score_generators(
        data, ["gan"], n=40, registry=registry, scorer=FIDScorer(extractor=PooledConv()),
        grid=tmp_path / "grid.jpg",
    )  # fmt: skip

    assert list(results) == [NOISE, "gan", TRAIN]
    assert {k for k in results["gan"]} == {"n", "fid", "fid_cat", "fid_dog"}  # 20 of each
    assert "fid_cat" not in results[NOISE]  # noise has no class
    assert results[TRAIN]["fid"] < results[NOISE]["fid"]  # real images beat random pixels
    assert all(m["n"] == 40 for m in results.values())
    assert Image.open(tmp_path / "grid.jpg").size[1] > 3 * 64  # three rows of 64 px tiles
    table = markdown_table(results)
    assert table.splitlines()[0] == "| row | n | fid | fid_cat | fid_dog |"


def test_the_test_images_statistics_are_kept_between_runs(tmp_path: Path) -> None:
    data = tmp_path / "catdog"
    smooth_images(data, "train", 20)
    smooth_images(data, "test", 20)
    registry = Registry(tmp_path / "models")
    publish_dcgan(registry, "gan", gain=0.2)
    cache_dir = tmp_path / "cache"

    def score() -> dict[str, dict[str, float]]:
        scorer = FIDScorer(extractor=PooledConv())
        return score_generators(
            data, ["gan"], n=20, registry=registry, scorer=scorer, cache_dir=cache_dir
        )

    first = score()
    [cache] = cache_dir.glob("*.npz")
    for image in (data / "test").rglob("*.jpg"):  # other test images: only a cache keeps scores
        Image.effect_noise((32, 32), 80).convert("RGB").save(image)
    assert score() == first
    cache.unlink()
    rescored = score()["gan"]["fid"]
    assert np.isfinite(rescored)
    assert rescored != first["gan"]["fid"]


def test_latents_are_seeded_and_carry_the_asked_class() -> None:
    spec = TensorSpec(kind="noise", z_dim=4, num_classes=2, class_names=["cat", "dog"])

    a = generate_latents(spec, 3, seed=7, class_name="dog")

    assert a.shape == (3, 6)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, generate_latents(spec, 3, seed=7, class_name="dog"))
    assert not np.array_equal(a[:, :4], generate_latents(spec, 3, seed=8)[:, :4])
    np.testing.assert_array_equal(a[:, 4:], [[0, 1]] * 3)
    drawn = generate_latents(spec, 64, seed=1)[:, 4:]
    assert set(drawn.argmax(1)) == {0, 1}
    assert (drawn.sum(1) == 1).all()
