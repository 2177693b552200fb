"""``POST /v1/translate`` with ``n`` and ``seed`` through the running stack: a SketchyGAN-shaped
model with noise gives seeded variations as one grid; a model without noise refuses them."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from services.local import LocalStack
from shared.client import Sketch2ImageClient
from shared.registry import Registry
from tests.helpers import publish_tiny_sketchy, s2i_cli
from tests.images import sketch_png

pytestmark = pytest.mark.integration

SIDE = 16  # the tiny model's size: a 2x2 grid is 2 * 16 + 2 px wide


@pytest.fixture(scope="module")
def noisy(stack: LocalStack, model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    name = "sketchy-test"
    publish_tiny_sketchy(Registry(model_root), name, tmp_path_factory.mktemp("sketchy"), size=SIDE)
    with httpx.Client(base_url=stack.base_url) as c:
        deadline = time.monotonic() + 30
        while c.get(f"/v1/models/{name}").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.3)
    return name


def translate(client: httpx.Client, model: str, **fields: object) -> httpx.Response:
    data = {"model": model, **{k: str(v) for k, v in fields.items()}}
    return client.post("/v1/translate", files={"image": ("s.png", sketch_png(4))}, data=data)


def test_same_seed_same_grid_of_distinct_tiles_other_seed_other_grid(
    client: httpx.Client, noisy: str
) -> None:
    first, again, other = (translate(client, noisy, n=4, seed=s) for s in (7, 7, 8))
    for r in (first, again, other):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
    assert first.headers["x-seed"] == "7"
    assert first.content == again.content
    assert first.content != other.content
    sheet = np.asarray(Image.open(io.BytesIO(first.content)).convert("RGB"))
    assert sheet.shape == (2 * SIDE + 2, 2 * SIDE + 2, 3)  # 2x2, 2 px gutters
    step = SIDE + 2
    tiles = [sheet[r : r + SIDE, c : c + SIDE] for r in (0, step) for c in (0, step)]
    assert len({t.tobytes() for t in tiles}) == 4


def test_variations_without_a_seed_name_theirs(client: httpx.Client, noisy: str) -> None:
    picked = translate(client, noisy, n=2)
    assert picked.status_code == 200, picked.text
    seed = int(picked.headers["x-seed"])
    assert translate(client, noisy, n=2, seed=seed).content == picked.content
    mean = translate(client, noisy)  # one image, no seed: the noise's mean
    assert "x-seed" not in mean.headers
    assert Image.open(io.BytesIO(mean.content)).size == (SIDE, SIDE)
    assert translate(client, noisy).content == mean.content
    listed = client.get(f"/v1/models/{noisy}").json()
    assert listed["input"]["noise_dim"] == 8


def test_the_python_client_asks_for_variations_and_reads_their_seed(
    stack: LocalStack, noisy: str
) -> None:
    with Sketch2ImageClient(stack.base_url, timeout=60) as c:
        first = c.translate(sketch_png(4), model=noisy, n=4, seed=11)
        again = c.translate(sketch_png(4), model=noisy, n=4, seed=11)
        picked = c.translate(sketch_png(4), model=noisy, n=2)
    assert first.seed == 11
    assert first.image == again.image
    assert Image.open(io.BytesIO(first.image)).size == (2 * SIDE + 2, 2 * SIDE + 2)
    assert picked.seed is not None
    assert Image.open(io.BytesIO(picked.image)).size == (2 * SIDE + 2, SIDE)


def test_the_cli_writes_a_grid_of_variations_and_names_the_seed(
    stack: LocalStack, noisy: str, tmp_path: Path
) -> None:
    drawing = tmp_path / "drawing.png"
    drawing.write_bytes(sketch_png(4))
    out = tmp_path / "grid.png"
    args = ["--url", stack.base_url, "translate", str(drawing), "--model", noisy, "-o", str(out)]
    run = s2i_cli(*args, "-n", "4", "--seed", "11")
    assert run.returncode == 0, run.stderr
    assert f"({noisy} v1, seed 11, " in run.stdout
    with Image.open(out) as grid:
        assert grid.size == (2 * SIDE + 2, 2 * SIDE + 2)


def test_a_model_without_noise_answers_422_naming_the_field(client: httpx.Client) -> None:
    for field in ("n", "seed"):
        r = translate(client, "sketch2photo", **{field: 4})
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in r.json()["errors"]] == [field]


def test_openapi_documents_n_and_seed(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    props = spec["components"]["schemas"]["TranslateJSON"]["properties"]
    assert {"n", "seed"} <= set(props)
    assert props["n"]["maximum"] == 8
    headers = spec["paths"]["/v1/translate"]["post"]["responses"]["200"]["headers"]
    assert "X-Seed" in headers
