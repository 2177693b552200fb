"""Image memory stays bounded whatever arrives: the pixel budget, early reduction of large
images, and truncated JPEGs refused from their length."""

from __future__ import annotations

import io
import random
import subprocess
import sys
import threading
import time

import pytest
from PIL import Image, ImageDraw

from shared import images
from shared.decode_budget import PixelBudget
from shared.errors import ErrorKind

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 40_000_000}


def png(size: tuple[int, int], mode: str = "L") -> bytes:
    img = Image.new(mode, size, "white")
    ImageDraw.Draw(img).ellipse((10, 10, size[0] - 10, size[1] - 10), outline="black", width=9)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def test_the_budget_never_holds_more_than_its_capacity() -> None:
    budget = PixelBudget(100)
    seen: list[int] = []

    def work(pixels: int) -> None:
        with budget.hold(pixels):
            seen.append(budget.in_use)
            time.sleep(0.002)

    rng = random.Random(0)
    threads = [threading.Thread(target=work, args=(rng.randint(1, 150),)) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seen) == 40  # everything ran, even requests larger than the capacity
    assert max(seen) <= 100
    assert budget.peak <= 100
    assert budget.in_use == 0


def test_a_large_image_comes_back_reduced_with_its_true_size_in_the_info() -> None:
    data = png((4000, 3000))
    img, info = images.decode_with_info(data, draft_size=256, **LIMITS)
    assert min(img.size) >= 256
    assert img.size[0] < 4000
    assert img.size[0] / img.size[1] == pytest.approx(4 / 3, rel=0.01)
    assert info.display_size == (4000, 3000)
    assert images.decode(data, **LIMITS).size == (4000, 3000)  # no draft size: full size


def test_small_images_are_not_reduced() -> None:
    img, _ = images.decode_with_info(png((900, 700)), draft_size=128, **LIMITS)
    assert img.size == (900, 700)


def jpeg(size: tuple[int, int], **options: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 190, 180)).save(buf, "JPEG", **options)
    return buf.getvalue()


@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_too_short_for_its_header_is_refused_as_truncated(progressive: bool) -> None:
    full = jpeg((6000, 6000), quality=50, progressive=progressive)
    cut = full[:5000] + b"\xff\xd9"  # the end marker makes libjpeg fill the rest with grey
    with pytest.raises(images.ImageError) as caught:
        images.decode(cut, **LIMITS)
    assert caught.value.kind is ErrorKind.unreadable
    assert "truncated" in str(caught.value)
    with pytest.raises(images.ImageError):
        images.probe(cut, max_bytes=LIMITS["max_bytes"], max_pixels=LIMITS["max_pixels"])


@pytest.mark.parametrize("progressive", [False, True])
def test_the_smallest_honest_jpeg_still_decodes(progressive: bool) -> None:
    data = jpeg((6000, 6000), quality=90, progressive=progressive, optimize=True)  # 1 colour
    img = images.decode(data, draft_size=256, **LIMITS)
    assert img.getpixel((10, 10)) == pytest.approx((200, 190, 180), abs=3)


MEMORY_SCRIPT = """
import os
from concurrent.futures import ThreadPoolExecutor
from benchmarks.common import memory_mb
from shared import images
from tests.shared.test_decode_budget import LIMITS, png

data = png((6300, 6300))  # 39.7 megapixels, under the 40 Mpx limit, about 80 KB
base = memory_mb(os.getpid(), "VmRSS")
decode = lambda d: images.decode_with_info(d, draft_size=256, **LIMITS)[0].size
with ThreadPoolExecutor(10) as pool:
    sizes = list(pool.map(decode, [data] * 10))
assert all(min(s) >= 256 for s in sizes), sizes
print(round(memory_mb(os.getpid(), "VmHWM") - base))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ten_huge_images_decoded_at_once_stay_within_the_stated_memory() -> None:
    run = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    growth_mb = int(run.stdout.split()[-1])
    # one 40 Mpx grey image in flight at a time (the 48 Mpx budget), reduced before RGB:
    # about 40 MB; without the budget and the reduction this was 1,725 MB
    assert growth_mb < 100
