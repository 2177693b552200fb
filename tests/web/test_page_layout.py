"""The web page at phone width, by keyboard, with touch and pen, adapting to the models the
service lists; and the files it is served with (favicon included)."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

from services.local import LocalStack
from tests.web.pages import assert_shown_result, draw_face, open_page, output_size, wait_result

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
MAIN_CONTROLS = [
    "#model",
    "label[for=src-draw]",
    "label[for=src-camera]",
    "#sketch",
    "label[for=tool-pen]",
    "#undo",
    "#clear",
    "#go",
]
# the accessible name a screen reader would give each focusable control (labels, aria-label)
NAME_JS = """() => {
  const el = document.activeElement;
  const fromLabels = [...(el.labels || [])].map((l) => l.textContent.trim()).join(" ");
  return (el.getAttribute("aria-label") || fromLabels || el.textContent || "").trim();
}"""


# the focused element's id, and the outline of what shows its focus (a hidden radio's label)
FOCUS_JS = """() => {
  const el = document.activeElement;
  const shown = el.matches(".segmented input, .visually-hidden") ? el.nextElementSibling : el;
  return [el.id, getComputedStyle(shown).outlineStyle];
}"""


def test_phone_width_shows_the_controls_without_sideways_scrolling(
    browser: Any, stack: LocalStack
) -> None:
    with open_page(browser, stack, **PHONE) as page:
        for selector in MAIN_CONTROLS:
            box = page.locator(selector).bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0, selector
            assert box["x"] + box["width"] <= 390, selector
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        draw_face(page)
        page.click("#go")
        wait_result(page)
        assert_shown_result(page, output_size(stack, "sketch2photo"))
        box = page.locator("#output").bounding_box()
        assert box is not None
        assert box["width"] >= 250
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 390
        assert page.evaluate("document.documentElement.scrollWidth") <= 390


def _ink(page: Any) -> int:
    return int(
        page.evaluate("""() => {
          const c = document.querySelector("#sketch");
          const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i] > 8) n++;
          return n;
        }""")
    )


def test_touch_and_pen_draw(browser: Any, stack: LocalStack) -> None:
    with open_page(browser, stack, **PHONE) as page:
        cdp = page.context.new_cdp_session(page)
        box = page.locator("#sketch").bounding_box()
        x, y, w = box["x"], box["y"], box["width"]
        assert _ink(page) == 0
        points = [(x + w * (0.2 + 0.03 * i), y + w * 0.3) for i in range(12)]
        for kind, (px, py) in zip(
            ["touchStart"] + ["touchMove"] * 10 + ["touchEnd"], points, strict=True
        ):
            touch = [] if kind == "touchEnd" else [{"x": px, "y": py}]
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch})
        touched = _ink(page)
        assert touched > 0
        assert page.evaluate("window.scrollY") == 0  # the stroke did not scroll the page

        def pen(kind: str, px: float, py: float, force: float) -> None:
            cdp.send(
                "Input.dispatchMouseEvent",
                {
                    "type": kind,
                    "x": px,
                    "y": py,
                    "button": "left",
                    "clickCount": 1,
                    "pointerType": "pen",
                    "force": force,
                },
            )

        pen("mousePressed", x + w * 0.2, y + w * 0.6, 0.2)
        for i in range(1, 11):
            pen("mouseMoved", x + w * (0.2 + 0.05 * i), y + w * 0.6, 0.1 * i)
        pen("mouseReleased", x + w * 0.7, y + w * 0.6, 0.0)
        assert _ink(page) > touched
        page.click("#undo")
        assert _ink(page) == touched


def test_keyboard_reaches_every_control_with_labels_and_visible_focus(
    browser: Any, stack: LocalStack
) -> None:
    with open_page(browser, stack) as page:
        seen: list[tuple[str, str, str]] = []
        for _ in range(24):
            page.keyboard.press("Tab")
            focused = page.evaluate(FOCUS_JS)
            seen.append((focused[0], page.evaluate(NAME_JS), focused[1]))
        ids = [s[0] for s in seen]
        order = ["model", "src-draw", "tool-pen", "width", "clear", "show-guide", "live", "go"]
        positions = [ids.index(i) for i in order]
        assert positions == sorted(positions), ids  # in reading order
        for element_id, name, outline in seen:
            if element_id in order:
                assert name, f"#{element_id} has no label"
                assert outline != "none", f"#{element_id} shows no focus"
        # arrow keys move between the input sources, and the upload tools appear
        page.focus("#src-draw")
        page.keyboard.press("ArrowRight")
        assert page.is_checked("#src-upload")
        assert page.is_visible("#file-label")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "file"


def test_controls_follow_the_listed_models(browser: Any, stack: LocalStack) -> None:
    """Models the test stack lacks (a styled photo→sketch, SketchyGAN, a VAE), listed by a
    stubbed GET /v1/models: each brings its own controls."""

    def model(name: str, task: str, **extra: Any) -> dict[str, Any]:
        image = {"kind": "image", "width": 128, "height": 128}
        return {
            "name": name,
            "version": 3,
            "task": task,
            "architecture": "unet",
            "recipe": "pix2pix",
            "input": dict(image),
            "output": image,
            "metrics": {},
            "description": f"{name} for the test",
            **extra,
        }

    listing = {
        "models": [
            model("sketch2photo", "sketch2photo"),
            model(
                "styled",
                "photo2sketch",
                input={"condition": "style", "condition_values": ["1", "2", "3"]},
            ),
            model("sketchy", "sketch2photo", architecture="sketchy", input={"noise_dim": 8}),
            model("faces-vae", "generate", input={"kind": "noise", "z_dim": 8}),
        ],
        "defaults": {"sketch2photo": "sketch2photo", "photo2sketch": "styled"},
    }
    context = browser.new_context()
    context.route("**/v1/models", lambda r: r.fulfill(json=listing))  # the API's own schema
    page = context.new_page()
    try:
        with page.expect_response("**/openapi.json"):
            page.goto(stack.base_url + "/")
        page.wait_for_selector("#model option[value=styled]", state="attached")
        groups = page.eval_on_selector_all("#model optgroup", "gs => gs.map(g => g.label)")
        assert groups == ["Drawing → photo", "Photo → drawing", "Generate from noise"]
        assert "styled v3" in page.inner_text("#model-info")  # auto names what it picks
        assert page.is_visible("#style-label")  # photos sent to auto go to a styled model
        page.select_option("#model", "styled")
        assert "version 3" in page.inner_text("#model-info")
        assert "styled for the test" in page.inner_text("#model-info")
        styles = page.eval_on_selector_all("#style option", "os => os.map(o => o.value)")
        assert styles == ["", "1", "2", "3"]
        assert page.is_hidden("#variations-label")
        page.select_option("#model", "sketchy")
        assert page.is_hidden("#style-label")
        assert page.is_visible("#variations-label")
        page.select_option("#model", "faces-vae")
        assert page.is_visible("#generate-tools")
        assert page.is_hidden("#class-label")
        assert page.is_hidden("#translate-options")
        assert page.inner_text("#go") == "Generate"
        page.select_option("#model", "sketch2photo")
        assert page.is_visible("#sketch")
        assert page.is_hidden("#generate-tools")
    finally:
        context.close()


def test_page_files_and_favicon_are_served(stack: LocalStack) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        page = client.get("/")
        assert page.headers["content-type"].startswith("text/html")
        for path in ("/web/app.js", "/web/app.css", "/web/favicon.svg"):
            assert path in page.text
            r = client.get(path)
            assert r.status_code == 200, path
            again = client.get(path, headers={"If-None-Match": r.headers["etag"]})
            assert again.status_code == 304
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200
        assert icon.headers["content-type"] == "image/x-icon"
        assert Image.open(io.BytesIO(icon.content)).format == "ICO"
        assert client.get("/web/nope.js").status_code == 404
        assert client.get("/web/..%2Fmain.py").status_code == 404
        assert "/web/{name}" not in client.get("/openapi.json").json()["paths"]
