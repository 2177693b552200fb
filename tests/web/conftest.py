"""Browser fixtures: Debian's chromium driven by Playwright (headless), with a fake camera,
and a small class-conditional generate model published into the test stack's model root."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def generate_model(stack: LocalStack, model_root: Path) -> str:
    """The cat/dog model above, served by the stack's worker."""
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        if client.get(f"/v1/models/{GENERATE_MODEL}").status_code != 200:
            publish_dcgan(  # N(0, 0.2) weights: a test can tell its images from blanks
                Registry(model_root),
                GENERATE_MODEL,
                gain=0.2,
                description="Cats and dogs for the browser tests (untrained DCGAN)",
            )
        deadline = time.monotonic() + 60
        while client.get(f"/v1/models/{GENERATE_MODEL}").status_code != 200:
            assert time.monotonic() < deadline, "the worker did not load the generate model"
            time.sleep(0.3)
    return GENERATE_MODEL


@pytest.fixture(scope="module")
def noisy_model(
    stack: LocalStack, model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A tiny SketchyGAN-shaped translator with noise (16x16), served by the stack's worker."""
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        if client.get(f"/v1/models/{NOISY_MODEL}").status_code != 200:
            work = tmp_path_factory.mktemp("sketchy-web")
            publish_tiny_sketchy(Registry(model_root), NOISY_MODEL, work, size=16)
        deadline = time.monotonic() + 60
        while client.get(f"/v1/models/{NOISY_MODEL}").status_code != 200:
            assert time.monotonic() < deadline, "the worker did not load the noisy model"
            time.sleep(0.3)
    return NOISY_MODEL
