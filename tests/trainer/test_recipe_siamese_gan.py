"""siamese-gan recipe: class detection, training steps, the Siamese discriminator's direction,
class conditioning, export + serving of a seeded generator."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from torch import Tensor, nn

from services.trainer.config import TrainConfig
from services.trainer.nets import build_serving_net
from services.trainer.publishing.export import export_model
from services.trainer.recipes.base import RECIPES, Amp, unwrap
from services.trainer.recipes.siamese_gan import SiameseGANRecipe, same_class_partner
from shared.backends import load_backend
from shared.manifest import Manifest
from shared.registry import Registry

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")

TINY = {"z_dim": 16, "ngf": 8, "ndf": 8, "embed_dim": 16}
FP32 = Amp("off", "cpu")


@pytest.fixture
def catdog(tmp_path: Path) -> Path:
    """Class folders train/{cat,dog}/ with one tiny image each."""
    root = tmp_path / "catdog"
    for c, colour in (("cat", (200, 120, 40)), ("dog", (40, 80, 160))):
        (root / "train" / c).mkdir(parents=True)
        Image.new("RGB", (32, 32), colour).save(root / "train" / c / "0.png")
    return root


def make_recipe(data: str = "synthetic://8", **options: object) -> SiameseGANRecipe:
    torch.manual_seed(0)
    config = TrainConfig(recipe="siamese-gan", data=data, options={**TINY, **options})
    return SiameseGANRecipe(config, torch.device("cpu"))


def images(n: int = 8, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=gen) * 2 - 1


def params(net: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def changed(net: nn.Module, before: list[Tensor]) -> bool:
    return any(not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))


def test_registered_with_dcgan_defaults() -> None:
    assert RECIPES["siamese-gan"] is SiameseGANRecipe
    assert SiameseGANRecipe.data_kind == "images"
    assert SiameseGANRecipe.default_image_size == 32
    assert SiameseGANRecipe.default_batch_size == 64
    assert (SiameseGANRecipe.default_lr, SiameseGANRecipe.default_beta1) == (2e-4, 0.5)
    assert SiameseGANRecipe.Options().model_dump() == {
        "z_dim": 100,
        "ngf": 64,
        "ndf": 64,
        "embed_dim": 128,
        "norm_D": "batch",
        "spectral_norm": False,
        "lambda_fm": 0.0,  # the brief's GAN unless asked for
        "conditional": None,
        "class_names": None,
    }
    with pytest.raises(ValidationError):
        make_recipe(margin=1.0)
    with pytest.raises(ValueError, match="32x32"):
        SiameseGANRecipe(
            TrainConfig(recipe="siamese-gan", data="x", image_size=64, options=TINY),
            torch.device("cpu"),
        )


def test_class_folders_make_it_conditional_on_their_names(catdog: Path) -> None:
    recipe = make_recipe(str(catdog))
    assert recipe.conditional
    assert recipe.class_names == ["cat", "dog"]
    assert unwrap(recipe.nets["netG"]).num_classes == 2
    plain = make_recipe()  # synthetic pairs: no classes
    assert not plain.conditional
    assert plain.class_names == []
    off = make_recipe(str(catdog), conditional=False)
    assert not off.conditional
    assert unwrap(off.nets["netG"]).num_classes == 0
    named = make_recipe(conditional=True, class_names=["kitten", "puppy"])
    assert named.class_names == ["kitten", "puppy"]
    with pytest.raises(ValueError, match="two or more classes"):
        make_recipe(conditional=True)


def test_real_pairs_are_matched_within_a_class() -> None:
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    partner = same_class_partner(labels)
    assert torch.equal(labels[partner], labels)
    assert not torch.equal(partner, torch.arange(6))
    assert sorted(partner.tolist()) == list(range(6))  # every real is used once as partner
    assert same_class_partner(torch.tensor([0, 1])).tolist() == [0, 1]  # alone: itself


def test_train_steps_update_both_nets_with_finite_losses(catdog: Path) -> None:
    recipe = make_recipe(str(catdog))
    netG, netD = recipe.nets["netG"], recipe.nets["netD"]
    g0, d0 = params(netG), params(netD)
    batch = {"B": images(), "label": torch.tensor([0, 1] * 4)}
    for _ in range(3):
        losses = recipe.train_step(batch, FP32)
    assert all(math.isfinite(v) for v in losses.values())
    assert math.isclose(
        losses["loss_D"], losses["loss_D_real"] + losses["loss_D_fake"], rel_tol=1e-5
    )
    assert changed(netG, g0)
    assert changed(netD, d0)
    with pytest.raises(ValueError, match="label"):
        recipe.train_step({"B": images()}, FP32)


def test_feature_matching_and_spectral_norm_train_and_pull_fakes_toward_real_embeddings(
    catdog: Path,
) -> None:
    recipe = make_recipe(str(catdog), norm_D="none", spectral_norm=True, lambda_fm=1.0)
    netD = recipe.nets["netD"]
    assert any("parametrizations" in name for name, _ in netD.named_parameters())
    batch = {"B": images(), "label": torch.tensor([0, 1] * 4)}
    first = recipe.train_step(batch, FP32)
    for _ in range(5):
        losses = recipe.train_step(batch, FP32)
    assert all(math.isfinite(v) for v in losses.values())
    assert first["loss_G_fm"] > 0
    assert losses["loss_G"] > losses["loss_G_fm"]  # the GAN term is still there


def test_discriminator_learns_to_tell_real_pairs_from_fake_pairs() -> None:
    recipe = make_recipe()
    batch = {"B": torch.full((8, 3, 32, 32), 0.5)}  # trivially separable: constant reals
    gaps = []
    for _ in range(10):
        losses = recipe.train_step(batch, FP32)
        gaps.append(losses["D_real_pair"] - losses["D_fake_pair"])
    assert gaps[-1] > gaps[0] + 0.01
    assert gaps[-1] > 0
    netD = recipe.nets["netD"].eval()
    with torch.no_grad():
        fake = recipe.nets["netG"].eval()(torch.randn(8, 16))
        real = batch["B"]
        assert (netD(real, real) > netD(real, fake)).all()


def test_class_changes_the_generated_image(catdog: Path) -> None:
    recipe = make_recipe(str(catdog))
    netG = recipe.nets["netG"].eval()
    z = torch.randn(4, 16)
    with torch.no_grad():
        cats = netG(z, torch.zeros(4, dtype=torch.long))
        dogs = netG(z, torch.ones(4, dtype=torch.long))
        assert not torch.allclose(cats, dogs)
        torch.testing.assert_close(netG(z, torch.zeros(4, dtype=torch.long)), cats)


def test_evaluate_batch_generates_one_image_per_real(catdog: Path) -> None:
    recipe = make_recipe(str(catdog))
    recipe.nets["netG"].eval()
    out = recipe.evaluate_batch({"B": images(5), "label": torch.tensor([0, 1, 0, 1, 0])})
    assert out.fake.shape == (5, 3, 32, 32)
    assert out.real is None
    assert set(out.grid) == {"real", "fake"}
    state = recipe.extra_state()  # the evaluation noise resumes where it was
    again = recipe.evaluate_batch({"B": images(5), "label": torch.tensor([0, 1, 0, 1, 0])})
    recipe.load_extra_state(state)
    torch.testing.assert_close(
        recipe.evaluate_batch({"B": images(5), "label": torch.tensor([0, 1, 0, 1, 0])}).fake,
        again.fake,
    )


def test_exports_a_seeded_class_conditional_generator(catdog: Path, tmp_path: Path) -> None:
    recipe = make_recipe(str(catdog))
    recipe.train_step({"B": images(), "label": torch.tensor([0, 1] * 4)}, FP32)
    (spec,) = recipe.exports()
    assert (spec.model_name, spec.task, spec.architecture) == (
        "catdog-siamese-gan",
        "generate",
        "dcgan",
    )
    assert (spec.input.kind, spec.input.z_dim, spec.input.num_classes) == ("noise", 16, 2)
    assert spec.input.class_names == ["cat", "dog"]
    assert spec.output.shape(1) == (1, 3, 32, 32)
    build_serving_net(spec.architecture, **spec.arch_kwargs).load_state_dict(spec.net.state_dict())

    result = export_model(spec.net, spec.input.shape(1), tmp_path / "export", check_batches=(2,))
    manifest = Manifest(
        name=spec.model_name,
        task=spec.task,
        architecture=spec.architecture,
        arch_kwargs=spec.arch_kwargs,
        recipe="siamese-gan",
        input=spec.input,
        output=spec.output,
    )
    registry = Registry(tmp_path / "models")
    written = registry.publish(manifest, result.files)
    served = registry.manifest(spec.model_name)
    assert served.input.class_names == ["cat", "dog"]
    backend = load_backend(registry.version_dir(spec.model_name, written.version), served)
    try:
        # as the worker builds it: z from the request's seed, one-hot class appended
        z = np.random.default_rng(7).standard_normal((3, 16)).astype(np.float32)
        cat = np.concatenate([z, np.tile([[1.0, 0.0]], (3, 1))], 1).astype(np.float32)
        dog = np.concatenate([z, np.tile([[0.0, 1.0]], (3, 1))], 1).astype(np.float32)
        out_cat, out_dog = backend.run(cat), backend.run(dog)
        assert out_cat.shape == (3, 3, 32, 32)
        np.testing.assert_array_equal(backend.run(cat), out_cat)  # same seed, same images
        assert not np.allclose(out_cat, out_dog)
    finally:
        backend.close()
    netG = unwrap(recipe.nets["netG"]).eval()
    with torch.no_grad():
        expected = netG(torch.from_numpy(z), torch.zeros(3, dtype=torch.long)).clamp(-1, 1)
    np.testing.assert_allclose(out_cat, expected.numpy(), atol=1e-4)


def test_evaluate_batch_without_classes() -> None:
    recipe = make_recipe()  # synthetic pairs: unconditional
    recipe.nets["netG"].eval()
    out = recipe.evaluate_batch({"B": images(3)})
    assert out.fake.shape == (3, 3, 32, 32)
    assert torch.isfinite(out.fake).all()
