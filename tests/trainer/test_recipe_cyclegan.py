"""cyclegan recipe: losses as in Zhu et al., the image pool and its resume, two served models."""

from __future__ import annotations

import copy
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from services.trainer.config import TrainConfig
from services.trainer.data.synthetic import SyntheticPairs
from services.trainer.publishing.export import export_model
from services.trainer.recipes.base import RECIPES, Amp, ExportSpec, unwrap
from services.trainer.recipes.cyclegan import CycleGANRecipe
from services.trainer.recipes.image_pool import ImagePool
from shared.backends import load_backend
from shared.manifest import Manifest
from shared.registry import Registry

pytestmark = pytest.mark.filterwarnings(
    "ignore::torch.jit.TracerWarning", "ignore:.*:UserWarning:torch.*"
)

TINY = {"ngf": 4, "ndf": 4, "n_blocks": 1}
FP32 = Amp("off", "cpu")
NETS = ("netG_A2B", "netG_B2A", "netD_A", "netD_B")


def make_recipe(image_size: int = 32, **fields: Any) -> CycleGANRecipe:
    torch.manual_seed(0)
    options = {**TINY, **fields.pop("options", {})}
    config = TrainConfig(
        recipe="cyclegan", data="synthetic://8", image_size=image_size, options=options, **fields
    )
    return CycleGANRecipe(config, torch.device("cpu"))


def unpaired(size: int = 32, n: int = 2, offset: int = 0) -> dict[str, Tensor]:
    """Sketches A and photos B from different synthetic scenes (no pairs)."""
    data = SyntheticPairs(2 * n + offset + 1, size=size)
    A = torch.stack([data[offset + i]["A"] for i in range(n)])
    B = torch.stack([data[offset + n + i]["B"] for i in range(n)])
    return {"A": A, "B": B}


def params(net: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def changed(net: nn.Module, before: list[Tensor]) -> bool:
    return any(not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))


def l1(x: Tensor, y: Tensor) -> float:
    return float((x - y).abs().mean())


def test_registered_with_paper_defaults() -> None:
    assert RECIPES["cyclegan"] is CycleGANRecipe
    assert CycleGANRecipe.data_kind == "unpaired"
    assert (CycleGANRecipe.default_batch_size, CycleGANRecipe.default_image_size) == (1, 256)
    assert (CycleGANRecipe.default_epochs, CycleGANRecipe.default_epochs_decay) == (100, 100)
    opts = CycleGANRecipe.Options()
    assert (opts.gan_mode, opts.lambda_cycle, opts.lambda_identity, opts.pool_size) == (
        "lsgan",
        10.0,
        0.5,
        50,
    )
    assert (opts.ngf, opts.ndf, opts.n_layers_d, opts.norm) == (64, 64, 3, "instance")
    # 9 residual blocks at 256 px, 6 at 128 px, unless set
    auto = {"n_blocks": None}
    assert make_recipe(256, options=auto).arch_kwargs["n_blocks"] == 9
    assert make_recipe(128, options=auto).arch_kwargs["n_blocks"] == 6
    assert make_recipe(128, options={"n_blocks": 2}).arch_kwargs["n_blocks"] == 2


def test_train_steps_update_all_four_nets_with_finite_losses() -> None:
    recipe = make_recipe()
    before = {name: params(recipe.nets[name]) for name in NETS}
    for i in range(3):
        losses = recipe.train_step(unpaired(offset=i), FP32)
    assert set(losses) == {
        "G_A2B", "G_B2A", "cycle_A", "cycle_B", "idt_A2B", "idt_B2A", "G", "D_A", "D_B"
    }  # fmt: skip
    assert all(math.isfinite(v) for v in losses.values())
    assert all(changed(recipe.nets[name], before[name]) for name in NETS)
    assert [unwrap(net) for net in recipe.generators()] == [
        recipe.nets["netG_A2B"],
        recipe.nets["netG_B2A"],
    ]


def test_cycle_and_identity_losses_are_the_papers() -> None:
    recipe = make_recipe()
    batch = unpaired()
    real_A, real_B = batch["A"], batch["B"]
    G_A2B, G_B2A = (copy.deepcopy(recipe.nets[n]) for n in ("netG_A2B", "netG_B2A"))
    with torch.no_grad():  # the generators before the step
        expected = {
            "cycle_A": 10 * l1(G_B2A(G_A2B(real_A)), real_A),
            "cycle_B": 10 * l1(G_A2B(G_B2A(real_B)), real_B),
            "idt_A2B": 5 * l1(G_A2B(real_B), real_B),  # lambda_cycle * lambda_identity
            "idt_B2A": 5 * l1(G_B2A(real_A), real_A),
        }
    losses = recipe.train_step(batch, FP32)
    for name, value in expected.items():
        assert losses[name] == pytest.approx(value, rel=1e-5), name
    assert losses["G"] == pytest.approx(
        sum(losses[k] for k in ("G_A2B", "G_B2A", *expected)), rel=1e-5
    )

    no_idt = make_recipe(options={"lambda_identity": 0.0}).train_step(batch, FP32)
    assert "idt_A2B" not in no_idt
    assert "idt_B2A" not in no_idt


