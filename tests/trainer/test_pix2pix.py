"""pix2pix: the paper's defaults and losses, and a tiny run that trains, publishes and serves."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from services.trainer.engine.loop import train
from services.trainer.engine.seeding import seed_everything
from services.trainer.nets import UNetGenerator
from services.trainer.recipes import RECIPES
from services.trainer.recipes.base import Amp
from services.trainer.recipes.perceptual import PerceptualLoss
from services.trainer.recipes.pix2pix import Pix2PixRecipe
from services.trainer.recipes.pix2pix_options import Pix2PixOptions, num_downs_for
from shared.backends import load_backend
from shared.registry import Registry
from tests.trainer.tiny_runs import load_state, tiny_config


def test_paper_defaults() -> None:
    opts = Pix2PixOptions()
    assert (opts.ngf, opts.ndf, opts.n_layers_D) == (64, 64, 3)
    assert (opts.lambda_l1, opts.gan_mode, opts.use_dropout) == (100.0, "vanilla", True)
    # the paper's test-time batch statistics at batch size 1 = instance norm in netG
    assert (opts.norm, opts.norm_D) == ("instance", "batch")
    assert opts.init_gain == 0.02
    cls = RECIPES["pix2pix"]
    assert cls is Pix2PixRecipe
    assert cls.data_kind == "paired"
    assert (cls.default_image_size, cls.default_batch_size) == (256, 1)
    assert (cls.default_epochs, cls.default_epochs_decay) == (100, 100)
    assert (cls.default_lr, cls.default_beta1) == (2e-4, 0.5)


@pytest.mark.parametrize(("size", "downs"), [(256, 8), (128, 7), (64, 6), (32, 5), (512, 8)])
def test_unet_depth_follows_the_image_size(size: int, downs: int) -> None:
    assert num_downs_for(size) == downs


def test_image_size_not_divisible_by_32_is_refused() -> None:
    with pytest.raises(ValueError, match="divisible by 32"):
        num_downs_for(48)


class RecordingAmp(Amp):
    """Amp that remembers which loss each optimizer stepped on."""

    def __init__(self) -> None:
        super().__init__("off", "cpu")
        self.stepped: list[tuple[float, torch.optim.Optimizer]] = []

    def step(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        self.stepped.append((float(loss.detach()), optimizer))
        super().step(loss, optimizer)


def test_losses_are_the_papers(tmp_path: Path) -> None:
    """D steps on half the sum of its two GAN terms, then G on GAN + 100 * L1."""
    config = tiny_config(tmp_path)
    recipe = Pix2PixRecipe(config, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    batch = {
        "A": torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1,
        "B": torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1,
    }
    amp = RecordingAmp()
    losses = recipe.train_step(batch, amp)
    (loss_D, opt_D), (loss_G, opt_G) = amp.stepped
    assert opt_D is recipe.optimizers["D"]
    assert opt_G is recipe.optimizers["G"]
    assert loss_D == pytest.approx(0.5 * (losses["D_real"] + losses["D_fake"]), rel=1e-5)
    assert loss_G == pytest.approx(losses["G_GAN"] + losses["G_L1"], rel=1e-5)
    # at init the U-Net output is near 0, so L1 to a uniform [-1, 1] target is about 0.5
    assert 30 < losses["G_L1"] < 70
    assert all(p.requires_grad for p in recipe.nets["netD"].parameters())


def test_lsgan_and_batch_norm_options_train(tmp_path: Path) -> None:
    config = tiny_config(
        tmp_path,
        options={"ngf": 4, "ndf": 4, "gan_mode": "lsgan", "norm": "batch", "lambda_l1": 10},
    )
    recipe = Pix2PixRecipe(config, torch.device("cpu"))
    batch = {"A": torch.zeros(2, 3, 32, 32), "B": torch.ones(2, 3, 32, 32)}
    losses = recipe.train_step(batch, Amp("off", "cpu"))
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["G_L1"] == pytest.approx(10 * 1.0, abs=1.0)  # fake_B ~ 0 vs 1


class MeanColour(torch.nn.Module):
    """A stand-in extractor: each image's mean colour, (N, 3, 1, 1)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


