"""sketchygan recipe: training steps, noise and diversity loss, auxiliary classes, perceptual
loss, DRAGAN penalty, export + serving."""

from __future__ import annotations

import logging
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
from services.trainer.recipes import perceptual as perceptual_module
from services.trainer.recipes.base import RECIPES, Amp, ExportSpec, unwrap
from services.trainer.recipes.losses import diversity_loss
from services.trainer.recipes.perceptual import PerceptualLoss
from services.trainer.recipes.sketchygan import SketchyGANRecipe, one_sided_penalty
from shared.backends import load_backend
from shared.manifest import Manifest
from shared.model_input import noise_vectors
from shared.registry import Registry

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")

TINY = {"ngf": 4, "ndf": 4, "num_levels": 3, "noise_dim": 8, "lambda_perceptual": 0.0}
SIZE = 16
FP32 = Amp("off", "cpu")


def make_recipe(data: str = "synthetic://8", **options: object) -> SketchyGANRecipe:
    torch.manual_seed(0)
    config = TrainConfig(
        recipe="sketchygan", data=data, image_size=SIZE, options={**TINY, **options}
    )
    return SketchyGANRecipe(config, torch.device("cpu"))


def pairs(n: int = 4, attrs: bool = False) -> dict[str, Tensor]:
    items = [SyntheticPairs(n, size=SIZE)[i] for i in range(n)]
    batch = {key: torch.stack([item[key] for item in items]) for key in ("A", "B")}
    if attrs:  # FS2K's 7 attributes; gender (index 2) alternates
        batch["attrs"] = torch.zeros(n, 7, dtype=torch.long)
        batch["attrs"][:, 2] = torch.arange(n) % 2
    return batch


def params(net: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def changed(net: nn.Module, before: list[Tensor]) -> bool:
    return any(not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))


def noise_spread(recipe: SketchyGANRecipe, sketch: Tensor) -> float:
    """mean |G(s, z1) − G(s, z2)| for fixed noises."""
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(2 * sketch.shape[0], recipe.options.noise_dim, generator=gen)
    with torch.no_grad():
        out = recipe.nets["netG"](torch.cat([sketch, sketch]), z)
    n = sketch.shape[0]
    return float((out[:n] - out[n:]).abs().mean())


def test_registered_with_paper_defaults() -> None:
    assert RECIPES["sketchygan"] is SketchyGANRecipe
    assert SketchyGANRecipe.data_kind == "paired"
    assert SketchyGANRecipe.default_image_size == 64
    assert (SketchyGANRecipe.default_lr, SketchyGANRecipe.default_beta1) == (2e-4, 0.0)
    opts = SketchyGANRecipe.Options()
    assert (opts.lambda_l1, opts.lambda_perceptual, opts.lambda_diversity) == (10.0, 3.0, 10.0)
    assert (opts.lambda_gp, opts.noise_dim, opts.aux_attribute) == (10.0, 256, "auto")
    with pytest.raises(ValidationError):
        make_recipe(lambda_style=1.0)
    with pytest.raises(ValidationError, match="aux_attribute"):
        make_recipe(aux_attribute="beard")
    with pytest.raises(ValueError, match="divisible"):
        make_recipe(num_levels=5)  # 16 is not divisible by 32


def test_train_steps_update_both_nets_with_finite_losses() -> None:
    recipe = make_recipe()
    netG, netD = recipe.nets["netG"], recipe.nets["netD"]
    g0, d0 = params(netG), params(netD)
    batch = pairs()
    for _ in range(3):
        losses = recipe.train_step(batch, FP32)
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["loss_G_div"] < 0  # present and pulling images apart
    expected_G = (
        losses["loss_G_gan"]
        + 10 * losses["loss_G_l1"]
        + 10 * losses["loss_G_div"]
        + 0.5 * losses["loss_G_aux"]
    )
    assert math.isclose(losses["loss_G"], expected_G, rel_tol=1e-4)
    expected_D = losses["loss_D_gan"] + 10 * losses["loss_D_gp"] + losses["loss_D_aux"]
    assert math.isclose(losses["loss_D"], expected_D, rel_tol=1e-4)
    assert changed(netG, g0)
    assert changed(netD, d0)
    assert unwrap(netD).cls_head is None  # synthetic data: no attributes, no class head


