"""From an image and a request's condition to the model's input array (shared.model_input)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from shared.image_ops import to_array
from shared.manifest import TensorSpec
from shared.model_input import (
    ConditionError,
    condition_index,
    model_input,
    model_inputs,
    noise_vectors,
)


def style_spec(**extra: object) -> TensorSpec:
    fields: dict[str, object] = {
        "kind": "image",
        "height": 8,
        "width": 8,
        "channels": 6,
        "condition": "style",
        "condition_values": ["1", "2", "3"],
    }
    fields.update(extra)
    return TensorSpec.model_validate(fields)


def plain_spec(size: int = 8, fit: str = "resize") -> TensorSpec:
    return TensorSpec.model_validate({"kind": "image", "height": size, "width": size, "fit": fit})


def noise_image(w: int = 20, h: int = 14, seed: int = 0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(30, 226, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def test_without_a_condition_the_input_is_the_fitted_image() -> None:
    img = noise_image()
    x = model_input(img, plain_spec())
    assert x.shape == (3, 8, 8)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, to_array(img, 8))
    assert condition_index(plain_spec(), None) is None


@pytest.mark.parametrize(("value", "index"), [("1", 0), ("2", 1), ("3", 2)])
def test_condition_planes_are_appended_one_hot(value: str, index: int) -> None:
    img = noise_image()
    x = model_input(img, style_spec(), condition=value)
    assert x.shape == (6, 8, 8)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x[:3], to_array(img, 8))
    planes = x[3:]
    expected = np.zeros((3, 8, 8), np.float32)
    expected[index] = 1.0
    np.testing.assert_array_equal(planes, expected)
    assert condition_index(style_spec(), value) == index


def test_default_condition_is_the_first_value_or_the_declared_default() -> None:
    img = noise_image()
    first = model_input(img, style_spec())
    assert first[3].min() == 1.0
    assert first[4:].max() == 0.0
    spec = style_spec(condition_default="3")
    assert condition_index(spec, None) == 2
    x = model_input(img, spec)
    assert x[5].min() == 1.0
    assert x[3:5].max() == 0.0
    assert condition_index(spec, "1") == 0  # an explicit value beats the default


@pytest.mark.parametrize("value", ["4", "0", "", "style 1", " 1"])
def test_unknown_condition_value_is_refused(value: str) -> None:
    with pytest.raises(ConditionError, match="style must be one of 1, 2, 3"):
        model_input(noise_image(), style_spec(), condition=value)


def test_a_condition_for_a_model_without_one_is_refused() -> None:
    with pytest.raises(ConditionError, match="takes no condition"):
        model_input(noise_image(), plain_spec(), condition="1")
    assert issubclass(ConditionError, ValueError)  # callers that catch ValueError see it


def test_non_square_model_puts_planes_at_its_height_and_width() -> None:
    spec = style_spec(height=6, width=10)
    x = model_input(noise_image(), spec, condition="2")
    assert x.shape == (6, 6, 10)
    assert x[4].min() == 1.0
    assert x[3].max() == 0.0


def test_letterbox_fit_pads_the_image_planes_with_white_not_the_condition() -> None:
    img = noise_image(w=20, h=10)  # 2:1 -> 8x4 content centred in 8x8, rows 0-1 and 6-7 white
    x = model_input(img, style_spec(fit="letterbox"), condition="1")
    rgb = x[:3]
    assert (rgb[:, :2] == 1.0).all()
    assert (rgb[:, 6:] == 1.0).all()
    assert (rgb[:, 2:6] < 1.0).any()
    np.testing.assert_array_equal(x[3], np.ones((8, 8), np.float32))
    stretched = model_input(img, style_spec(), condition="1")
    assert not (stretched[:3, :2] == 1.0).all()


def noisy_spec(noise_dim: int = 5, **extra: object) -> TensorSpec:
    fields: dict[str, object] = {"height": 4, "width": 6, "channels": 4, "noise_dim": noise_dim}
    fields.update(extra)
    return TensorSpec.model_validate(fields)


def test_noise_goes_row_major_into_the_last_plane_zeros_without_one() -> None:
    img = noise_image()
    spec = noisy_spec()
    z = np.arange(1, 6, dtype=np.float32)  # (5,)
    x = model_input(img, spec, noise=z)
    assert x.shape == (4, 4, 6)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x[:3], to_array(img, (6, 4)))
    np.testing.assert_array_equal(x[3, 0], [1, 2, 3, 4, 5, 0])  # z, then zeros
    assert not x[3, 1:].any()
    mean = model_input(img, spec)  # no noise: the prior's mean
    np.testing.assert_array_equal(mean[:3], x[:3])
    assert not mean[3].any()


def test_condition_planes_come_before_the_noise_plane() -> None:
    spec = noisy_spec(channels=3 + 3 + 1, condition="style", condition_values=["1", "2", "3"])
    x = model_input(noise_image(), spec, condition="3", noise=np.ones(5, np.float32))
    assert x.shape == (7, 4, 6)
    assert x[5].min() == 1.0
    assert x[3:5].max() == 0.0
    assert x[6].sum() == 5.0


def test_model_inputs_gives_one_input_per_noise_vector() -> None:
    img, spec = noise_image(), noisy_spec()
    z = noise_vectors(7, 3, spec.noise_dim)
    xs = model_inputs(img, spec, noises=z)
    assert len(xs) == 3
    for x, zi in zip(xs, z, strict=True):
        np.testing.assert_array_equal(x, model_input(img, spec, noise=zi))
    assert len(model_inputs(img, spec)) == 1


def test_noise_vectors_are_seeded_float32_normal_draws() -> None:
    z = noise_vectors(7, 4, 256)
    assert z.shape == (4, 256)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, noise_vectors(7, 4, 256))
    expected = np.random.default_rng(7).standard_normal((4, 256)).astype(np.float32)
    np.testing.assert_array_equal(z, expected)
    assert not np.array_equal(z, noise_vectors(8, 4, 256))
    assert abs(float(z.mean())) < 0.1
    assert 0.9 < float(z.std()) < 1.1


def test_noise_for_a_model_without_noise_or_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ConditionError, match="takes no noise"):
        model_input(noise_image(), plain_spec(), noise=np.zeros(5, np.float32))
    with pytest.raises(ConditionError, match=r"shape \(5,\)"):
        model_input(noise_image(), noisy_spec(), noise=np.zeros(6, np.float32))


def test_a_noise_plane_must_hold_the_noise() -> None:
    assert noisy_spec(noise_dim=24).noise_dim == 24  # 4x6: exactly
    with pytest.raises(ValueError, match="noise_dim 25"):
        noisy_spec(noise_dim=25)
    with pytest.raises(ValueError, match="noise_dim"):
        TensorSpec(kind="noise", z_dim=8, noise_dim=8)
