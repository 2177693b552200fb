"""The web page in a real browser (Debian chromium driven by Playwright) against the real stack:
draw, upload, drop, paste, errors and download."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageStat

from services.local import LocalStack
from tests.images import photo_png, sketch_png
from tests.web.pages import (
    assert_real_image,
    assert_shown_result,
    draw_face,
    open_page,
    output_size,
    record_sent_images,
    sent_image,
    shown_bytes,
    stroke,
    wait_result,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# a File dropped on, or pasted into, the page (DataTransfer made in the page itself)
DISPATCH_FILE_JS = """([kind, b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "image/png" }));
  const event = kind === "drop"
    ? new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true })
    : new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true });
  document.querySelector(kind === "drop" ? "#stage" : "body").dispatchEvent(event);
}"""


def test_drawing_strokes_translate_to_a_photo(browser: Any, stack: LocalStack) -> None:
    with open_page(browser, stack) as page:
        assert page.title() == "sketch2image"
        record_sent_images(page)
        draw_face(page)
        assert page.is_enabled("#undo")
        page.click("#go")
        job_id = wait_result(page)
        # the drawing went out as black strokes on white: the bluish face guide stays out
        drawing = sent_image(page).convert("RGB")
        assert drawing.size == (512, 512)
        assert drawing.getextrema()[0][0] < 64  # dark strokes
        saturation = drawing.convert("HSV").getextrema()[1][1]
        assert saturation < 12, "the face guide (a colour) was sent with the drawing"
        assert_shown_result(page, output_size(stack, "sketch2photo"))
        caption = page.inner_text("#result-caption")
        assert caption.startswith("sketch2photo v")
        assert "auto: drawing" in caption
        assert "Done in" in page.inner_text("#status")
        assert page.locator("#history img").count() == 1

        # undo takes the last stroke off, redo puts it back, clear empties (and is undoable)
        def ink() -> float:
            url = page.evaluate("document.querySelector('#sketch').toDataURL()")
            return sum(ImageStat.Stat(_decode_data_url(url)).sum)

        drawn = ink()
        page.click("#undo")
        assert ink() < drawn
        page.click("#redo")
        assert ink() == drawn
        page.click("#clear")
        assert ink() == 0
        page.keyboard.press("Control+z")
        assert ink() == drawn
        assert page.get_attribute("#output", "data-job-id") == job_id


def test_live_mode_translates_after_each_stroke(browser: Any, stack: LocalStack) -> None:
    with open_page(browser, stack) as page:
        page.check("#live")
        stroke(page, [(0.3, 0.3), (0.5, 0.6), (0.7, 0.3)])
        first = wait_result(page)  # no button pressed
        stroke(page, [(0.3, 0.8), (0.7, 0.8)])
        wait_result(page, previous=first)
        assert_shown_result(page, output_size(stack, "sketch2photo"))
        assert page.locator("#history img").count() == 1  # one entry per live drawing


@pytest.mark.parametrize(
    ("image", "expected_model", "routed"),
    [(sketch_png, "sketch2photo", "drawing"), (photo_png, "photo2sketch", "photo")],
    ids=["sketch", "photo"],
)
def test_upload_translates_in_the_chosen_direction(
    browser: Any, stack: LocalStack, tmp_path: Path, image: Any, expected_model: str, routed: str
) -> None:
    path = tmp_path / "input.png"
    path.write_bytes(image(6))
    with open_page(browser, stack) as page:
        page.click("label[for=src-upload]")
        page.set_input_files("#file", str(path))  # choosing a file translates it
        wait_result(page)
        assert page.is_visible("#input")
        caption = page.inner_text("#result-caption")
        assert caption.startswith(f"{expected_model} v")
        assert f"auto: {routed}" in caption
        assert_shown_result(page, output_size(stack, expected_model))


def test_dropped_and_pasted_images_are_translated(browser: Any, stack: LocalStack) -> None:
    b64 = base64.b64encode(sketch_png(2)).decode()
    with open_page(browser, stack) as page:
        page.evaluate(DISPATCH_FILE_JS, ["drop", b64, "dropped.png"])
        dropped = wait_result(page)
        assert page.is_checked("#src-upload")  # the page switched to the upload source
        assert_shown_result(page, output_size(stack, "sketch2photo"))
        page.evaluate(DISPATCH_FILE_JS, ["paste", b64, "pasted.png"])
        wait_result(page, previous=dropped)
        assert_shown_result(page, output_size(stack, "sketch2photo"))
        assert page.locator("#history img").count() == 2


def _broken_png() -> bytes:
    data = sketch_png(3)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("notes.txt", b"not an image at all", "not an image the service can read"),
        ("broken.png", _broken_png(), "could not be read as an image"),
    ],
    ids=["text", "truncated"],
)
def test_unreadable_upload_is_explained_and_stale_panes_cleared(
    browser: Any, stack: LocalStack, tmp_path: Path, name: str, content: bytes, words: str
) -> None:
    good, bad = tmp_path / "good.png", tmp_path / name
    good.write_bytes(sketch_png(4))
    bad.write_bytes(content)
    with open_page(browser, stack) as page:
        page.click("label[for=src-upload]")
        page.set_input_files("#file", str(good))
        wait_result(page)
        assert_shown_result(page, output_size(stack, "sketch2photo"))  # the earlier result
        page.set_input_files("#file", str(bad))
        page.wait_for_selector("#error:not([hidden])", timeout=30_000)
        assert words in page.inner_text("#error")
        assert "Details:" in page.inner_text("#error")  # the API's own detail, too
        # neither the earlier result nor a broken image stays up
        assert page.is_hidden("#output")
        assert page.is_hidden("#input")
        assert page.get_attribute("#download", "aria-disabled") == "true"
        assert page.is_visible("#input-placeholder")
        assert "Drop an image" in page.inner_text("#input-placeholder")


def test_variations_of_a_noisy_model_come_back_as_one_grid_repeatable_by_seed(
    browser: Any, stack: LocalStack, noisy_model: str
) -> None:
    with open_page(browser, stack) as page:
        page.select_option("#model", noisy_model)
        assert page.is_visible("#variations-label")
        draw_face(page)
        page.select_option("#variations", "4")
        page.fill("#variation-seed", "7")
        page.click("#go")
        first_job = wait_result(page)
        first = assert_shown_result(page, (2 * 16 + 2, 2 * 16 + 2))  # 2x2 tiles, 2 px gutters
        assert "seed 7" in page.inner_text("#result-caption")  # X-Seed: the seed went out
        page.click("#go")
        second_job = wait_result(page, first_job)
        assert shown_bytes(page) == first  # the same seed: the same four images
        page.fill("#variation-seed", "8")
        page.click("#go")
        wait_result(page, second_job)
        assert shown_bytes(page) != first


def test_download_gives_the_result_bytes(browser: Any, stack: LocalStack) -> None:
    with open_page(browser, stack, accept_downloads=True) as page:
        draw_face(page)
        page.click("#go")
        job_id = wait_result(page)
        shown = assert_shown_result(page, output_size(stack, "sketch2photo"))
        with page.expect_download() as download:
            page.click("#download")
        saved = Path(download.value.path()).read_bytes()
        assert download.value.suggested_filename.startswith("sketch2photo-v")
        assert saved == shown
        from_api = httpx.get(f"{stack.base_url}/v1/jobs/{job_id}/result", timeout=10)
        assert saved == from_api.content
        assert_real_image(saved, output_size(stack, "sketch2photo"))


def test_cancel_stops_a_request_in_flight(browser: Any, stack: LocalStack) -> None:
    held: list[Any] = []
    with open_page(browser, stack) as page:
        page.route(
            "**/v1/translate*", lambda route: held.append(route)
        )  # the request never gets an answer
        draw_face(page)
        page.click("#go")
        page.wait_for_selector("#progress:not([hidden])")
        page.click("#cancel")
        page.wait_for_selector("#progress", state="hidden")
        assert "Canceled" in page.inner_text("#status")
        assert page.is_hidden("#output")
        assert page.is_hidden("#error")
        page.unroute("**/v1/translate*")
        page.click("#go")  # and the next one goes through
        wait_result(page)
        assert_shown_result(page, output_size(stack, "sketch2photo"))


def _decode_data_url(url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
