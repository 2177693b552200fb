"""shared.images: upload validation, decoding, tensor conversion, encoding."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from shared import images
from shared.errors import IMAGE_ERROR_KINDS, ErrorKind
from shared.images import ImageError, decode, decode_with_info, encode, probe

LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 40_000_000}
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def two_halves(w: int = 40, h: int = 20) -> Image.Image:
    """Left half red, right half blue."""
    img = Image.new("RGB", (w, h), RED)
    img.paste(BLUE, (w // 2, 0, w, h))
    return img


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(w: int, h: int) -> bytes:
    """A tiny PNG whose IHDR claims w x h RGB pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)


def assert_error(data: bytes, kind: str, **limits: int) -> ImageError:
    with pytest.raises(ImageError) as info:
        decode(data, **{**LIMITS, **limits})
    assert info.value.kind == kind
    assert info.value.detail == str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("fmt", "kw", "lossy"),
    [
        ("PNG", {}, False),
        ("JPEG", {"quality": 95}, True),
        ("WEBP", {"lossless": True}, False),
        ("WEBP", {"quality": 90}, True),
        ("BMP", {}, False),
        ("TIFF", {}, False),
        ("TIFF", {"compression": "tiff_lzw"}, False),
    ],
)
def test_accepted_formats_round_trip(fmt, kw, lossy):
    img = two_halves(64, 32)
    data = save(img, fmt, **kw)
    info = probe(data, **LIMITS)
    assert (info.format, info.width, info.height) == (fmt.lower(), 64, 32)
    out = decode(data, **LIMITS)
    assert (out.mode, out.size) == ("RGB", (64, 32))
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(img, np.int16))
    assert diff.mean() <= (8 if lossy else 0)


def test_mpo_counts_as_jpeg():
    data = save(two_halves(), "MPO", save_all=True, append_images=[two_halves()])
    assert probe(data, **LIMITS).format == "jpeg"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (save(two_halves(), "GIF"), ["GIF", "PNG, JPEG, WebP, BMP or TIFF"]),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', ["SVG", "PNG"]),
        (b"just some text, not a picture\n", ["text", "PNG"]),
        (b"a" + "é".encode() * 600, ["text"]),  # a character cut in two where sniffing stops
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", ["PDF"]),
    ],
)
def test_unsupported_formats_are_415_naming_the_accepted_ones(data, words):
    err = assert_error(data, "unsupported_format")
    for word in words:
        assert word in err.detail