def test_perceptual_term_joins_the_generator_loss(tmp_path: Path) -> None:
    """λ_perceptual · L1(φ(fake_B), φ(real_B)) joins G's loss, as its own term."""
    config = tiny_config(tmp_path, options={"ngf": 4, "ndf": 4, "lambda_perceptual": 5.0})
    recipe = Pix2PixRecipe(config, torch.device("cpu"))
    recipe.perceptual.loss = PerceptualLoss(MeanColour())
    batch = {"A": torch.zeros(2, 3, 32, 32), "B": torch.full((2, 3, 32, 32), 0.8)}
    amp = RecordingAmp()
    losses = recipe.train_step(batch, amp)
    (_, _), (loss_G, _) = amp.stepped
    # fake_B is near 0 at init, so the mean-colour distance to 0.8 is about 0.8
    assert losses["G_perceptual"] == pytest.approx(5.0 * 0.8, abs=0.5)
    assert loss_G == pytest.approx(
        losses["G_GAN"] + losses["G_L1"] + losses["G_perceptual"], rel=1e-5
    )
    off = Pix2PixRecipe(tiny_config(tmp_path / "off"), torch.device("cpu"))
    assert "G_perceptual" not in off.train_step(batch, Amp("off", "cpu"))


def test_trains_publishes_and_the_worker_backend_serves_it(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", max_steps=4, deterministic=True)
    seed_everything(config.seed)  # the loop builds its recipe right after this seeding
    initial = {
        k: v.clone()
        for k, v in Pix2PixRecipe(config, torch.device("cpu")).nets["netG"].state_dict().items()
    }
    registry = Registry(tmp_path / "models")

    final = train(config, registry=registry)

    assert final.state == "finished"
    assert final.step == 4
    assert final.losses
    assert all(math.isfinite(v) for v in final.losses.values())
    assert {"val_l1", "psnr", "ssim"} <= set(final.metrics)
    assert final.checkpoint is not None
    trained = load_state(Path(final.checkpoint))["nets"]["netG"]
    changed = [
        k for k, v in trained.items() if v.is_floating_point() and not torch.equal(v, initial[k])
    ]
    assert any(k.endswith("weight") for k in changed)

    (published,) = final.published
    assert published.model == "sketch2photo-pix2pix"
    assert published.served
    assert registry.current("sketch2photo-pix2pix") == published.version
    manifest = registry.verify("sketch2photo-pix2pix", published.version)
    assert manifest.task == "sketch2photo"
    assert manifest.architecture == "unet"
    assert manifest.arch_kwargs["num_downs"] == 5
    assert manifest.steps == 4
    assert manifest.metrics["val_l1"] == pytest.approx(final.metrics["val_l1"])

    netG = UNetGenerator(**manifest.arch_kwargs)
    netG.load_state_dict(trained)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = netG.eval()(x).clamp(-1, 1).numpy()
    for prefer in ("onnx", "torchscript"):
        backend = load_backend(
            registry.version_dir(manifest.name, manifest.version),
            manifest,
            prefer=prefer,
            device="cpu",
        )
        out = backend.run(x.numpy())
        backend.close()
        assert out.shape == (3, 3, 32, 32)
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, expected, atol=1e-4)


def test_photo2sketch_publishes_its_own_model(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, direction="photo2sketch")
    (spec,) = Pix2PixRecipe(config, torch.device("cpu")).exports()
    assert (spec.model_name, spec.task, spec.architecture) == (
        "photo2sketch-pix2pix",
        "photo2sketch",
        "unet",
    )
    named = tiny_config(tmp_path, model_name="faces")
    assert Pix2PixRecipe(named, torch.device("cpu")).exports()[0].model_name == "faces"


def test_served_output_of_an_example_does_not_depend_on_its_batch(tmp_path: Path) -> None:
    """Dynamic batching puts strangers in one batch: their outputs must not mix."""
    recipe = Pix2PixRecipe(tiny_config(tmp_path), torch.device("cpu"))
    recipe.train_step(
        {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1},
        Amp("off", "cpu"),
    )
    net = recipe.exports()[0].net.eval()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        together = net(x)
        alone = torch.cat([net(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
