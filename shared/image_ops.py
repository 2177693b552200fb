"""Operations on decoded images: any PIL mode to sRGB RGB, resize or letterbox, and the
tensor convention (float32 (3, H, W) in [-1, 1]). Pillow and numpy only: no torch here.

Sizes are PIL's ``(width, height)`` everywhere; arrays are ``(3, H, W)``. Public names
are re-exported by ``shared.images``, which is the module to import.
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image, ImageCms

logger = logging.getLogger(__name__)

Fit = Literal["resize", "letterbox"]
WHITE = (255, 255, 255)


class UnsupportedModeError(ValueError):
    """A colour mode that cannot be turned into RGB (e.g. LAB without a profile)."""


@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(img: Image.Image, icc_profile: bytes) -> Image.Image:
    """Convert RGB/CMYK pixels from their embedded ICC profile to sRGB (best effort)."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if "srgb" in ImageCms.getProfileDescription(src).lower():
            return img if img.mode == "RGB" else img.convert("RGB")
        out = ImageCms.profileToProfile(img, src, _srgb(), outputMode="RGB")
        return out if out is not None else img
    except Exception as e:  # a broken profile is ignored: the pixels are still usable
        logger.debug("ignoring unusable ICC profile: %s", e)
        return img


def _high_bit_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float grey images to 8-bit L."""
    a = np.asarray(img).astype(np.float64)  # (H, W)
    if img.mode == "F":
        scale = 255.0 if float(np.nanmax(a, initial=0.0)) <= 1.0 else 1.0
    else:  # I;16* or I: 16-bit unless the values say otherwise
        top = float(a.max(initial=0.0))
        scale = 1.0 / 257.0 if top <= 65535 else 255.0 / top
    a = np.nan_to_num(a * scale, nan=0.0)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))


def to_rgb(
    img: Image.Image,
    *,
    background: tuple[int, int, int] = WHITE,
    icc_profile: bytes | None = None,
) -> Image.Image:
    """Any PIL mode to 8-bit RGB: alpha composited on ``background``, grey and palette
    expanded, 16-bit/float scaled down, CMYK (and any embedded ICC profile) to sRGB."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        return _high_bit_depth_to_l(img).convert("RGB")
    if img.mode == "CMYK" and icc_profile:
        img = _to_srgb(img, icc_profile)
        icc_profile = None
    has_alpha = "A" in img.mode or "a" in img.mode or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*background, 255))
        flat.alpha_composite(rgba)
        img = flat.convert("RGB")
    elif img.mode != "RGB":
        try:
            img = img.convert("RGB")
        except ValueError as e:  # e.g. LAB, which PIL cannot convert without a profile
            raise UnsupportedModeError(f"colour mode {img.mode} is not supported") from e
    if icc_profile:
        img = _to_srgb(img, icc_profile)
    return img


def _as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    w, h = (size, size) if isinstance(size, int) else size
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return int(w), int(h)


def letterbox_box(
    src_size: tuple[int, int], dst_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of ``src_size`` scaled to fit, centred, in ``dst_size``."""
    (sw, sh), (dw, dh) = src_size, dst_size
    scale = min(dw / sw, dh / sh)
    w = min(dw, max(1, round(sw * scale)))
    h = min(dh, max(1, round(sh * scale)))
    left, top = (dw - w) // 2, (dh - h) // 2
    return left, top, left + w, top + h


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    if img.size == size:
        return img
    # bicubic, as pix2pix/CycleGAN's data loaders; reducing_gap speeds up big downscales
    return img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def fit_image(img: Image.Image, size: int | tuple[int, int], *, fit: Fit = "resize") -> Image.Image:
    """RGB image brought to ``size`` (int or (width, height)): fit="resize" stretches;
    fit="letterbox" keeps the aspect ratio and pads with white (see ``letterbox_box``)."""
    w, h = _as_size(size)
    if fit == "resize":
        return _resize(img, (w, h))
    if fit == "letterbox":
        left, top, right, bottom = letterbox_box(img.size, (w, h))
        canvas = Image.new("RGB", (w, h), WHITE)
        canvas.paste(_resize(img, (right - left, bottom - top)), (left, top))
        return canvas
    raise ValueError(f"fit must be 'resize' or 'letterbox', got {fit!r}")


def to_array(img: Image.Image, size: int | tuple[int, int], *, fit: Fit = "resize") -> np.ndarray:
    """RGB image -> float32 (3, H, W) in [-1, 1]; ``size`` is an int or (width, height),
    reached as ``fit_image`` does."""
    if img.mode != "RGB":
        img = to_rgb(img)
    img = fit_image(img, size, fit=fit)
    x = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32, order="C")
    x *= 1.0 / 127.5  # (3, H, W) in [0, 2]
    x -= 1.0
    return x


def from_array(arr: np.ndarray) -> Image.Image:
    """float (3, H, W) in [-1, 1] -> RGB uint8 image (NaN -> 0, clipped, rounded)."""
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"expected an array of shape (3, H, W), got {a.shape}")
    a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0)
    u8 = np.rint((np.clip(a, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(u8.transpose(1, 2, 0)))  # (H, W, 3)


def restore_aspect(
    img: Image.Image,
    original_size: tuple[int, int],
    *,
    fit: Fit,
    scale_to_original: bool = False,
) -> Image.Image:
    """Bring a model-size output back to the input's aspect ratio.

    By default the result stays at the model's scale: the largest box of the original's
    aspect that fits in the output (for a 256x256 model and a 600x400 input, 256x171);
    for fit="letterbox" that box is exactly the unpadded region, which is cropped out.
    With ``scale_to_original`` the result is resized to ``original_size`` itself.
    ``original_size`` is (width, height) as displayed, e.g. ``ImageInfo.display_size``.
    """
    ow, oh = _as_size(original_size)
    left, top, right, bottom = letterbox_box((ow, oh), img.size)
    if fit == "letterbox":
        img = img.crop((left, top, right, bottom))
    elif fit != "resize":
        raise ValueError(f"fit must be 'resize' or 'letterbox', got {fit!r}")
    target = (ow, oh) if scale_to_original else (right - left, bottom - top)
    return _resize(img, target)
