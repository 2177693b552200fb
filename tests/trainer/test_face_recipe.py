"""pix2pix's options beyond the paper (the face recipes): resize upsampling, multi-scale
spectral-normed D with feature matching, DiffAugment, the EMA generator, the style condition,
noise inputs, the diversity term and the attribute classifier's term."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from services.trainer.evaluation.attribute_net import AttributeClassifier
from services.trainer.nets import MultiscaleDiscriminator, NLayerDiscriminator
from services.trainer.nets.noise import NoiseInjection
from services.trainer.recipes.base import Amp
from services.trainer.recipes.diffaugment import augment_alike
from services.trainer.recipes.feature_matching import feature_lists, feature_matching
from services.trainer.recipes.pix2pix import Pix2PixRecipe
from services.trainer.recipes.style_condition import style_planes
from tests.trainer.tiny_runs import tiny_config

ALL = "color,translation,cutout"
FULL_OPTIONS: dict[str, Any] = {
    "ngf": 8,
    "ndf": 8,
    "num_D": 2,
    "spectral_norm": True,
    "norm_D": "none",
    "lambda_fm": 10,
    "diffaugment": ALL,
    "ema_beta": 0.99,
    "condition": "style",
    "upsample": "resize",
}


def recipe_with(tmp_path: Path, image_size: int = 32, **options: Any) -> Pix2PixRecipe:
    config = tiny_config(tmp_path, image_size=image_size, options={"ngf": 4, "ndf": 4, **options})
    return Pix2PixRecipe(config, torch.device("cpu"))


def face_batch(n: int = 2, size: int = 32, styles: list[int] | None = None) -> dict[str, Tensor]:
    """An FS2K-like batch: A, B (n, 3, size, size) in [-1, 1], attrs (n, 7) with the style
    (0..2) in column 6."""
    gen = torch.Generator().manual_seed(0)
    attrs = torch.zeros(n, 7, dtype=torch.long)
    attrs[:, 6] = torch.tensor(styles if styles is not None else [i % 3 for i in range(n)])
    return {
        "A": torch.rand(n, 3, size, size, generator=gen) * 2 - 1,
        "B": torch.rand(n, 3, size, size, generator=gen) * 2 - 1,
        "attrs": attrs,
    }


def snapshot(net: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# --- helpers of the recipe --------------------------------------------------------------------


def test_augment_alike_draws_the_same_augmentation_for_every_pair() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    real = torch.rand(4, 6, 32, 32, generator=gen) * 2 - 1
    fake = real.clone()
    fake[:, 3:] = torch.rand(4, 3, 32, 32, generator=gen) * 2 - 1  # same condition, new image

    a, b = augment_alike(ALL, 3, real, real.clone())
    assert torch.equal(a, b)
    assert not torch.equal(a, real)
    # pairs that differ only in the image: the condition halves came out the same
    r, f = augment_alike(ALL, 3, real, fake)
    assert torch.equal(r[:, :3], f[:, :3])
    assert not torch.equal(r[:, 3:], f[:, 3:])
    # the draws move on between calls
    c, _ = augment_alike(ALL, 3, real, real.clone())
    assert not torch.equal(a, c)


def test_augment_alike_without_a_policy_returns_the_pairs() -> None:
    x, y = torch.rand(1, 6, 8, 8), torch.rand(1, 6, 8, 8)
    out = augment_alike("", 3, x, y)
    assert out[0] is x
    assert out[1] is y


def test_style_planes_are_one_hot_and_shaped_like_the_image() -> None:
    like = torch.zeros(3, 3, 4, 5, dtype=torch.float64)
    planes = style_planes(torch.tensor([0, 2, 1]), 3, like)
    assert planes.shape == (3, 3, 4, 5)
    assert planes.dtype == torch.float64
    expected = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=torch.float64)
    torch.testing.assert_close(planes[:, :, 2, 3], expected)
    assert torch.equal(planes.amax(dim=(2, 3)), planes.amin(dim=(2, 3)))  # constant planes


def test_feature_lists_and_matching_single_and_multiscale() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 6, 64, 64) * 2 - 1
    single = NLayerDiscriminator(ndf=4, norm="none")
    multi = MultiscaleDiscriminator(2, ndf=4, norm="none")
    with torch.no_grad():
        (feats,) = feature_lists(single, x)
        assert len(feats) == 5  # four LeakyReLUs, then the logits
        torch.testing.assert_close(feats[-1], single(x))
        scales = feature_lists(multi, x)
        assert len(scales) == 2
        torch.testing.assert_close([s[-1] for s in scales], multi(x))
        other = feature_lists(multi, x + 0.5)

    assert float(feature_matching(scales, scales)) == 0.0
    expected = sum(
        float((f - r).abs().mean())
        for fs, rs in zip(other, scales, strict=True)
        for f, r in zip(fs[:-1], rs[:-1], strict=True)
    ) / len(scales)
    assert float(feature_matching(other, scales)) == pytest.approx(expected, rel=1e-5)
    assert expected > 0


# --- options ----------------------------------------------------------------------------------


def test_resize_upsampling_builds_a_net_without_transposed_convs(tmp_path: Path) -> None:
    recipe = recipe_with(tmp_path, upsample="resize")
    netG = recipe.nets["netG"]
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in netG.modules())
    assert recipe.arch_kwargs["upsample"] == "resize"
    (spec,) = recipe.exports()
    assert spec.arch_kwargs["upsample"] == "resize"
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in spec.net.modules())
    # the paper's default keeps older manifests' arch_kwargs as they were
    assert "upsample" not in recipe_with(tmp_path).arch_kwargs


def test_noise_levels_reach_the_generator_its_training_and_its_export(tmp_path: Path) -> None:
    torch.manual_seed(0)
    recipe = recipe_with(tmp_path, image_size=64, noise_levels=2, upsample="resize")
    scales = [m.weight for m in recipe.nets["netG"].modules() if isinstance(m, NoiseInjection)]
    assert [s.shape[1] for s in scales] == [8, 4]  # ngf * 2, ngf: the two outer levels
    recipe.train_step(face_batch(2, 64), Amp("off", "cpu"))
    assert all(float(s.detach().abs().sum()) > 0 for s in scales)  # G's step trains them
    (spec,) = recipe.exports()
    assert spec.arch_kwargs["noise_levels"] == 2  # the served net is rebuilt with them
    assert "noise_levels" not in recipe_with(tmp_path).arch_kwargs


def noise_spread(recipe: Pix2PixRecipe, batch: dict[str, Tensor]) -> float:
    """Mean |G(x) − G(x)| over two training-mode draws of netG's noise for the same inputs."""
    netG = recipe.nets["netG"]
    with torch.no_grad():
        return float((netG(batch["A"]) - netG(batch["A"])).abs().mean())


