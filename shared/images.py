"""Image codecs and limits shared by the api, the worker and the trainer.

Untrusted bytes go through ``probe`` (size limit, then the header only: format and pixel
count, so decompression bombs are refused before any pixel is decoded) and ``decode``
(first frame, EXIF orientation, transparency on white, any mode to 8-bit sRGB RGB).
``to_array``/``from_array`` convert to and from the tensor convention, a float32
(3, H, W) array in [-1, 1]; ``restore_aspect`` brings a model-size output back to the
input's aspect ratio (those live in ``shared.image_ops``; ``looks_like_drawing`` in
``shared.drawing_detector``; all are re-exported here). Pillow and numpy only: no torch.

Sizes are PIL's ``(width, height)`` everywhere in this module; arrays are ``(3, H, W)``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re

from PIL import Image

from shared.decode_budget import PixelBudget, process_budget
from shared.drawing_detector import looks_like_drawing
from shared.errors import IMAGE_ERROR_KINDS, ErrorKind
from shared.image_ops import (
    Fit,
    UnsupportedModeError,
    fit_image,
    from_array,
    letterbox_box,
    restore_aspect,
    to_array,
    to_rgb,
)
from shared.image_sniff import sniff_unsupported

__all__ = [
    "ALLOWED_FORMATS",
    "MEDIA_TYPES",
    "OUTPUT_FORMATS",
    "Fit",
    "ImageError",
    "ImageInfo",
    "decode",
    "decode_with_info",
    "encode",
    "fit_image",
    "from_array",
    "letterbox_box",
    "looks_like_drawing",
    "probe",
    "restore_aspect",
    "to_array",
    "to_rgb",
]

logger = logging.getLogger(__name__)

ALLOWED_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "WEBP", "BMP", "TIFF"})
OUTPUT_FORMATS: frozenset[str] = frozenset({"png", "jpeg", "webp"})
MEDIA_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}
ACCEPTED_TEXT = "PNG, JPEG, WebP, BMP or TIFF"
_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")  # JPEG's opener also yields MPO
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageError(Exception):
    """A client error about an image: ``kind`` is one of ``IMAGE_ERROR_KINDS`` (the API
    answers 400, 413 or 415); ``detail`` is a message a person can act on."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        if kind not in IMAGE_ERROR_KINDS:
            raise ValueError(f"unknown ImageError kind {kind!r}")
        super().__init__(detail)
        self.kind = ErrorKind(kind)
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    format: str  # "png" | "jpeg" | "webp" | "bmp" | "tiff"
    width: int  # as stored, before EXIF orientation
    height: int
    orientation: int = 1  # EXIF orientation, 1..8 (5..8 swap width and height)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as the image is shown, EXIF orientation applied."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Image.open on the header only; PIL's own bomb check is mapped to 413."""
    # PIL warns above MAX_IMAGE_PIXELS and raises above twice that; our own limit is the
    # one that counts, so never let PIL's default be stricter than the configured limit.
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        return Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{found.group(1)} pixels" if found else "too many pixels"
        raise ImageError(ErrorKind.too_large, f"image is {size}; the limit is {max_pixels}") from e
    except Image.UnidentifiedImageError as e:
        name = sniff_unsupported(data)
        if name is not None:
            raise ImageError(ErrorKind.unsupported_format, _unsupported_detail(name)) from e
        raise ImageError(
            ErrorKind.unreadable, f"the data is not a readable image; send {ACCEPTED_TEXT}"
        ) from e
    except Exception as e:  # any parser error on hostile bytes is the client's problem
        raise ImageError(ErrorKind.unreadable, f"the image header is corrupt ({e})") from e


def _unsupported_detail(name: str) -> str:
    if name == "SVG":
        return f"SVG is a vector format and is not supported; export it as {ACCEPTED_TEXT}"
    if name == "text":
        return f"the data is text, not an image; send {ACCEPTED_TEXT}"
    return f"{name} images are not supported; send {ACCEPTED_TEXT}"


def _orientation(img: Image.Image, *, loaded: bool = False) -> int:
    """The EXIF orientation still to be applied to the pixels PIL decodes, 1..8."""
    # A PNG's eXIf chunk may sit after the pixels, and getexif() would then decode the
    # whole image: before loading, only trust what the header parse already found.
    if not loaded and img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF is ignored, not fatal
        return 1
    return value if value in range(1, 9) else 1


def _check(img: Image.Image, max_pixels: int) -> ImageInfo:
    fmt = "JPEG" if img.format == "MPO" else (img.format or "")
    if fmt not in ALLOWED_FORMATS:
        raise ImageError(ErrorKind.unsupported_format, _unsupported_detail(fmt or "this"))
    w, h = img.size
    if fmt == "TIFF":  # newer Pillow reports (and loads) a TIFF already oriented
        tags = getattr(img, "tag_v2", {})
        w, h = int(tags.get(256, w)), int(tags.get(257, h))
    if w <= 0 or h <= 0:
        raise ImageError(ErrorKind.unreadable, f"the image header says {w}x{h} pixels")
    if w * h > max_pixels:
        raise ImageError(
            ErrorKind.too_large, f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}"
        )
    return ImageInfo(format=fmt.lower(), width=w, height=h, orientation=_orientation(img))


