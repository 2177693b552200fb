"""The web page in a real browser (Debian chromium driven by Playwright) against the real stack."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.local import LocalStack
from tests.images import photo_png, sketch_png

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.mark.parametrize(
    ("image", "expected_model", "routed"),
    [(sketch_png, "sketch2photo", "drawing"), (photo_png, "photo2sketch", "photo")],
    ids=["sketch", "photo"],
)
def test_upload_translates_and_shows_the_chosen_direction(  # type: ignore[no-untyped-def]
    browser, stack: LocalStack, tmp_path: Path, image, expected_model: str, routed: str
) -> None:
    path = tmp_path / "input.png"
    path.write_bytes(image(6))
    page = browser.new_page()
    try:
        page.goto(stack.base_url + "/")
        assert page.title() == "sketch2image"
        page.wait_for_selector(f"#model option[value='{expected_model}']", state="attached")
        page.set_input_files("#file", str(path))
        page.click("#go")
        page.wait_for_selector("#output:not([hidden])", timeout=60_000)
        caption = page.inner_text("#result-caption")
        assert caption.startswith(f"{expected_model} v")
        assert f"auto: {routed}" in caption
        natural_width = page.eval_on_selector("#output", "img => img.naturalWidth")
        assert natural_width > 0  # a real image was decoded by the browser
        assert "Done in" in page.inner_text("#status")
        page.screenshot(path=str(tmp_path / "page.png"))
    finally:
        page.close()


def test_error_is_shown_to_the_user(browser, stack: LocalStack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    page = browser.new_page()
    try:
        page.goto(stack.base_url + "/")
        page.set_input_files("#file", str(path))
        page.click("#go")
        page.wait_for_selector("#status.error", timeout=30_000)
        assert "not supported" in page.inner_text("#status")
    finally:
        page.close()
