"""Images the tests send: synthetic sketches and photos, and broken files."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from services.trainer.data.synthetic import make_pair, pair_rng


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def sketch_png(index: int = 0, size: int = 128) -> bytes:
    return png(make_pair(pair_rng(7, index, "test"), size)[0])


def photo_png(index: int = 0, size: int = 128) -> bytes:
    return png(make_pair(pair_rng(7, index, "test"), size)[1])


def huge_header_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
