"""``POST /v1/generate``: seeded generation from a published generate model."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image

from shared.registry import Registry
from tests.integration import models

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def catdog(stack, model_root) -> str:  # type: ignore[no-untyped-def]
    models.publish_dcgan(Registry(model_root), "catdog-test")
    with httpx.Client(base_url=stack.base_url) as c:
        deadline = time.monotonic() + 30
        while c.get("/v1/models/catdog-test").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.3)
    return "catdog-test"


def test_same_seed_same_images_other_seed_other_images(client: httpx.Client, catdog: str) -> None:
    def gen(seed: int, n: int = 4, **extra: object) -> httpx.Response:
        r = client.post("/v1/generate", json={"model": catdog, "n": n, "seed": seed, **extra})
        assert r.status_code == 200, r.text
        return r

    first, again, other = gen(1), gen(1), gen(2)
    assert first.content == again.content
    assert first.content != other.content
    grid = Image.open(io.BytesIO(first.content))
    assert grid.size == (2 * 32 + 2, 2 * 32 + 2)  # 4 images in a 2x2 grid with gutters
    assert first.headers["x-model"] == catdog
    cats, dogs = gen(3, n=1, class_name="cat"), gen(3, n=1, class_name="dog")
    assert cats.content != dogs.content


def test_generate_rejects_bad_requests(client: httpx.Client, catdog: str) -> None:
    bad_class = client.post("/v1/generate", json={"model": catdog, "class_name": "horse"})
    assert bad_class.status_code == 422
    assert "cat" in bad_class.json()["detail"]
    wrong_task = client.post("/v1/generate", json={"model": "sketch2photo"})
    assert wrong_task.status_code == 422
    too_many = client.post("/v1/generate", json={"model": catdog, "n": 1000})
    assert too_many.status_code == 422
    unknown = client.post("/v1/generate", json={"model": "nope"})
    assert unknown.status_code == 404


def test_x_seed_reproduces_a_random_generation(client: httpx.Client, catdog: str) -> None:
    first = client.post("/v1/generate", json={"model": catdog, "n": 2})
    assert first.status_code == 200, first.text
    seed = int(first.headers["x-seed"])  # the API picked it: the request had none
    again = client.post("/v1/generate", json={"model": catdog, "n": 2, "seed": seed})
    assert again.headers["x-seed"] == str(seed)
    assert again.content == first.content
    queued = client.post("/v1/generate", params={"async": "true"}, json={"model": catdog})
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + 30
    while (result := client.get(f"/v1/jobs/{queued.json()['id']}/result")).status_code == 409:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert result.status_code == 200, result.text
    assert result.headers["x-seed"] == queued.headers["x-seed"]
    seed = int(result.headers["x-seed"])
    assert client.post("/v1/generate", json={"model": catdog, "seed": seed}).content == (
        result.content
    )