def test_different_noise_gives_different_images() -> None:
    recipe = make_recipe()
    netG = recipe.nets["netG"].eval()
    sketch = pairs(2)["A"]
    with torch.no_grad():
        a = netG(sketch, torch.zeros(2, 8))
        b = netG(sketch, torch.randn(2, 8))
    assert not torch.allclose(a, b)


def test_diversity_gradient_pushes_the_two_images_apart() -> None:
    gen = torch.Generator().manual_seed(0)
    fake_1 = torch.rand(2, 3, 4, 4, generator=gen).requires_grad_(True)
    fake_2 = torch.rand(2, 3, 4, 4, generator=gen)
    z_1, z_2 = torch.randn(2, 8, generator=gen), torch.randn(2, 8, generator=gen)
    loss = diversity_loss(fake_1, fake_2, z_1, z_2)
    loss.backward()
    assert fake_1.grad is not None
    with torch.no_grad():
        before = (fake_1 - fake_2).abs().mean()
        after = (fake_1 - 0.01 * fake_1.grad / fake_1.grad.abs().max() - fake_2).abs().mean()
    assert loss.item() < 0
    assert after > before
    # the same image distance counts less for noises further apart
    assert diversity_loss(fake_1, fake_2, z_1, 3 * z_2).item() > loss.item()


def test_diversity_weight_makes_the_generator_use_its_noise() -> None:
    batch = pairs()
    spreads = {}
    for weight in (0.0, 100.0):  # from N(0, 0.02) weights, which barely use the noise at first
        recipe = make_recipe(lambda_diversity=weight, init="normal")
        recipe.optimizers["netG"].param_groups[0]["lr"] = 1e-3
        start = noise_spread(recipe, batch["A"])
        for _ in range(5):
            recipe.train_step(batch, FP32)
        spreads[weight] = noise_spread(recipe, batch["A"])
    assert spreads[100.0] > 3 * spreads[0.0]
    assert spreads[100.0] > 3 * start


def test_glorot_init_gives_the_discriminator_logits_far_from_zero() -> None:
    """N(0, 0.02) shrinks the signal through D's unnormalised MRU levels (logits ~1e-3 at
    128 px: no GAN signal to start from); Glorot keeps its scale."""
    scale = {}
    for init in ("normal", "glorot"):
        recipe = make_recipe(init=init)
        batch = pairs()
        adv, _ = recipe.nets["netD"](batch["B"], batch["A"])
        scale[init] = float(adv.std())
    assert scale["glorot"] > 5 * scale["normal"]


def test_auxiliary_class_loss_on_fs2k_attributes() -> None:
    recipe = make_recipe(aux_attribute="gender")
    head = unwrap(recipe.nets["netD"]).cls_head
    assert isinstance(head, nn.Linear)
    assert head.out_features == 2
    h0 = params(head)
    losses = recipe.train_step(pairs(attrs=True), FP32)
    assert losses["loss_D_aux"] > 0
    assert losses["loss_G_aux"] > 0
    assert changed(head, h0)
    with pytest.raises(ValueError, match="attrs"):
        recipe.train_step(pairs(), FP32)


def test_auto_attribute_is_gender_on_fs2k_and_none_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "anno_train.json").write_text("[]")
    (tmp_path / "photo").mkdir()
    (tmp_path / "sketch").mkdir()
    assert make_recipe(data=str(tmp_path)).aux_attribute == "gender"
    assert make_recipe(data=str(tmp_path), aux_attribute=None).aux_attribute is None
    assert make_recipe(data=str(tmp_path / "missing")).aux_attribute is None
    assert make_recipe(aux_attribute="hair_color").aux_attribute == "hair_color"


class TinyFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        return [torch.relu(self.conv(x))]


def test_perceptual_loss_with_an_injected_extractor() -> None:
    recipe = make_recipe(lambda_perceptual=3.0)
    extractor = TinyFeatures()
    e0 = params(extractor)
    recipe.perceptual.loss = PerceptualLoss(extractor)
    losses = recipe.train_step(pairs(), FP32)
    assert losses["loss_G_perceptual"] > 0
    assert not changed(extractor, e0)
    expected_G = (
        losses["loss_G_gan"]
        + 10 * losses["loss_G_l1"]
        + 10 * losses["loss_G_div"]
        + 3 * losses["loss_G_perceptual"]
    )
    assert math.isclose(losses["loss_G"], expected_G, rel_tol=1e-4)