def test_random_bytes_are_400():
    data = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert_error(b"\x01" + data, "unreadable")
    assert_error(b"", "unreadable")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_400(fmt):
    data = save(noise(256, 256), fmt)
    cut = data[: len(data) // 2]
    assert probe(cut, **LIMITS).width == 256  # the header alone is fine...
    err = assert_error(cut, "unreadable")  # ...the pixels are not
    assert "truncated" in err.detail


def test_bomb_header_is_too_large_without_decoding():
    data = png_header_only(100_000, 100_000)
    assert len(data) < 200
    t0 = time.perf_counter()
    for check in (probe, decode):
        with pytest.raises(ImageError) as info:
            check(data, **LIMITS)
        assert info.value.kind == "too_large"
        assert "10000000000 pixels" in info.value.detail
        assert "40000000" in info.value.detail
    assert time.perf_counter() - t0 < 0.5


def test_pixel_limit_comes_from_the_header():
    err = assert_error(png_header_only(10_000, 5_000), "too_large")
    assert err.detail == "image is 10000x5000 = 50000000 pixels; the limit is 40000000"
    err = assert_error(save(noise(100, 50), "JPEG"), "too_large", max_pixels=4999)
    assert "100x50 = 5000 pixels" in err.detail


def test_pixel_limit_above_pils_default_is_honoured(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # restored afterwards
    info = probe(png_header_only(3_000, 1_000), max_bytes=1000, max_pixels=5_000_000)
    assert (info.width, info.height) == (3_000, 1_000)


def test_byte_limit_is_checked_before_anything_else():
    err = assert_error(b"\x00" * 2000, "too_large", max_bytes=1000)
    assert "2000 bytes" in err.detail
    assert "1000 bytes" in err.detail
    assert_error(save(noise(64, 64), "PNG"), "too_large", max_bytes=1000)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation_6_rotates_clockwise(fmt):
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: display rotated 90 degrees clockwise
    data = save(two_halves(40, 20), fmt, exif=exif.tobytes())
    info = probe(data, **LIMITS)
    assert (info.orientation, info.display_size) == (6, (20, 40))
    out = decode(data, **LIMITS)
    assert out.size == (20, 40)
    pixels = np.asarray(out, np.int16)  # (H, W, 3)
    top, bottom = pixels[5, 10], pixels[35, 10]
    assert top[0] > 200  # the left (red) half is on top now
    assert top[2] < 60
    assert bottom[2] > 200
    assert bottom[0] < 60


def sketch_rgba() -> Image.Image:
    """Black square on a fully transparent (black!) background."""
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    img.paste((0, 0, 0, 255), (8, 8, 24, 24))
    return img


@pytest.mark.parametrize(
    ("img", "fmt"),
    [
        (sketch_rgba(), "PNG"),
        (sketch_rgba(), "WEBP"),
        (sketch_rgba(), "TIFF"),
        (sketch_rgba().convert("LA"), "PNG"),
        (sketch_rgba().convert("P"), "PNG"),  # palette with a transparent entry (tRNS)
    ],
)
def test_transparency_is_composited_on_white(img, fmt):
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = decode(save(img, fmt, **kw), **LIMITS)
    assert out.mode == "RGB"
    assert out.getpixel((1, 1)) == WHITE
    assert out.getpixel((16, 16)) == (0, 0, 0)


def test_grey_palette_bilevel_and_cmyk_become_rgb():
    base = two_halves(32, 16)
    for img, fmt in [
        (base.convert("L"), "PNG"),
        (base.convert("P"), "PNG"),
        (base.convert("1"), "BMP"),
        (base.convert("CMYK"), "JPEG"),
        (base.convert("CMYK"), "TIFF"),
    ]:
        out = decode(save(img, fmt), **LIMITS)
        assert (out.mode, out.size) == ("RGB", (32, 16)), (img.mode, fmt)


def test_16_bit_grey_is_scaled_not_clipped():
    ramp = np.array([[0, 257 * 64, 257 * 128, 65535]], dtype=np.uint16).repeat(4, axis=0)
    data = save(Image.fromarray(ramp), "PNG")
    out = np.asarray(decode(data, **LIMITS))
    assert out.shape == (4, 4, 3)
    assert out[0, :, 0].tolist() == [0, 64, 128, 255]


def test_broken_icc_profile_is_ignored():
    data = save(two_halves(), "PNG", icc_profile=b"not a profile")
    assert decode(data, **LIMITS).getpixel((0, 0)) == RED


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP"])
def test_multi_frame_files_give_the_first_frame(fmt):
    frames = [Image.new("RGB", (16, 16), c) for c in (RED, BLUE, (0, 255, 0))]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    data = save(frames[0], fmt, save_all=True, append_images=frames[1:], **kw)
    assert decode(data, **LIMITS).getpixel((8, 8)) == RED


def test_draft_decodes_big_jpegs_smaller_but_keeps_the_original_size():
    data = save(noise(1600, 1200), "JPEG")
    img, info = decode_with_info(data, **LIMITS, draft_size=256)
    assert info.display_size == (1600, 1200)
    assert 256 <= min(img.size) < 1200
    assert abs(img.size[0] / img.size[1] - 4 / 3) < 0.01
    assert decode(data, **LIMITS).size == (1600, 1200)


def test_to_array_shape_range_and_exact_inverse():
    img = noise(48, 32)
    x = images.to_array(img, (48, 32))  # (width, height) as PIL
    assert (x.shape, x.dtype, x.flags.c_contiguous) == ((3, 32, 48), np.float32, True)
    assert x.min() >= -1.0
    assert x.max() <= 1.0
    assert np.array_equal(np.asarray(images.from_array(x)), np.asarray(img))
    white = images.to_array(Image.new("RGB", (8, 8), WHITE), 4)
    black = images.to_array(Image.new("L", (8, 8), 0), 4)
    assert white.shape == (3, 4, 4)
    assert np.all(white == 1.0)
    assert np.all(black == -1.0)


def test_from_array_clips_rounds_and_checks_shape():
    arr = np.array([[[-3.0, np.nan, 0.0, 5.0]]] * 3, dtype=np.float32)  # (3, 1, 4)
    out = images.from_array(arr)
    assert (out.mode, out.size) == ("RGB", (4, 1))
    assert np.asarray(out)[0, :, 0].tolist() == [0, 128, 128, 255]
    with pytest.raises(ValueError, match="3, H, W"):
        images.from_array(np.zeros((32, 32, 3), np.float32))


def test_letterbox_pads_with_white_and_restore_aspect_undoes_it():
    img = Image.new("RGB", (200, 100), RED)
    x = images.to_array(img, 64, fit="letterbox")  # (3, 64, 64)
    assert images.letterbox_box((200, 100), (64, 64)) == (0, 16, 64, 48)
    assert np.all(x[:, :16] == 1.0)
    assert np.all(x[:, 48:] == 1.0)
    assert np.all(x[0, 16:48] == 1.0)
    assert np.all(x[1:, 16:48] == -1.0)
    out = images.from_array(x)
    back = images.restore_aspect(out, (200, 100), fit="letterbox")
    assert back.size == (64, 32)
    assert np.all(np.asarray(back)[1:-1] == RED)  # no white band left
    full = images.restore_aspect(out, (200, 100), fit="letterbox", scale_to_original=True)
    assert full.size == (200, 100)
    assert np.abs(np.asarray(full, np.int16) - np.asarray(img, np.int16)).mean() < 2


def test_restore_aspect_after_a_plain_resize():
    img = two_halves(300, 100)
    out = images.from_array(images.to_array(img, 96))  # squashed to 96x96
    assert images.restore_aspect(out, (300, 100), fit="resize").size == (96, 32)
    full = images.restore_aspect(out, (300, 100), fit="resize", scale_to_original=True)
    assert full.size == (300, 100)
    assert full.getpixel((10, 50)) == RED
    assert full.getpixel((290, 50)) == BLUE


@pytest.mark.parametrize(
    ("fmt", "pil", "media"),
    [
        ("png", "PNG", "image/png"),
        ("jpeg", "JPEG", "image/jpeg"),
        ("jpg", "JPEG", "image/jpeg"),
        ("webp", "WEBP", "image/webp"),
    ],
)
def test_encode_formats_and_media_types(fmt, pil, media):
    data = encode(noise(64, 48), fmt)
    with Image.open(io.BytesIO(data)) as img:
        assert (img.format, img.size, img.mode) == (pil, (64, 48), "RGB")
    assert images.MEDIA_TYPES[pil.lower()] == media
    assert pil.lower() in images.OUTPUT_FORMATS


def test_encode_quality_and_bad_arguments():
    img = noise(128, 128)
    assert len(encode(img, "jpeg", quality=30)) < len(encode(img, "jpeg", quality=95))
    assert encode(sketch_rgba(), "jpeg")[:2] == b"\xff\xd8"  # RGBA is flattened first
    for bad in ("gif", "bmp", ""):
        with pytest.raises(ValueError, match="png, jpeg or webp"):
            encode(img, bad)
    with pytest.raises(ValueError, match="quality"):
        encode(img, "webp", quality=0)


def test_image_error_kinds():
    assert {ImageError(k, "x").kind for k in IMAGE_ERROR_KINDS} == {
        "unreadable",
        "too_large",
        "unsupported_format",
    }
    for kind in ("teapot", ErrorKind.internal):
        with pytest.raises(ValueError, match=str(kind)):
            ImageError(kind, "x")
    assert {"PNG", "JPEG", "WEBP", "BMP", "TIFF"} == images.ALLOWED_FORMATS
