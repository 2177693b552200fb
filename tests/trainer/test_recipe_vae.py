"""vae recipe: the ELBO, training on a tiny batch, evaluation grid, a served generate model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import Tensor

from services.trainer.config import TrainConfig
from services.trainer.data.synthetic import SyntheticPairs
from services.trainer.publishing.export import export_model
from services.trainer.recipes.base import RECIPES, Amp, unwrap
from services.trainer.recipes.vae import VAERecipe, kl_divergence
from shared.backends import load_backend
from shared.manifest import Manifest
from shared.registry import Registry

pytestmark = pytest.mark.filterwarnings(
    "ignore::torch.jit.TracerWarning", "ignore:.*:UserWarning:torch.*"
)

TINY = {"z_dim": 8, "nf": 8}
FP32 = Amp("off", "cpu")


def make_recipe(image_size: int = 32, **options: object) -> VAERecipe:
    torch.manual_seed(0)
    config = TrainConfig(recipe="vae", data="x", image_size=image_size, options={**TINY, **options})
    return VAERecipe(config, torch.device("cpu"))


def images(n: int = 8) -> dict[str, Tensor]:
    data = SyntheticPairs(n, size=32)
    return {"B": torch.stack([data[i]["B"] for i in range(n)]), "label": torch.zeros(n).long()}


def test_registered_with_documented_defaults() -> None:
    assert RECIPES["vae"] is VAERecipe
    assert (VAERecipe.data_kind, VAERecipe.default_image_size) == ("images", 32)
    assert (VAERecipe.default_lr, VAERecipe.default_beta1) == (1e-3, 0.9)  # Adam, not GAN betas
    assert VAERecipe.default_publish_metric == "val_recon"
    assert VAERecipe.Options().model_dump() == {"z_dim": 128, "nf": 32, "beta": 1.0}
    with pytest.raises(ValidationError):
        make_recipe(gamma=2.0)
    with pytest.raises(ValueError, match="32x32"):
        make_recipe(image_size=64)


def test_kl_divergence_matches_the_closed_form() -> None:
    zeros = torch.zeros(2, 4)
    assert torch.equal(kl_divergence(zeros, zeros), torch.zeros(2))  # q = prior
    mu = torch.ones(2, 4)  # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension
    assert torch.allclose(kl_divergence(mu, zeros), torch.full((2,), 2.0))
    logvar = torch.full((1, 3), math.log(4.0))  # KL(N(0, 4) || N(0, 1)) = (4 - 1 - ln 4) / 2
    assert kl_divergence(torch.zeros(1, 3), logvar).item() == pytest.approx(
        3 * (4 - 1 - math.log(4)) / 2
    )


def test_negative_elbo_decreases_on_a_fixed_batch() -> None:
    recipe = make_recipe(beta=0.5)
    netG = recipe.nets["netG"]
    before = [p.detach().clone() for p in netG.parameters()]
    batch = images()
    history = [recipe.train_step(batch, FP32) for _ in range(30)]
    assert all(math.isfinite(v) for step in history for v in step.values())
    first, last = history[0], history[-1]
    assert last["loss"] == pytest.approx(last["recon"] + 0.5 * last["kl"], rel=1e-5)
    assert set(first) == {"recon", "kl", "loss"}
    start = np.mean([h["loss"] for h in history[:3]])
    end = np.mean([h["loss"] for h in history[-3:]])
    assert end < 0.7 * start
    assert any(not torch.equal(p, b) for p, b in zip(netG.parameters(), before, strict=True))


def test_evaluation_reconstructs_and_samples_the_prior() -> None:
    recipe = make_recipe()
    batch = images(4)
    recipe.train_step(batch, FP32)
    recipe.nets["netG"].eval()
    out = recipe.evaluate_batch(batch)
    assert out.real is batch["B"]
    assert out.fake.shape == (4, 3, 32, 32)
    assert set(out.grid) == {"real", "reconstruction", "prior sample"}
    assert out.grid["prior sample"].shape == (4, 3, 32, 32)
    assert float(out.fake.abs().max()) <= 1.0
    # eval mode decodes the posterior mean: the same images every time
    again = recipe.evaluate_batch(batch)
    assert torch.equal(out.fake, again.fake)
    assert torch.equal(out.grid["prior sample"], again.grid["prior sample"])
    assert not torch.equal(out.grid["prior sample"][0], out.grid["prior sample"][1])


def test_exports_a_served_generate_model(tmp_path: Path) -> None:
    recipe = make_recipe()
    recipe.train_step(images(4), FP32)
    (spec,) = recipe.exports()
    assert (spec.model_name, spec.task, spec.architecture) == ("catdog-vae", "generate", "vae")
    assert spec.input.kind == "noise"
    assert spec.input.shape(1) == (1, 8)
    assert spec.output.shape(1) == (1, 3, 32, 32)

    result = export_model(spec.net, spec.input.shape(1), tmp_path / "export", check_batches=(2,))
    manifest = Manifest(
        name=spec.model_name,
        task=spec.task,
        architecture=spec.architecture,
        arch_kwargs=spec.arch_kwargs,
        recipe=recipe.name,
        input=spec.input,
        output=spec.output,
    )
    registry = Registry(tmp_path / "models")
    written = registry.publish(manifest, result.files)
    backend = load_backend(registry.version_dir(spec.model_name, written.version), written)
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    try:
        served = backend.run(z.numpy())
    finally:
        backend.close()
    netG = unwrap(recipe.nets["netG"]).eval()
    with torch.no_grad():
        expected = netG.decode(z).clamp(-1, 1)  # type: ignore[operator]
    assert served.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(served, expected.numpy(), atol=1e-4)