def test_perceptual_loss_off_with_a_warning_without_inception(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setattr(perceptual_module, "fid_helper_inception_path", lambda: None)
    recipe = make_recipe(lambda_perceptual=3.0)
    with caplog.at_level(logging.WARNING):
        losses = recipe.train_step(pairs(), FP32)
    assert losses["loss_G_perceptual"] == 0.0
    assert "perceptual loss disabled" in caplog.text
    explicit = make_recipe(lambda_perceptual=3.0, perceptual_net=str(tmp_path / "none.pt"))
    with pytest.raises(FileNotFoundError):
        explicit.train_step(pairs(), FP32)


def test_one_sided_penalty_only_above_unit_gradient_norm() -> None:
    x = torch.rand(2, 3, 4, 4, requires_grad=True)  # 48 values per sample
    k = torch.tensor(2.0, requires_grad=True)
    penalty = one_sided_penalty(k * x, x)  # gradient k everywhere: norm k·√48
    assert penalty.item() == pytest.approx((2 * math.sqrt(48) - 1) ** 2, rel=1e-5)
    penalty.backward()
    assert k.grad is not None
    assert k.grad > 0
    assert one_sided_penalty(0.1 * x, x).item() == 0.0  # norm 0.69 < 1: no penalty


def test_bf16_step_is_finite() -> None:
    recipe = make_recipe(aux_attribute="gender")
    losses = recipe.train_step(pairs(attrs=True), Amp("bf16", "cpu"))
    assert all(math.isfinite(v) for v in losses.values())


def publish_and_serve(spec: ExportSpec, tmp_path: Path, x: Tensor) -> np.ndarray:
    result = export_model(spec.net, spec.input.shape(1), tmp_path / "export", check_batches=(2,))
    manifest = Manifest(
        name=spec.model_name,
        task=spec.task,
        architecture=spec.architecture,
        arch_kwargs=spec.arch_kwargs,
        recipe="sketchygan",
        input=spec.input,
        output=spec.output,
    )
    registry = Registry(tmp_path / "models")
    written = registry.publish(manifest, result.files)
    served = registry.manifest(spec.model_name)
    backend = load_backend(registry.version_dir(spec.model_name, written.version), served)
    try:
        return backend.run(x.numpy())
    finally:
        backend.close()


def test_evaluate_and_export_serve_the_generator_with_the_noise_plane(tmp_path: Path) -> None:
    recipe = make_recipe()
    batch = pairs(3)
    recipe.train_step(batch, FP32)
    netG = recipe.nets["netG"].eval()
    out = recipe.evaluate_batch(batch)
    with torch.no_grad():
        expected = netG(batch["A"], torch.zeros(3, 8))
    torch.testing.assert_close(out.fake, expected)
    assert out.real is batch["B"]
    assert set(out.grid) == {"sketch", "fake", "fake_noise", "real"}
    assert not torch.allclose(out.grid["fake_noise"], out.fake)

    (spec,) = recipe.exports()
    assert (spec.model_name, spec.task, spec.architecture) == (
        "sketch2photo-sketchygan",
        "sketch2photo",
        "sketchy",
    )
    assert spec.input.noise_dim == 8
    assert spec.input.shape(2) == (2, 3 + 1, SIZE, SIZE)  # the sketch, then the noise plane
    assert spec.output.shape(2) == (2, 3, SIZE, SIZE)
    build_serving_net(spec.architecture, **spec.arch_kwargs).load_state_dict(spec.net.state_dict())
    # as the worker builds them: a plane of zeros (no seed), and seeded z
    z = torch.from_numpy(noise_vectors(7, 3, spec.input.noise_dim))  # (3, 8)
    plane = np.zeros((6, 1, SIZE * SIZE), np.float32)  # (2 * 3, 1, H * W)
    plane[3:, 0, :8] = z.numpy()
    sketches = np.concatenate([batch["A"].numpy()] * 2)  # (6, 3, H, W)
    x = np.concatenate([sketches, plane.reshape(6, 1, SIZE, SIZE)], axis=1)  # (6, 4, H, W)
    got = publish_and_serve(spec, tmp_path, torch.from_numpy(x))
    with torch.no_grad():
        seeded = netG(batch["A"], z)
    np.testing.assert_allclose(got[:3], expected.clamp(-1, 1).numpy(), atol=1e-4)
    np.testing.assert_allclose(got[3:], seeded.clamp(-1, 1).numpy(), atol=1e-4)