# A Huffman-coded JPEG spends at least one bit per 8x8 luma block (a progressive DC scan);
# less data than that is a truncated file that libjpeg would fill with grey if an end
# marker follows. Arithmetic-coded JPEGs (SOF9-SOF15, rare) can go lower and are exempt.
_ARITHMETIC_SOF = re.compile(rb"\xff[\xc9\xca\xcb\xcd\xce\xcf]")
SHRINK_ABOVE_PIXELS = 4_000_000  # larger images are box-reduced right after decoding


def _check_jpeg_length(data: bytes, info: ImageInfo) -> None:
    blocks = -(-info.width // 8) * -(-info.height // 8)
    if info.format == "jpeg" and len(data) * 8 < blocks and not _ARITHMETIC_SOF.search(data):
        raise ImageError(
            ErrorKind.unreadable,
            f"the JPEG image is truncated: {len(data)} bytes cannot hold "
            f"{info.width}x{info.height} pixels",
        )


def _shrink(img: Image.Image, min_side: int) -> Image.Image:
    """A large image box-reduced by an integer factor, both sides staying >= min_side (done
    before the RGB conversion, which is where a big image costs most memory)."""
    w, h = img.size
    factor = min(w, h) // min_side
    if factor < 2 or w * h <= SHRINK_ABOVE_PIXELS or "transparency" in img.info:
        return img
    try:
        return img.reduce(factor)
    except ValueError:  # a mode reduce() does not take (P, 1): converted at full size
        return img


def _check_bytes(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise ImageError(
            ErrorKind.too_large, f"the upload is {len(data)} bytes; the limit is {max_bytes} bytes"
        )
    if not data:
        raise ImageError(ErrorKind.unreadable, "the upload is empty")


def probe(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Format and size from the header, without decoding pixels; raises ImageError."""
    _check_bytes(data, max_bytes)
    with _open(data, max_pixels) as img:
        info = _check(img, max_pixels)
    _check_jpeg_length(data, info)
    return info


def decode(
    data: bytes, *, max_bytes: int, max_pixels: int, draft_size: int | None = None
) -> Image.Image:
    """Probe, then decode the first frame to an upright 8-bit RGB image (see module doc)."""
    return decode_with_info(
        data, max_bytes=max_bytes, max_pixels=max_pixels, draft_size=draft_size
    )[0]


def decode_with_info(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    draft_size: int | None = None,
    budget: PixelBudget | None = None,
) -> tuple[Image.Image, ImageInfo]:
    """Like ``decode``, also returning the header's ``ImageInfo``.

    draft_size: when given, the image may come back smaller than the original (whose size is
    ``info.display_size``) as long as both sides stay >= draft_size: a JPEG decodes at 1/2,
    1/4 or 1/8 scale (libjpeg's DCT scaling, several times faster), and any image above
    ``SHRINK_ABOVE_PIXELS`` is box-reduced before its RGB conversion.
    budget: the pixels this process may decode at once (default: ``process_budget()``);
    a large image waits for its share, so memory stays bounded whatever arrives.
    """
    _check_bytes(data, max_bytes)
    with _open(data, max_pixels) as img:
        info = _check(img, max_pixels)
        _check_jpeg_length(data, info)
        if draft_size is not None and img.format in ("JPEG", "MPO"):
            img.draft(None, (draft_size, draft_size))
        with (budget or process_budget()).hold(img.size[0] * img.size[1]):
            return _load_rgb(img, info, draft_size)


def _load_rgb(
    img: Image.Image, info: ImageInfo, draft_size: int | None
) -> tuple[Image.Image, ImageInfo]:
    """Decode the opened image's first frame, upright, reduced if asked, as 8-bit RGB."""
    try:
        img.load()  # frame 0: Image.open leaves multi-frame files on their first frame
    except Exception as e:  # truncated or corrupt data (LOAD_TRUNCATED_IMAGES stays off)
        raise ImageError(
            ErrorKind.unreadable,
            f"the {info.format.upper()} image is truncated or corrupt ({e})",
        ) from e
    # read again: a late PNG eXIf chunk is known now, and a TIFF may be upright already
    orientation = _orientation(img, loaded=True)
    if info.orientation == 1 and orientation != 1:
        info = dataclasses.replace(info, orientation=orientation)
    method = _TRANSPOSE.get(orientation)
    icc = img.info.get("icc_profile")
    out = img.transpose(method) if method is not None else img
    if draft_size is not None:
        out = _shrink(out, draft_size)
    try:
        rgb = to_rgb(out, icc_profile=icc if isinstance(icc, bytes) else None)
    except UnsupportedModeError as e:
        raise ImageError(
            ErrorKind.unsupported_format, f"{e}; send an RGB or greyscale image"
        ) from e
    return rgb, info


# zlib level of PNG answers: 1 encodes a 128 px model output in about 2 ms against 8.6 ms at
# Pillow's usual 6, for about 14% more bytes (benchmarks/RESULTS.md, "Where the time goes")
PNG_COMPRESS_LEVEL = 1


def encode(img: Image.Image, fmt: str = "png", *, quality: int = 90) -> bytes:
    """Encode as png, jpeg (or jpg) or webp; ``quality`` (1..100) is for jpeg and webp."""
    name = fmt.lower().lstrip(".")
    name = "jpeg" if name == "jpg" else name
    if name not in OUTPUT_FORMATS:
        raise ValueError(f"unsupported output format {fmt!r}; choose png, jpeg or webp")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if img.mode not in ("RGB", "L"):
        img = to_rgb(img)
    buf = io.BytesIO()
    if name == "png":
        img.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif name == "jpeg":
        img.save(buf, "JPEG", quality=quality)
    else:
        img.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()
