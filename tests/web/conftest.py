"""Browser fixtures: Debian's chromium driven by Playwright (headless), with a fake camera,
and a small class-conditional generate model published into the test stack's model root."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.local import LocalStack
from shared.registry import Registry
from tests.helpers import publish_tiny_sketchy
from tests.integration.models import publish_dcgan

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # a synthetic camera (a moving test pattern) that needs no permission prompt
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
GENERATE_MODEL = "catdog-web"
NOISY_MODEL = "sketchy-web"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium); browser tests skipped")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def served(stack: LocalStack, name: str, publish: Callable[[], object], what: str) -> str:
    """``name``, published by ``publish`` unless the stack serves it already, once the stack's
    worker has loaded it (a minute at most)."""
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        if client.get(f"/v1/models/{name}").status_code != 200:
            publish()
        deadline = time.monotonic() + 60
        while client.get(f"/v1/models/{name}").status_code != 200:
            assert time.monotonic() < deadline, f"the worker did not load the {what}"
            time.sleep(0.3)
    return name


@pytest.fixture(scope="module")
def generate_model(stack: LocalStack, model_root: Path) -> str:
    """The cat/dog model above, served by the stack's worker."""
    return served(
        stack,
        GENERATE_MODEL,
        lambda: publish_dcgan(  # N(0, 0.2) weights: a test can tell its images from blanks
            Registry(model_root),
            GENERATE_MODEL,
            gain=0.2,
            description="Cats and dogs for the browser tests (untrained DCGAN)",
        ),
        "generate model",
    )


@pytest.fixture(scope="module")
def noisy_model(
    stack: LocalStack, model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A tiny SketchyGAN-shaped translator with noise (16x16), served by the stack's worker."""
    return served(
        stack,
        NOISY_MODEL,
        lambda: publish_tiny_sketchy(
            Registry(model_root), NOISY_MODEL, tmp_path_factory.mktemp("sketchy-web"), size=16
        ),
        "noisy model",
    )
