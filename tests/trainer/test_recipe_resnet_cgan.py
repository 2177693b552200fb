"""resnet-cgan recipe: training steps, frozen discriminator, 64-in mode, export and serving."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import Tensor, nn

from services.trainer.config import TrainConfig
from services.trainer.data.synthetic import SyntheticPairs
from services.trainer.nets import build_serving_net
from services.trainer.publishing.export import export_model
from services.trainer.recipes.base import RECIPES, Amp, ExportSpec, unwrap
from services.trainer.recipes.resnet_cgan import ResnetCGANRecipe
from shared.backends import load_backend
from shared.manifest import Manifest
from shared.registry import Registry

pytestmark = pytest.mark.filterwarnings(
    "ignore::torch.jit.TracerWarning", "ignore:.*:UserWarning:torch.*"
)

TINY = {"ngf": 4, "n_blocks": 2, "ndf": 8}
FP32 = Amp("off", "cpu")


def make_recipe(image_size: int = 32, **options: object) -> ResnetCGANRecipe:
    torch.manual_seed(0)
    config = TrainConfig(
        recipe="resnet-cgan",
        data="synthetic://8",
        image_size=image_size,
        options={**TINY, **options},
    )
    return ResnetCGANRecipe(config, torch.device("cpu"))


def pairs(size: int, n: int = 4) -> dict[str, Tensor]:
    items = [SyntheticPairs(n, size=size)[i] for i in range(n)]
    return {key: torch.stack([item[key] for item in items]) for key in ("A", "B")}


def params(net: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def changed(net: nn.Module, before: list[Tensor]) -> bool:
    return any(not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))


def publish_and_serve(spec: ExportSpec, recipe: str, tmp_path: Path, x: Tensor) -> np.ndarray:
    """Export (parity-checked), publish, open as the worker does, run x; returns the output."""
    result = export_model(spec.net, spec.input.shape(1), tmp_path / "export", check_batches=(2,))
    manifest = Manifest(
        name=spec.model_name,
        task=spec.task,
        architecture=spec.architecture,
        arch_kwargs=spec.arch_kwargs,
        recipe=recipe,
        input=spec.input,
        output=spec.output,
    )
    registry = Registry(tmp_path / "models")
    written = registry.publish(manifest, result.files)
    assert registry.current(spec.model_name) == written.version
    served = registry.manifest(spec.model_name)
    backend = load_backend(registry.version_dir(spec.model_name, written.version), served)
    try:
        return backend.run(x.numpy())
    finally:
        backend.close()


def test_registered_with_brief_defaults() -> None:
    assert RECIPES["resnet-cgan"] is ResnetCGANRecipe
    assert ResnetCGANRecipe.data_kind == "paired"
    assert ResnetCGANRecipe.default_image_size == 128
    assert (ResnetCGANRecipe.default_lr, ResnetCGANRecipe.default_beta1) == (2e-4, 0.5)
    opts = ResnetCGANRecipe.Options()
    assert opts.model_dump() == {
        "ngf": 32,
        "n_blocks": 6,
        "ndf": 64,
        "n_layers_d": 4,
        "lambda_l1": 100.0,
        "combined_input_size": None,
        "init_gain": 0.02,
    }
    with pytest.raises(ValidationError):
        make_recipe(lambda_l2=1.0)


def test_train_steps_update_both_nets_with_finite_losses() -> None:
    recipe = make_recipe()
    netG, netD = recipe.nets["netG"], recipe.nets["netD"]
    g0, d0 = params(netG), params(netD)
    batch = pairs(32)
    with torch.no_grad():
        out0 = netG(batch["A"]).clone()
    for _ in range(3):
        losses = recipe.train_step(batch, FP32)
    assert set(losses) == {"G_GAN", "G_L1", "G", "D_real", "D_fake", "D"}
    assert all(math.isfinite(v) for v in losses.values())
    assert math.isclose(losses["G"], losses["G_GAN"] + 100 * losses["G_L1"], rel_tol=1e-5)
    assert changed(netG, g0)
    assert changed(netD, d0)
    with torch.no_grad():
        assert not torch.allclose(netG(batch["A"]), out0)


def test_generator_step_goes_through_the_frozen_discriminator() -> None:
    recipe = make_recipe(lambda_l1=0.0)  # only the adversarial gradient, which crosses netD
    netG, netD = recipe.nets["netG"], recipe.nets["netD"]
    g0, d0 = params(netG), params(netD)
    batch = pairs(32)

    fake_B, losses = recipe.generator_step(batch["A"], batch["B"], FP32)

    assert not changed(netD, d0)
    assert all(p.grad is None for p in netD.parameters())  # netD received no gradient
    assert all(p.requires_grad for p in netD.parameters())  # and is trainable again
    assert changed(netG, g0)  # so the GAN gradient did reach netG through netD
    assert all(p.grad is not None for p in netG.parameters())
    assert fake_B.shape == batch["B"].shape
    assert not fake_B.requires_grad
    assert set(losses) == {"G_GAN", "G_L1", "G"}

    recipe.discriminator_step(batch["B"], fake_B, FP32)
    assert changed(netD, d0)


def test_64_in_mode_upsamples_for_the_discriminator(tmp_path: Path) -> None:
    recipe = make_recipe(image_size=64, combined_input_size=32)
    seen: dict[str, set[tuple[int, ...]]] = {"netG": set(), "netD": set()}
    for name, shapes in seen.items():
        recipe.nets[name].register_forward_pre_hook(
            lambda _m, args, shapes=shapes: shapes.add(tuple(args[0].shape))
        )
    batch = pairs(64, n=2)
    losses = recipe.train_step(batch, FP32)
    assert all(math.isfinite(v) for v in losses.values())
    assert seen == {"netG": {(2, 3, 32, 32)}, "netD": {(2, 3, 64, 64)}}

    recipe.nets["netG"].eval()
    out = recipe.evaluate_batch(batch)
    assert out.fake.shape == (2, 3, 64, 64)
    assert out.real is batch["B"]
    assert set(out.grid) == {"real_A", "fake_B", "real_B"}
    # nearest upsampling: every 2x2 block of the 64 px output is one 32 px pixel
    assert torch.equal(out.fake[..., ::2, ::2], out.fake[..., 1::2, 1::2])

    (spec,) = recipe.exports()  # served: the 32 px generator alone
    assert spec.input.shape(1) == spec.output.shape(1) == (1, 3, 32, 32)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    got = publish_and_serve(spec, recipe.name, tmp_path, x)
    with torch.no_grad():
        expected = unwrap(recipe.nets["netG"])(x).clamp(-1, 1)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)


@pytest.mark.parametrize("size", [24, 48])
def test_rejects_input_sizes_that_do_not_divide_the_image(size: int) -> None:
    with pytest.raises(ValueError, match="combined_input_size"):
        make_recipe(image_size=64, combined_input_size=size)


def test_exports_publish_and_serve_the_trained_generator(tmp_path: Path) -> None:
    recipe = make_recipe()
    recipe.train_step(pairs(32), FP32)
    (spec,) = recipe.exports()
    assert (spec.model_name, spec.task, spec.architecture) == (
        "sketch2photo-resnet-cgan",
        "sketch2photo",
        "resnet-cgan",
    )
    # the manifest's arch_kwargs rebuild exactly the exported net
    build_serving_net(spec.architecture, **spec.arch_kwargs).load_state_dict(spec.net.state_dict())

    x = torch.rand(3, 3, 32, 32) * 2 - 1
    got = publish_and_serve(spec, recipe.name, tmp_path, x)
    netG = unwrap(recipe.nets["netG"]).eval()
    with torch.no_grad():
        expected = netG(x).clamp(-1, 1)
    assert got.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)


def test_model_name_follows_direction_and_override() -> None:
    torch.manual_seed(0)
    config = TrainConfig(
        recipe="resnet-cgan", data="x", image_size=32, direction="photo2sketch", options=TINY
    )
    (spec,) = ResnetCGANRecipe(config, torch.device("cpu")).exports()
    assert (spec.model_name, spec.task) == ("photo2sketch-resnet-cgan", "photo2sketch")
    config = config.model_copy(update={"model_name": "faces-cgan"})
    (spec,) = ResnetCGANRecipe(config, torch.device("cpu")).exports()
    assert spec.model_name == "faces-cgan"
