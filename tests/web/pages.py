"""Helpers for driving the web page: open it, draw on it, wait for and decode its result."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image, ImageStat

from services.local import LocalStack

RESULT_TIMEOUT_MS = 60_000

# the bytes of the image the page shows as its result or input, base64-encoded (the page's
# CSP, connect-src 'self', rightly keeps fetch() off its blob: URLs: read the Blob it holds)
SHOWN_BYTES_JS = """async (which) => {
  const blob = which === "input" ? state.input.blob : state.result.blob;
  const bytes = new Uint8Array(await blob.arrayBuffer());
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
}"""


@contextmanager
def open_page(browser: Any, stack: LocalStack, **context_args: Any) -> Iterator[Any]:
    """The page at ``/`` in a fresh context, its model list loaded. Fails on a script error
    or a request to anywhere but the service."""
    context = browser.new_context(**context_args)
    page = context.new_page()
    errors: list[str] = []
    hosts: set[str] = set()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: hosts.add(urlsplit(r.url).hostname or ""))
    try:
        page.goto(stack.base_url + "/")
        page.wait_for_selector("#model optgroup", state="attached", timeout=30_000)
        yield page
        assert errors == [], errors  # no uncaught script error along the way
        assert hosts <= {"127.0.0.1", ""}, hosts  # nothing asked of anywhere else (no CDN)
    finally:
        context.close()


def stroke(page: Any, points: list[tuple[float, float]]) -> None:
    """One mouse stroke through ``points`` (fractions of the drawing area)."""
    box = page.locator("#sketch").bounding_box()

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"]

    page.mouse.move(*at(points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*at(p), steps=2)
    page.mouse.up()


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 32) -> list[tuple[float, float]]:
    return [
        (cx + rx * math.cos(2 * math.pi * t / n), cy + ry * math.sin(2 * math.pi * t / n))
        for t in range(n + 1)
    ]


def draw_face(page: Any) -> None:
    """A simple face in black strokes: head, hair, brows, eyes, nose, mouth."""
    stroke(page, ellipse(0.5, 0.5, 0.26, 0.34, 40))
    hair = [
        (
            0.5 + 0.27 * math.cos(math.pi * (1 + t / 20)),
            0.4 + 0.3 * math.sin(math.pi * (1 + t / 20)),
        )
        for t in range(21)
    ]
    stroke(page, hair)
    for ex in (0.39, 0.61):
        stroke(page, [(ex - 0.06, 0.39), (ex, 0.375), (ex + 0.06, 0.39)])
        stroke(page, ellipse(ex, 0.45, 0.05, 0.02, 16))
    stroke(page, [(0.5, 0.48), (0.47, 0.59), (0.52, 0.6)])
    stroke(page, [(0.41 + 0.018 * t, 0.69 + 0.03 * math.sin(math.pi * t / 10)) for t in range(11)])


def wait_result(page: Any, previous: str | None = None) -> str:
    """Wait until the result pane shows a result of a job other than ``previous``; its job id."""
    page.wait_for_function(
        """(previous) => {
          const out = document.querySelector("#output");
          return !out.hidden && out.dataset.jobId && out.dataset.jobId !== previous &&
            out.complete && out.naturalWidth > 0;
        }""",
        arg=previous,
        timeout=RESULT_TIMEOUT_MS,
    )
    return str(page.get_attribute("#output", "data-job-id"))


def shown_bytes(page: Any, which: str = "result") -> bytes:
    """The bytes of the result (or the input) on show."""
    return base64.b64decode(page.evaluate(SHOWN_BYTES_JS, which))


def assert_real_image(data: bytes, size: tuple[int, int], min_std: float = 2.0) -> Image.Image:
    """``data`` decodes to an image of ``size`` whose pixels are not all (nearly) one value."""
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.size == size
    std = ImageStat.Stat(img.convert("L")).stddev[0]
    assert std > min_std, f"the image is blank (pixel std {std:.2f})"
    return img


def assert_shown_result(page: Any, size: tuple[int, int]) -> bytes:
    """The result on show: decoded by the browser and here, the right size, not blank."""
    natural = page.eval_on_selector("#output", "img => [img.naturalWidth, img.naturalHeight]")
    assert tuple(natural) == size
    data = shown_bytes(page)
    assert_real_image(data, size)
    return data


def output_size(stack: LocalStack, model: str) -> tuple[int, int]:
    info = httpx.get(f"{stack.base_url}/v1/models/{model}", timeout=10).json()
    return int(info["output"]["width"]), int(info["output"]["height"])


# record the image of each multipart request the page sends (window.sentImages)
RECORD_SENT_JS = """() => {
  const original = window.fetch;
  window.sentImages = [];
  window.fetch = (url, init) => {
    if (init?.body instanceof FormData) window.sentImages.push(init.body.get("image"));
    return original(url, init);
  };
}"""
SENT_IMAGE_JS = """async (i) => {
  const bytes = new Uint8Array(await window.sentImages.at(i).arrayBuffer());
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
}"""


def record_sent_images(page: Any) -> None:
    page.evaluate(RECORD_SENT_JS)


def sent_image(page: Any, index: int = -1) -> Image.Image:
    """An image the page sent (after record_sent_images), decoded."""
    img = Image.open(io.BytesIO(base64.b64decode(page.evaluate(SENT_IMAGE_JS, index))))
    img.load()
    return img