def test_diversity_term_makes_the_generator_use_its_noise(tmp_path: Path) -> None:
    batch = face_batch(2, 64)
    spreads = {}
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        options = {"noise_levels": 2, "upsample": "resize", "use_dropout": False}
        recipe = recipe_with(tmp_path, image_size=64, lambda_diversity=weight, **options)
        for _ in range(5):
            losses = recipe.train_step(batch, Amp("off", "cpu"))
        assert ("G_diversity" in losses) == (weight > 0)
        spreads[weight] = noise_spread(recipe, batch)
    # the same seed, data and steps: only the term differs, and it pulls the draws apart
    assert spreads[10.0] > 2 * spreads[0.0]
    with pytest.raises(ValueError, match="noise_levels"):
        recipe_with(tmp_path, lambda_diversity=1.0)  # no noise to keep apart


@pytest.mark.parametrize("attr_size", [None, 16])  # None: netC reads the training size, 32
def test_attribute_term_trains_a_classifier_on_real_photos_and_g_to_satisfy_it(
    tmp_path: Path, attr_size: int | None
) -> None:
    # two faces that differ only in "smile" (column 4): a bright photo smiles, a dark one does
    # not; the sketches differ by where a white square sits
    attrs = torch.zeros(2, 7, dtype=torch.long)
    attrs[1, 4] = 1
    real_A = -torch.ones(2, 3, 32, 32)
    real_A[0, :, :8, :8], real_A[1, :, -8:, -8:] = 1.0, 1.0
    real_B = torch.stack([torch.full((3, 32, 32), 0.6), torch.full((3, 32, 32), -0.6)])
    batch = {"A": real_A, "B": real_B, "attrs": attrs}
    torch.manual_seed(0)
    recipe = recipe_with(tmp_path, lambda_l1=0.0, lambda_attr=10.0, attr_size=attr_size)
    assert "netC" in recipe.nets
    assert "C" in recipe.optimizers
    netC = recipe.nets["netC"]
    assert isinstance(netC, AttributeClassifier)
    assert netC.image_size == (attr_size or 32)
    history = [recipe.train_step(batch, Amp("off", "cpu")) for _ in range(60)]
    assert history[-1]["C_attr"] < 0.2  # netC learned the real photos' labels
    # and G learned to make photos netC reads each sketch's own label from
    assert history[-1]["G_attr"] < 0.3 * history[0]["G_attr"]
    with pytest.raises(ValueError, match="attrs"):
        recipe.train_step({"A": real_A, "B": real_B}, Amp("off", "cpu"))
    # netC's weights do not depend on the size it reads: it carries into a run at 64 px
    bigger = recipe_with(tmp_path, image_size=64, lambda_attr=10.0, attr_size=attr_size or 32)
    bigger.nets["netC"].load_state_dict(recipe.nets["netC"].state_dict())
    with pytest.raises(ValueError, match="attr_size sizes netC"):
        recipe_with(tmp_path, attr_size=64)  # no netC to size: a forgotten lambda_attr


