"""Decode once (``shared.fitted_input``): the pixels the API stores give the model exactly the
input the worker's own decode and fit would."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shared import fitted_input
from shared.images import ImageError, decode
from shared.manifest import TensorSpec
from shared.model_input import model_input
from tests.images import photo_png

SPEC = TensorSpec(height=128, width=128, channels=6, fit="letterbox", condition="style",
                  condition_values=["1", "2", "3"])  # fmt: skip
LIMITS = {"max_bytes": 1 << 24, "max_pixels": 1 << 24}


def wide_photo() -> Image.Image:
    img = Image.open(io.BytesIO(photo_png(3, size=200))).convert("RGB")
    return img.resize((300, 200))


@pytest.mark.parametrize("fit", ["resize", "letterbox"])
def test_the_stored_pixels_give_the_model_the_same_input(fit: str) -> None:
    spec = SPEC.model_copy(update={"fit": fit})
    img = wide_photo()

    stored = fitted_input.pack(img, spec)
    unpacked = fitted_input.unpack(stored)

    assert unpacked is not None
    assert unpacked.size == (128, 128)
    assert len(stored) == fitted_input.HEADER_BYTES + 128 * 128 * 3  # less than the upload
    np.testing.assert_array_equal(model_input(unpacked, spec, "2"), model_input(img, spec, "2"))


def test_an_upload_is_left_to_decode() -> None:
    upload = photo_png(1)

    assert fitted_input.unpack(upload) is None
    with pytest.raises(ImageError, match="not a readable image"):  # an upload of pixels: 400
        decode(fitted_input.pack(wide_photo(), SPEC), **LIMITS)


def test_a_payload_of_the_wrong_length_is_refused() -> None:
    stored = fitted_input.pack(wide_photo(), SPEC)

    with pytest.raises(ValueError, match="bytes for 128x128"):
        fitted_input.unpack(stored[:-1])
    with pytest.raises(ValueError, match="cut short"):
        fitted_input.unpack(fitted_input.MAGIC + b"\x00")


def test_pixels_for_another_size_are_fitted_again() -> None:
    """A version with another input size (a reload after the API fitted the upload) still
    gets an input of its own size."""
    stored = fitted_input.unpack(fitted_input.pack(wide_photo(), SPEC))
    assert stored is not None
    bigger = SPEC.model_copy(update={"height": 256, "width": 256})

    assert model_input(stored, bigger, "1").shape == (6, 256, 256)


def test_a_reduced_decode_is_used_only_when_it_keeps_the_models_detail() -> None:
    original = (4000, 3000)

    assert fitted_input.fits_from(Image.new("RGB", original), original, SPEC)  # the full decode
    assert fitted_input.fits_from(Image.new("RGB", (500, 375)), original, SPEC)  # 1/8, >= 128
    assert not fitted_input.fits_from(Image.new("RGB", (100, 75)), original, SPEC)
