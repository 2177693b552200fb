"""The README's screenshots of the web page: ``python scripts/page_screenshots.py``.

Starts the service on this machine with the bundled face models (in a temporary folder; or
uses ``--url`` of one already running), draws a face on the page in Debian's Chromium through
Playwright, translates it, and saves ``docs/images/page-desktop.png`` and
``docs/images/page-phone.png``.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.local import LocalStack, free_port  # noqa: E402

log = logging.getLogger("page_screenshots")
Stroke = list[tuple[float, float]]


def arc(
    cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 24
) -> Stroke:
    """Points on an ellipse from angle ``start`` to ``end`` (degrees, y down)."""
    return [
        (
            cx + rx * math.cos(math.radians(start + (end - start) * i / n)),
            cy + ry * math.sin(math.radians(start + (end - start) * i / n)),
        )
        for i in range(n + 1)
    ]


def face() -> list[tuple[Stroke, int]]:
    """A portrait in the FS2K manner: (stroke, width) in fractions of the drawing area."""
    strokes: list[tuple[Stroke, int]] = [
        (arc(0.5, 0.5, 0.19, 0.29, 170, 10, 40)[::-1], 3),  # jaw and chin
        (arc(0.5, 0.43, 0.26, 0.33, 180, 360, 40), 4),  # hair, outer
        ([(0.45, 0.78), (0.45, 0.93)], 3),  # neck
        ([(0.55, 0.78), (0.55, 0.93)], 3),
        ([(0.45, 0.93), (0.3, 0.96), (0.15, 1.0)], 3),  # shoulders
        ([(0.55, 0.93), (0.7, 0.96), (0.85, 1.0)], 3),
    ]
    for i in range(9):  # hair strands, parted in the middle, down both sides
        t = i / 8
        for side in (-1, 1):
            top = (0.5 + side * 0.02, 0.13 + 0.02 * t)
            temple = (0.5 + side * (0.12 + 0.1 * t), 0.2 + 0.06 * t)
            cheek = (0.5 + side * (0.2 + 0.06 * t), 0.45 + 0.05 * t)
            end = (0.5 + side * (0.21 + 0.06 * t), 0.72 + 0.1 * t)
            strokes.append(([top, temple, cheek, end], 2))
    for side in (-1, 1):
        ex = 0.5 + side * 0.085
        strokes += [
            (arc(ex, 0.415, 0.065, 0.03, 200, 340), 5),  # brow
            (arc(ex, 0.465, 0.045, 0.022, 180, 360), 3),  # upper lid
            (arc(ex, 0.462, 0.043, 0.015, 0, 180), 2),  # lower lid
            (arc(ex, 0.462, 0.011, 0.011, 0, 360, 12), 6),  # iris
        ]
    strokes += [
        ([(0.485, 0.47), (0.475, 0.56), (0.465, 0.6)], 2),  # nose
        (arc(0.5, 0.6, 0.04, 0.02, 160, 20, 12)[::-1], 2),
        ([(0.44, 0.68), (0.47, 0.665), (0.5, 0.672), (0.53, 0.665), (0.56, 0.68)], 3),  # lips
        ([(0.44, 0.68), (0.5, 0.685), (0.56, 0.68)], 2),
        (arc(0.5, 0.68, 0.06, 0.03, 10, 170, 12), 3),
    ]
    return strokes


def set_width(page: Any, width: int) -> None:
    page.eval_on_selector(
        "#width", "(el, w) => { el.value = w; el.dispatchEvent(new Event('input')); }", width
    )


def draw(page: Any, strokes: list[tuple[Stroke, int]]) -> None:
    box = page.locator("#sketch").bounding_box()
    for points, width in strokes:
        set_width(page, width)
        xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
        page.mouse.move(*xy[0])
        page.mouse.down()
        for p in xy[1:]:
            page.mouse.move(*p, steps=3)
        page.mouse.up()
    set_width(page, 4)


def shoot(browser: Any, url: str, out: Path, viewport: dict[str, int], **context: Any) -> None:
    page = browser.new_context(viewport=viewport, color_scheme="light", **context).new_page()
    page.goto(url)
    page.wait_for_selector("#model optgroup", state="attached", timeout=60_000)
    draw(page, face())
    page.click("#go")
    page.wait_for_selector("#output:not([hidden])", timeout=60_000)
    page.wait_for_timeout(300)
    page.mouse.move(0, 0)
    page.screenshot(path=str(out), full_page=True)
    log.info("wrote %s", out)
    page.context.close()


@contextmanager
def service(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        var = Path(tmp)
        stack = LocalStack(
            var_dir=var,
            api_port=free_port(),
            trainer=False,
            env={"S2I_MODEL_ROOT": str(var / "models")},
        )
        try:
            stack.start()
            stack.wait_ready()
            yield stack.base_url + "/"
        finally:
            stack.stop()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running service's page (default: start one)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        log.error("no Chromium found (Debian: apt-get install chromium)")
        return 1
    from playwright.sync_api import sync_playwright

    with service(args.url) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        shoot(browser, url, args.out / "page-desktop.png", {"width": 1000, "height": 900})
        shoot(
            browser,
            url,
            args.out / "page-phone.png",
            {"width": 390, "height": 844},
            is_mobile=True,
            has_touch=True,
        )
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