def test_attr_critic_trains_netc_and_leaves_g_as_it_would_be_without_it(tmp_path: Path) -> None:
    batch = face_batch()
    torch.manual_seed(0)
    plain = recipe_with(tmp_path)
    torch.manual_seed(0)
    critic = recipe_with(tmp_path, attr_critic=True)
    assert "netC" not in plain.nets
    assert "netC" in critic.nets  # built after G and D: both start from the same weights
    history = [critic.train_step(batch, Amp("off", "cpu")) for _ in range(3)]
    for _ in range(3):
        plain.train_step(batch, Amp("off", "cpu"))
    assert "G_attr" not in history[-1]  # no term on G ...
    assert history[-1]["C_attr"] < history[0]["C_attr"]  # ... while netC learns the labels
    for key, value in snapshot(plain.nets["netG"]).items():
        torch.testing.assert_close(critic.nets["netG"].state_dict()[key], value)


def test_multiscale_spectral_norm_discriminator_is_built(tmp_path: Path) -> None:
    recipe = recipe_with(tmp_path, image_size=64, num_D=2, spectral_norm=True, norm_D="none")
    netD = recipe.nets["netD"]
    assert isinstance(netD, MultiscaleDiscriminator)
    assert len(netD.scales) == 2
    convs = [m for m in netD.modules() if isinstance(m, nn.Conv2d)]
    assert convs
    assert all(nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    assert isinstance(recipe_with(tmp_path).nets["netD"], NLayerDiscriminator)


def test_unknown_diffaugment_policy_is_refused_by_the_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="DiffAugment"):
        recipe_with(tmp_path, diffaugment="color,rotate")


