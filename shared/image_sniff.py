"""Naming the formats people send that the service refuses, from their first bytes only
(identifying them with PIL would run every plugin's parser on hostile bytes)."""

from __future__ import annotations

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
