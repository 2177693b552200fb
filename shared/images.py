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
from typing import ClassVar

from PIL import Image

from shared.drawing_detector import looks_like_drawing
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
    """A client error about an image.

    kind: ``unreadable`` (HTTP 400), ``too_large`` (413, bytes or pixels) or
    ``unsupported_format`` (415); ``detail`` is a message a person can act on.
    """

    STATUS: ClassVar[dict[str, int]] = {
        "unreadable": 400,
        "too_large": 413,
        "unsupported_format": 415,
    }

    def __init__(self, kind: str, detail: str) -> None:
        if kind not in self.STATUS:
            raise ValueError(f"unknown ImageError kind {kind!r}")
        super().__init__(detail)
        self.kind = kind
        self.status = self.STATUS[kind]
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
        raise ImageError("too_large", f"image is {size}; the limit is {max_pixels}") from e
    except Image.UnidentifiedImageError as e:
        name = sniff_unsupported(data)
        if name is not None:
            raise ImageError("unsupported_format", _unsupported_detail(name)) from e
        raise ImageError(
            "unreadable", f"the data is not a readable image; send {ACCEPTED_TEXT}"
        ) from e
    except Exception as e:  # any parser error on hostile bytes is the client's problem
        raise ImageError("unreadable", f"the image header is corrupt ({e})") from e


# Formats people send that we refuse, by their magic bytes, for a helpful 415 detail
# (identifying them with PIL would run every plugin's parser on hostile bytes).
_MAGIC = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"%PDF", "PDF"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"%!PS", "PostScript"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
)
_FTYP = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF"}


def sniff_unsupported(data: bytes) -> str | None:
    """Name a refused format (or "SVG", "text") from the first bytes; None if unknown."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        return _FTYP.get(data[8:12], "HEIF/MP4")
    head = data[:1024]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not just a character cut in two at the end
            return None
        text = head[: e.start].decode("utf-8")
    text = text.lstrip("\ufeff \t\r\n").lower()
    if "<svg" in text:
        return "SVG"
    if all(c.isprintable() or c in "\t\r\n" for c in text):
        return "text"
    return None


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
        raise ImageError("unsupported_format", _unsupported_detail(fmt or "this"))
    w, h = img.size
    if fmt == "TIFF":  # newer Pillow reports (and loads) a TIFF already oriented
        tags = getattr(img, "tag_v2", {})
        w, h = int(tags.get(256, w)), int(tags.get(257, h))
    if w <= 0 or h <= 0:
        raise ImageError("unreadable", f"the image header says {w}x{h} pixels")
    if w * h > max_pixels:
        raise ImageError(
            "too_large", f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}"
        )
    return ImageInfo(format=fmt.lower(), width=w, height=h, orientation=_orientation(img))


def _check_bytes(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise ImageError(
            "too_large", f"the upload is {len(data)} bytes; the limit is {max_bytes} bytes"
        )
    if not data:
        raise ImageError("unreadable", "the upload is empty")


def probe(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Format and size from the header, without decoding pixels; raises ImageError."""
    _check_bytes(data, max_bytes)
    with _open(data, max_pixels) as img:
        return _check(img, max_pixels)


def decode(
    data: bytes, *, max_bytes: int, max_pixels: int, draft_size: int | None = None
) -> Image.Image:
    """Probe, then decode the first frame to an upright 8-bit RGB image (see module doc)."""
    return decode_with_info(
        data, max_bytes=max_bytes, max_pixels=max_pixels, draft_size=draft_size
    )[0]


def decode_with_info(
    data: bytes, *, max_bytes: int, max_pixels: int, draft_size: int | None = None
) -> tuple[Image.Image, ImageInfo]:
    """Like ``decode``, also returning the header's ``ImageInfo``.

    draft_size: when given, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's
    DCT scaling, several times faster) as long as both sides stay >= draft_size; the
    image is then smaller than the original, whose size is ``info.display_size``.
    """
    _check_bytes(data, max_bytes)
    with _open(data, max_pixels) as img:
        info = _check(img, max_pixels)
        if draft_size is not None and img.format in ("JPEG", "MPO"):
            img.draft(None, (draft_size, draft_size))
        try:
            img.load()  # frame 0: Image.open leaves multi-frame files on their first frame
        except Exception as e:  # truncated or corrupt data (LOAD_TRUNCATED_IMAGES stays off)
            raise ImageError(
                "unreadable", f"the {info.format.upper()} image is truncated or corrupt ({e})"
            ) from e
        # read again: a late PNG eXIf chunk is known now, and a TIFF may be upright already
        orientation = _orientation(img, loaded=True)
        if info.orientation == 1 and orientation != 1:
            info = dataclasses.replace(info, orientation=orientation)
        method = _TRANSPOSE.get(orientation)
        icc = img.info.get("icc_profile")
        out = img.transpose(method) if method is not None else img
        try:
            rgb = to_rgb(out, icc_profile=icc if isinstance(icc, bytes) else None)
        except UnsupportedModeError as e:
            raise ImageError("unsupported_format", f"{e}; send an RGB or greyscale image") from e
    return rgb, info


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
        img.save(buf, "PNG", compress_level=6)
    elif name == "jpeg":
        img.save(buf, "JPEG", quality=quality)
    else:
        img.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()