def test_ema_generator_follows_the_generator_and_is_what_is_served(tmp_path: Path) -> None:
    torch.manual_seed(0)
    recipe = recipe_with(tmp_path, ema_beta=0.99)
    netG, ema = recipe.nets["netG"], recipe.nets["netG_ema"]
    initial = snapshot(netG)
    assert all(torch.equal(v, initial[k]) for k, v in ema.state_dict().items())
    assert not any(p.requires_grad for p in ema.parameters())
    assert "netG_ema" not in recipe.optimizers

    recipe.train_step(face_batch(), Amp("off", "cpu"))
    trained = snapshot(netG)
    averaged = snapshot(ema)
    weights = [k for k in initial if k.endswith("weight")]
    assert any(not torch.equal(averaged[k], initial[k]) for k in weights)
    assert any(not torch.equal(averaged[k], trained[k]) for k in weights)
    for k in weights:  # step 0: b = min(0.99, 1 / 10) = 0.1
        torch.testing.assert_close(averaged[k], 0.1 * initial[k] + 0.9 * trained[k])
    assert recipe.g_steps == 1
    assert recipe.extra_state() == {"g_steps": 1}

    batch = face_batch()
    for net in recipe.nets.values():
        net.eval()
    with torch.no_grad():
        from_ema = ema(batch["A"]).clamp(-1, 1)
        from_g = netG(batch["A"]).clamp(-1, 1)
    assert not torch.allclose(from_ema, from_g)
    torch.testing.assert_close(recipe.evaluate_batch(batch).fake, from_ema)

    (spec,) = recipe.exports()
    exported = {k.removeprefix("netG."): v for k, v in spec.net.state_dict().items()}
    assert set(exported) == set(averaged)
    assert all(torch.equal(exported[k], averaged[k]) for k in averaged)


def test_style_condition_is_an_input_of_g_and_d_and_of_the_export(tmp_path: Path) -> None:
    torch.manual_seed(0)
    recipe = recipe_with(tmp_path, condition="style")
    assert recipe.arch_kwargs["in_channels"] == 6
    first_d_conv = next(m for m in recipe.nets["netD"].modules() if isinstance(m, nn.Conv2d))
    assert first_d_conv.in_channels == 9  # (A + 3 style planes, B)

    (spec,) = recipe.exports()
    assert spec.input.channels == 6
    assert spec.input.condition == "style"
    assert spec.input.condition_values == ["1", "2", "3"]
    assert spec.input.shape(2) == (2, 6, 32, 32)
    assert spec.output.channels == 3
    assert spec.output.condition is None

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        outs = [
            spec.net(torch.cat([x, style_planes(torch.tensor([s]), 3, x)], 1)) for s in range(3)
        ]
    assert outs[0].shape == (1, 3, 32, 32)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.allclose(outs[i], outs[j], atol=1e-6)

    # the recipe reads the style from the batch's attrs (column 6)
    batch = face_batch(2, styles=[2, 0])
    cond = recipe.conditioned(batch["A"], batch)
    assert cond.shape == (2, 6, 32, 32)
    assert torch.equal(cond[:, :3], batch["A"])
    assert cond[0, 5].eq(1).all()
    assert cond[0, 3:5].eq(0).all()
    assert cond[1, 3].eq(1).all()
    assert cond[1, 4:].eq(0).all()
    with pytest.raises(ValueError, match="attrs"):
        recipe.conditioned(batch["A"], {"A": batch["A"], "B": batch["B"]})


@pytest.mark.parametrize("n_layers_D", [3, 0], ids=["patchgan-70", "pixelgan"])
def test_full_face_option_set_trains_one_step(tmp_path: Path, n_layers_D: int) -> None:
    """num_D=2 needs a 64 px input: at 32 px the half-scale 70x70 PatchGAN runs out of pixels."""
    torch.manual_seed(0)
    options = {**FULL_OPTIONS, "n_layers_D": n_layers_D}
    config = tiny_config(tmp_path, image_size=64, options=options)
    recipe = Pix2PixRecipe(config, torch.device("cpu"))
    netD_before = snapshot(recipe.nets["netD"])
    losses = recipe.train_step(face_batch(2, 64), Amp("off", "cpu"))
    assert set(losses) == {"G_GAN", "G_FM", "G_L1", "D_real", "D_fake"}
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["G_FM"] > 0
    assert any(
        not torch.equal(v, netD_before[k]) for k, v in recipe.nets["netD"].state_dict().items()
    )
    assert all(p.requires_grad for p in recipe.nets["netD"].parameters())  # unfrozen again
    out = recipe.evaluate_batch(face_batch(2, 64))
    assert out.fake.shape == (2, 3, 64, 64)
    (spec,) = recipe.exports()
    assert spec.input.channels == 6