def test_generator_step_leaves_discriminators_untouched() -> None:
    recipe = make_recipe()
    before = {name: params(recipe.nets[name]) for name in NETS}
    batch = unpaired()
    fake_A, fake_B, _ = recipe.generator_step(batch["A"], batch["B"], FP32)
    for name in ("netD_A", "netD_B"):
        net = recipe.nets[name]
        assert not changed(net, before[name])
        assert all(p.grad is None and p.requires_grad for p in net.parameters())
    assert changed(recipe.nets["netG_A2B"], before["netG_A2B"])
    assert changed(recipe.nets["netG_B2A"], before["netG_B2A"])
    assert fake_A.shape == fake_B.shape == batch["A"].shape


def constant_images(values: list[float]) -> Tensor:
    return torch.stack([torch.full((3, 4, 4), v) for v in values])  # (N, 3, 4, 4)


def test_image_pool_returns_history_after_filling() -> None:
    pool = ImagePool(3, seed=0)
    first = constant_images([1, 2, 3])
    assert torch.equal(pool.query(first), first)  # filling: everything passes through
    assert len(pool) == 3

    returned = [float(pool.query(constant_images([10 + i]))[0, 0, 0, 0]) for i in range(40)]
    from_history = [v for i, v in enumerate(returned) if v != 10 + i]
    assert 8 <= len(from_history) <= 32  # a fair coin per image
    # a stored image is an earlier one, never a later one
    assert all(v in {1, 2, 3} or 10 <= v <= 10 + i for i, v in enumerate(returned))
    assert len(pool) == 3

    again = ImagePool(3, seed=0)  # seeded: the same draws
    again.query(first)
    assert [float(again.query(constant_images([10 + i]))[0, 0, 0, 0]) for i in range(40)] == (
        returned
    )
    assert torch.equal(ImagePool(0).query(first), first)  # pool_size 0: disabled


def test_extra_state_round_trip_restores_the_pools() -> None:
    trained = make_recipe(options={"pool_size": 2})
    for i in range(3):  # 2 images per step: pools full, then swapping
        trained.train_step(unpaired(offset=i), FP32)
    buffer = io.BytesIO()
    torch.save(trained.extra_state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    resumed = make_recipe(options={"pool_size": 2})
    assert len(resumed.fake_A_pool) == 0
    resumed.load_extra_state(state)
    for pool in ("fake_A_pool", "fake_B_pool"):
        src, dst = getattr(trained, pool), getattr(resumed, pool)
        assert len(dst) == 2
        assert all(torch.equal(a, b) for a, b in zip(src.images, dst.images, strict=True))
    # the pools then give exactly what the uninterrupted run's pools give
    fakes = torch.rand(8, 3, 32, 32) * 2 - 1
    assert torch.equal(trained.fake_B_pool.query(fakes), resumed.fake_B_pool.query(fakes))
    assert torch.equal(trained.fake_A_pool.query(fakes), resumed.fake_A_pool.query(fakes))


def test_bf16_autocast_step_is_finite() -> None:
    recipe = make_recipe()
    losses = recipe.train_step(unpaired(), Amp("bf16", "cpu"))
    assert all(math.isfinite(v) for v in losses.values())
    assert recipe.fake_B_pool.images[0].shape == (3, 32, 32)


def publish_and_serve(spec: ExportSpec, registry: Registry, tmp_path: Path, x: Tensor) -> Tensor:
    result = export_model(
        spec.net, spec.input.shape(1), tmp_path / spec.model_name, check_batches=(2,)
    )
    manifest = Manifest(
        name=spec.model_name,
        task=spec.task,
        architecture=spec.architecture,
        arch_kwargs=spec.arch_kwargs,
        recipe="cyclegan",
        input=spec.input,
        output=spec.output,
    )
    written = registry.publish(manifest, result.files)
    backend = load_backend(registry.version_dir(spec.model_name, written.version), written)
    try:
        return torch.from_numpy(backend.run(x.numpy()))
    finally:
        backend.close()


def test_publishes_both_directions(tmp_path: Path) -> None:
    recipe = make_recipe()
    batch = unpaired()
    recipe.train_step(batch, FP32)
    out = recipe.evaluate_batch(batch)
    assert out.fake.shape == (2, 3, 32, 32)
    assert out.real is batch["B"]
    assert set(out.grid) == {"real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"}

    specs = recipe.exports()
    assert [(s.model_name, s.task, s.architecture) for s in specs] == [
        ("sketch2photo-cyclegan", "sketch2photo", "resnet"),
        ("photo2sketch-cyclegan", "photo2sketch", "resnet"),
    ]
    registry = Registry(tmp_path / "models")
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    for spec, net_name in zip(specs, ("netG_A2B", "netG_B2A"), strict=True):
        served = publish_and_serve(spec, registry, tmp_path, x)
        with torch.no_grad():
            expected = recipe.nets[net_name](x).clamp(-1, 1)
        np.testing.assert_allclose(served.numpy(), expected.numpy(), atol=1e-4)
    assert sorted(registry.models()) == ["photo2sketch-cyclegan", "sketch2photo-cyclegan"]


def test_model_names_follow_direction_and_override() -> None:
    recipe = make_recipe(direction="photo2sketch", model_name="faces")
    names = [(s.model_name, s.task) for s in recipe.exports()]
    assert names == [("photo2sketch-faces", "photo2sketch"), ("sketch2photo-faces", "sketch2photo")]
