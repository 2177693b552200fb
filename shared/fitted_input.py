"""Decode once: the API stores the upload already fitted to the model, as raw RGB pixels.

The API decodes every upload anyway (to refuse a truncated or oversized file before it is
queued). When it knows the served model's input size, it fits the decoded image there
(``shared.image_ops.fit_image``, the worker's own step) and stores those pixels in place of
the upload; the worker then reads them without a second decode. A 128x128 model's input is
48 KiB, less than most uploads, so Redis holds less too.

The stored value is either the upload as sent (an encoded image: the worker decodes it, as
before) or::

    b"S2I-RGB8" + width (u16 BE) + height (u16 BE) + height * width * 3 bytes (RGB, row-major)

No image format starts with that magic, and the API stores only what it decoded itself, so a
client cannot send pixels past the decoder. ``unpack`` checks the length against the header.
A worker whose model version takes another size (a reload between the API's look at the
cluster and the run, or workers on two versions during a rollout) fits the stored pixels
again: correct, if softer than from the upload; at the same size, fitting them again changes
nothing. A job pinned to a version other than the served one keeps its upload.
"""

from __future__ import annotations

import struct

from PIL import Image

from shared.image_ops import fit_image
from shared.manifest import TensorSpec

MAGIC = b"S2I-RGB8"
_HEADER = struct.Struct(">HH")  # width, height
HEADER_BYTES = len(MAGIC) + _HEADER.size


def fits_from(img: Image.Image, original_size: tuple[int, int], spec: TensorSpec) -> bool:
    """Whether ``img`` (a decode of the original, possibly reduced) has the detail the model
    takes: it is the full original, or both its sides reach the model's larger side."""
    return img.size == original_size or min(img.size) >= max(spec.width, spec.height)


def pack(img: Image.Image, spec: TensorSpec) -> bytes:
    """``img`` (RGB) fitted to ``spec``'s size as the worker would, with the header above."""
    fitted = fit_image(img, (spec.width, spec.height), fit=spec.fit)  # RGB: (H, W, 3) bytes
    return MAGIC + _HEADER.pack(spec.width, spec.height) + fitted.tobytes()


def unpack(data: bytes) -> Image.Image | None:
    """The stored pixels as an RGB image, or None for an upload as sent (to decode)."""
    if not data.startswith(MAGIC):
        return None
    if len(data) < HEADER_BYTES:
        raise ValueError("fitted input: header cut short")
    width, height = _HEADER.unpack_from(data, len(MAGIC))
    if len(data) != HEADER_BYTES + width * height * 3:
        raise ValueError(f"fitted input: {len(data)} bytes for {width}x{height} RGB")
    return Image.frombytes("RGB", (width, height), data[HEADER_BYTES:])
