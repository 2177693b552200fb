"""DiffAugment on (condition, image) pairs, and the EMA of a generator's weights."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from services.trainer.recipes.diffaugment import diff_augment, parse_policy
from services.trainer.recipes.ema import ema_copy, ema_update

ALL = "color,translation,cutout"


def pairs(n: int = 8, size: int = 32, seed: int = 0) -> Tensor:
    """(n, 6, size, size): a condition (channels 0-2) and an image (3-5), values in [0.1, 1]
    (never 0, so a zero in the output can only come from cutout or translation's border)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 6, size, size, generator=gen) * 0.9 + 0.1


# --- parse_policy ---------------------------------------------------------------------------


def test_parse_policy_splits_and_strips() -> None:
    assert parse_policy(" color , cutout ") == ("color", "cutout")
    assert parse_policy("") == ()
    assert parse_policy("translation,") == ("translation",)


@pytest.mark.parametrize("policy", ["flip", "color,zoom", "Color"])
def test_unknown_policy_is_refused(policy: str) -> None:
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        parse_policy(policy)
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        diff_augment(pairs(1), policy)


# --- diff_augment -----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", ALL])
def test_shape_is_kept_and_gradients_reach_the_input(policy: str) -> None:
    torch.manual_seed(0)
    x = pairs(4, 16).requires_grad_(True)
    out = diff_augment(x, policy, color_from=3)
    assert out.shape == x.shape
    assert out.is_contiguous()
    out.square().sum().backward()
    assert x.grad is not None
    assert x.grad.shape == x.shape
    assert float(x.grad.abs().sum()) > 0


def test_empty_policy_changes_nothing() -> None:
    x = pairs(2)
    torch.testing.assert_close(diff_augment(x, "", color_from=3), x, rtol=0, atol=0)


def test_color_leaves_the_condition_channels_and_changes_the_image() -> None:
    torch.manual_seed(0)
    x = pairs()
    out = diff_augment(x, "color", color_from=3)
    assert torch.equal(out[:, :3], x[:, :3])
    for i in range(x.shape[0]):  # every example gets its own brightness/saturation/contrast
        assert not torch.allclose(out[i, 3:], x[i, 3:], atol=1e-3)


def test_color_without_a_condition_changes_every_channel() -> None:
    torch.manual_seed(0)
    x = pairs(4)[:, :3]
    out = diff_augment(x, "color")
    assert out.shape == x.shape
    for c in range(3):
        assert not torch.allclose(out[:, c], x[:, c], atol=1e-3)


def test_translation_moves_condition_and_image_together() -> None:
    torch.manual_seed(0)
    half = pairs(8)[:, :3]
    x = torch.cat([half, half], 1)  # the image half equals the condition half
    out = diff_augment(x, "translation", color_from=3)
    assert torch.equal(out[:, :3], out[:, 3:])
    moved = [not torch.equal(out[i], x[i]) for i in range(8)]
    assert any(moved), "translation by up to 1/8 of the side should move some examples"
    # a shift brings in the zero border: zeros appear only in moved examples
    for i in range(8):
        assert bool((out[i] == 0).any()) == moved[i]


def test_translation_is_a_pure_shift_of_each_example() -> None:
    """Each example is its input shifted by some (dy, dx) in [-4, 4], zero-filled."""
    torch.manual_seed(1)
    x = pairs(6)
    out = diff_augment(x, "translation", color_from=3)
    for i in range(6):
        found = False
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                shifted = torch.zeros_like(x[i])
                src = x[i][:, max(0, dy) : 32 + min(0, dy), max(0, dx) : 32 + min(0, dx)]
                shifted[:, max(0, -dy) : 32 + min(0, -dy), max(0, -dx) : 32 + min(0, -dx)] = src
                found = found or torch.equal(out[i], shifted)
        assert found, f"example {i} is not a shift of its input"


def test_cutout_zeroes_one_region_in_all_channels_alike() -> None:
    torch.manual_seed(0)
    x = pairs(8)
    out = diff_augment(x, "cutout", color_from=3)
    zero = out == 0  # (N, C, H, W); the input has no zeros
    for i in range(8):
        mask = zero[i, 0]
        assert all(torch.equal(zero[i, c], mask) for c in range(6))
        assert torch.equal(out[i][:, ~mask], x[i][:, ~mask])  # the rest untouched
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        # one rectangle, at most half the side each way (clipped at the border)
        assert 0 < int(mask.sum()) <= 16 * 16
        height = int(rows.max() - rows.min() + 1)
        width = int(cols.max() - cols.min() + 1)
        assert int(mask.sum()) == height * width
        assert height <= 16
        assert width <= 16


# --- EMA ----------------------------------------------------------------------------------------


class OneParam(nn.Module):
    """One weight and one buffer, for exact arithmetic."""

    count: Tensor

    def __init__(self, w: float, buf: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([w]))
        self.register_buffer("count", torch.tensor([buf]))


def value(t: Tensor) -> float:
    return float(t.detach())


def test_ema_copy_is_a_frozen_independent_copy() -> None:
    net = OneParam(2.0, 5.0)
    ema = ema_copy(net)
    assert isinstance(ema, OneParam)
    assert ema is not net
    assert not any(p.requires_grad for p in ema.parameters())
    assert all(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        net.w.fill_(7.0)
    assert value(ema.w) == 2.0


@pytest.mark.parametrize(
    ("beta", "step", "b"),
    [
        (0.999, 0, 0.1),  # warm-up: (1 + 0) / (10 + 0)
        (0.999, 90, 0.91),  # (1 + 90) / (10 + 90)
        (0.999, 100_000, 0.999),  # warm-up done: beta itself
        (0.5, 0, 0.1),
        (0.5, 10, 0.5),  # 11 / 20 = 0.55 > beta
    ],
)
def test_ema_update_blends_with_the_warm_up_rule(beta: float, step: int, b: float) -> None:
    net = OneParam(1.0, 3.0)
    ema = OneParam(0.0, -1.0)
    ema_update(ema, net, beta=beta, step=step)
    assert value(ema.w) == pytest.approx(b * 0.0 + (1 - b) * 1.0, abs=1e-6)
    assert value(ema.count) == 3.0  # buffers are copied, not averaged
    assert value(net.w) == 1.0  # the source is left alone


def test_repeated_ema_updates_converge_geometrically() -> None:
    net, ema = OneParam(1.0, 0.0), OneParam(0.0, 0.0)
    expected = 0.0
    for step in range(5):
        b = min(0.9, (1.0 + step) / (10.0 + step))
        expected = b * expected + (1 - b) * 1.0
        ema_update(ema, net, beta=0.9, step=step)
    assert value(ema.w) == pytest.approx(expected, abs=1e-6)
    assert ema.w.grad is None
