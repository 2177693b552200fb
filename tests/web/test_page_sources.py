"""The web page's other inputs: a camera snapshot (Chromium's fake camera) and the generate
models (a cat/dog DCGAN published for the test), in a real browser against the real stack."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image, ImageStat

from services.local import LocalStack
from tests.web.pages import (
    assert_real_image,
    assert_shown_result,
    open_page,
    shown_bytes,
    wait_result,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# getUserMedia failing the way browsers fail it
FAIL_CAMERA_JS = """(name) => {
  navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("no", name));
}"""


def test_camera_snapshot_is_translated(browser: Any, stack: LocalStack) -> None:
    with open_page(browser, stack, permissions=["camera"]) as page:
        page.click("label[for=src-camera]")
        assert "Camera is off" in page.inner_text("#input-placeholder")
        page.click("#camera-start")
        page.wait_for_selector("#snap:enabled", timeout=30_000)
        assert page.is_visible("#video")
        page.wait_for_function("() => document.querySelector('#video').currentTime > 0.2")
        frame = page.eval_on_selector("#video", "v => [v.videoWidth, v.videoHeight]")
        page.click("#snap")
        wait_result(page)
        # a square from the middle of the fake camera's frame, shown as the input
        side = min(*frame, 768)
        shape = page.eval_on_selector("#input", "img => [img.naturalWidth, img.naturalHeight]")
        assert shape == [side, side]
        assert_real_image(shown_bytes(page, "input"), (side, side))
        assert page.is_hidden("#video")  # the camera is off again after the picture
        assert page.inner_text("#camera-start") == "Retake"
        model = page.inner_text("#result-caption").split(" v", 1)[0]
        info = httpx.get(f"{stack.base_url}/v1/models/{model}", timeout=10).json()
        assert_shown_result(page, (info["output"]["width"], info["output"]["height"]))


@pytest.mark.parametrize(
    ("error", "words"),
    [("NotAllowedError", "Camera access was denied"), ("NotFoundError", "No camera was found")],
    ids=["denied", "no-camera"],
)
def test_camera_problems_are_explained(
    browser: Any, stack: LocalStack, error: str, words: str
) -> None:
    with open_page(browser, stack) as page:
        page.evaluate(FAIL_CAMERA_JS, error)
        page.click("label[for=src-camera]")
        page.click("#camera-start")
        page.wait_for_selector("#camera-message.error")
        assert words in page.inner_text("#camera-message")
        assert page.is_disabled("#snap")
        assert page.is_hidden("#video")


def test_generate_model_makes_cats_and_dogs(
    browser: Any, stack: LocalStack, generate_model: str
) -> None:
    with open_page(browser, stack) as page:
        page.wait_for_selector(f"#model option[value='{generate_model}']", state="attached")
        group = page.eval_on_selector(
            f"#model option[value='{generate_model}']", "o => o.parentElement.label"
        )
        assert group == "Generate from noise"
        page.select_option("#model", generate_model)
        # the controls follow the model: generate settings instead of a drawing area
        assert page.is_visible("#generate-tools")
        assert page.is_hidden("#stage")
        assert page.is_hidden("#sources")
        assert page.inner_text("#go") == "Generate"
        assert "version 1" in page.inner_text("#model-info")
        classes = page.eval_on_selector_all("#class-name option", "os => os.map(o => o.value)")
        assert classes == ["", "cat", "dog"]
        page.select_option("#class-name", "dog")
        page.select_option("#count", "4")
        page.fill("#seed", "7")
        page.click("#go")
        wait_result(page)
        shown = assert_shown_result(page, (2 * 32 + 2, 2 * 32 + 2))  # 4 tiles, 2 px gutters
        for i in range(4):  # each tile an image, not a flat colour
            x, y = (i % 2) * 34, (i // 2) * 34
            tile = Image.open(io.BytesIO(shown)).crop((x, y, x + 32, y + 32)).convert("L")
            assert ImageStat.Stat(tile).stddev[0] > 2
        assert "seed 7" in page.inner_text("#result-caption")
        same = httpx.post(
            f"{stack.base_url}/v1/generate",
            json={"model": generate_model, "n": 4, "seed": 7, "class_name": "dog"},
            timeout=30,
        )
        assert same.status_code == 200
        assert same.content == shown

        # a random seed is reported, and the history brings the first grid back
        page.fill("#seed", "")
        page.select_option("#count", "1")
        page.click("#go")
        wait_result(page, previous=page.get_attribute("#output", "data-job-id"))
        assert_shown_result(page, (32, 32))
        assert "came from seed" in page.inner_text("#seed-hint")
        page.locator("#history button").nth(1).click()
        assert shown_bytes(page) == shown
        assert page.input_value("#seed") == "7"
        assert page.input_value("#count") == "4"
