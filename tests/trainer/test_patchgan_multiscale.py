"""Multi-scale PatchGAN (pix2pixHD), its features, spectral norm and the init under it."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from services.trainer.nets import MultiscaleDiscriminator, NLayerDiscriminator, init_weights

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


def _img(n: int, size: int, ch: int = 6, seed: int = 0) -> Tensor:
    return torch.rand(n, ch, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def convs(net: nn.Module) -> list[nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


def largest_singular_value(weight: Tensor) -> float:
    """Spectral norm of a conv weight seen as an (out, in * kh * kw) matrix."""
    matrix = weight.detach().reshape(weight.shape[0], -1)
    return float(torch.linalg.matrix_norm(matrix, ord=2))


def test_multiscale_runs_one_patchgan_per_halved_scale() -> None:
    torch.manual_seed(0)
    netD = MultiscaleDiscriminator(3, in_channels=6, ndf=4, norm="none").eval()
    assert len(netD.scales) == 3
    assert all(isinstance(d, NLayerDiscriminator) for d in netD.scales)
    assert netD.scales[0] is not netD.scales[1]  # separate weights per scale
    seen: list[tuple[int, ...]] = []
    for d in netD.scales:  # features() calls the layers, not the scale's forward
        first_conv = convs(d)[0]
        first_conv.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        logits = netD(_img(2, 128))
    assert seen == [(2, 6, 128, 128), (2, 6, 64, 64), (2, 6, 32, 32)]
    # a 70x70 PatchGAN maps side s to s/8 - 2
    assert [tuple(x.shape) for x in logits] == [(2, 1, 14, 14), (2, 1, 6, 6), (2, 1, 2, 2)]


def test_the_half_scale_is_a_3x3_average_pool_of_the_input() -> None:
    netD = MultiscaleDiscriminator(2, in_channels=6, ndf=4, norm="none").eval()
    x = _img(1, 64)
    with torch.no_grad():
        logits = netD(x)
        pooled = nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        torch.testing.assert_close(logits[1], netD.scales[1](pooled))
        torch.testing.assert_close(logits[0], netD.scales[0](x))


def test_features_end_with_the_logits_of_forward() -> None:
    torch.manual_seed(0)
    single = NLayerDiscriminator(in_channels=6, ndf=4, n_layers=3, norm="batch").eval()
    x = _img(2, 64)
    with torch.no_grad():
        feats = single.features(x)
        assert len(feats) == 5  # one LeakyReLU per conv block but the last, then the logits
        assert [f.shape[1] for f in feats] == [4, 8, 16, 32, 1]
        torch.testing.assert_close(feats[-1], single(x))

        multi = MultiscaleDiscriminator(2, in_channels=6, ndf=4, norm="none").eval()
        per_scale = multi.features(x)
        assert len(per_scale) == 2
        assert all(len(f) == 5 for f in per_scale)
        torch.testing.assert_close([f[-1] for f in per_scale], multi(x))
        assert per_scale[1][0].shape[-1] == per_scale[0][0].shape[-1] // 2


def test_pixelgan_judges_each_pixel_alone() -> None:
    # n_layers 0: one logit per pixel, and a pixel's logit depends on that pixel only
    torch.manual_seed(0)
    netD = NLayerDiscriminator(in_channels=6, ndf=4, n_layers=0, norm="none").eval()
    assert all(c.kernel_size == (1, 1) for c in convs(netD))
    x = _img(1, 16)
    changed = x.clone()
    changed[:, :, 5, 7] += 0.5
    with torch.no_grad():
        before, after = netD(x), netD(changed)
        assert before.shape == (1, 1, 16, 16)
        moved = (before - after).abs()[0, 0] > 0
        assert moved.nonzero().tolist() == [[5, 7]]
        assert [f.shape[1] for f in netD.features(x)] == [4, 8, 1]


def test_spectral_norm_bounds_every_conv_near_one_after_a_few_passes() -> None:
    torch.manual_seed(0)
    plain = init_weights(NLayerDiscriminator(in_channels=6, ndf=8, norm="none"))
    normed = init_weights(
        NLayerDiscriminator(in_channels=6, ndf=8, norm="none", spectral_norm=True)
    ).train()
    assert all(parametrize.is_parametrized(m, "weight") for m in convs(normed))
    assert not any(parametrize.is_parametrized(m, "weight") for m in convs(plain))
    x = _img(1, 64)
    with torch.no_grad():
        for _ in range(60):  # one power iteration per training-mode forward
            normed(x)
    normed.eval()
    sigmas = [largest_singular_value(m.weight) for m in convs(normed)]
    assert len(sigmas) == 5
    # power iteration underestimates sigma, so W / sigma_estimate is at least 1
    assert all(0.999 <= s <= 1.03 for s in sigmas), sigmas
    # without it, N(0, 0.02) weights are far from norm 1
    assert all(largest_singular_value(m.weight) < 0.8 for m in convs(plain))


def test_init_weights_draws_the_raw_weight_of_spectral_normed_convs() -> None:
    torch.manual_seed(0)
    gain = 0.1  # far from PyTorch's default conv init (std 1 / sqrt(3 * fan_in))
    netD = NLayerDiscriminator(in_channels=6, ndf=16, norm="none", spectral_norm=True)
    for m in convs(netD):
        assert m.bias is not None
        nn.init.constant_(m.bias, 0.5)
    init_weights(netD, gain)
    for m in convs(netD):
        raw = dict(m.named_parameters())["parametrizations.weight.original"].detach()
        if raw.numel() >= 1000:
            assert float(raw.std()) == pytest.approx(gain, rel=0.1)
            assert abs(float(raw.mean())) < 0.01
        assert m.bias is not None
        assert float(m.bias.detach().abs().max()) == 0.0
