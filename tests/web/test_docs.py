"""/docs and /redoc in a real browser with every request off this machine blocked."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from services.local import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _offline_page(browser, blocked: list[str]):  # type: ignore[no-untyped-def]
    """A page whose requests to anything but loopback are aborted (and recorded)."""
    page = browser.new_page()

    def route(r) -> None:  # type: ignore[no-untyped-def]
        host = urlsplit(r.request.url).hostname or ""
        if host in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return page


def test_swagger_ui_shows_every_endpoint_offline(browser, stack: LocalStack) -> None:  # type: ignore[no-untyped-def]
    paths = httpx.get(stack.base_url + "/openapi.json").json()["paths"]
    blocked: list[str] = []
    page = _offline_page(browser, blocked)
    try:
        page.goto(stack.base_url + "/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        shown = {
            el.get_attribute("data-path") or el.inner_text()
            for el in page.query_selector_all(".opblock-summary-path")
        }
        assert {p.replace("\u200b", "") for p in shown} >= set(paths)
        assert blocked == []  # nothing was even asked of the outside
    finally:
        page.close()


def test_redoc_renders_offline(browser, stack: LocalStack) -> None:  # type: ignore[no-untyped-def]
    blocked: list[str] = []
    page = _offline_page(browser, blocked)
    try:
        page.goto(stack.base_url + "/redoc")
        title = "text=Translate a sketch to a photo"
        page.wait_for_selector(title, state="attached", timeout=30_000)
        assert "/v1/translate" in page.inner_text("body")
        # ReDoc's bundle links its own "powered by" badge from its CDN; nothing else leaves
        assert [u for u in blocked if not u.endswith("/logo-mini.svg")] == []
    finally:
        page.close()
