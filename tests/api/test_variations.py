"""``n`` and ``seed`` of ``POST /v1/translate``: variations for models with noise, 422 naming
the field for models without, a random seed sent back in ``X-Seed`` (real Redis, no worker
consuming the queue: the jobs are read back as the API stored them)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from redis import Redis

from services.api.schemas import SEED_LIMIT
from shared.jobs import JobRecord, job_key, worker_key
from tests.api.test_admission import make_client
from tests.api.test_openapi import schema_of
from tests.api.test_problems import invalid_fields
from tests.images import sketch_png

NOISY, PLAIN = "sketchy", "sketch2photo"


def served(name: str, noise_dim: int) -> dict[str, Any]:
    return {
        "name": name,
        "version": 1,
        "task": "sketch2photo",
        "architecture": "sketchy" if noise_dim else "unet",
        "recipe": "sketchygan" if noise_dim else "pix2pix",
        "input": {"height": 64, "width": 64, "channels": 3 + (noise_dim > 0)}
        | ({"noise_dim": noise_dim} if noise_dim else {}),
        "available_versions": [1],
    }


@pytest.fixture
def beat(redis_db: Redis) -> None:
    """A live worker (never consuming) serving a model with noise and one without."""
    models = {NOISY: served(NOISY, 256), PLAIN: served(PLAIN, 0)}
    redis_db.set(worker_key("idle"), json.dumps({"worker": "idle", "models": models}), ex=60)


@pytest.fixture
def api(redis_url: str, redis_db: Redis, beat: None) -> Iterator[TestClient]:
    with make_client(redis_url) as client:
        yield client


def post(api: TestClient, how: str = "form", **fields: Any) -> Response:
    """An async translate of a drawing with ``fields`` as form fields, JSON or query."""
    image = sketch_png()
    if how == "json":
        body = {"image": base64.b64encode(image).decode(), **fields}
        return api.post("/v1/translate", params={"async": "true"}, json=body)
    params = {"async": "true"} | ({k: str(v) for k, v in fields.items()} if how == "query" else {})
    data = {k: str(v) for k, v in fields.items()} if how == "form" else {}
    return api.post("/v1/translate", params=params, files={"image": ("s.png", image)}, data=data)


def stored(redis: Redis, r: Response) -> JobRecord:
    assert r.status_code == 202, r.text
    return JobRecord.from_redis(redis.hgetall(job_key(r.json()["id"])))


@pytest.mark.parametrize("how", ["form", "json", "query"])
def test_variations_without_a_seed_get_a_random_one_in_x_seed(
    api: TestClient, redis_db: Redis, how: str
) -> None:
    r = post(api, how, model=NOISY, n=4)
    job = stored(redis_db, r)
    assert job.n == 4
    assert job.seed is not None
    assert 0 <= job.seed < SEED_LIMIT
    assert r.headers["x-seed"] == str(job.seed)
    given = post(api, how, model=NOISY, n=4, seed=7)
    assert (stored(redis_db, given).seed, given.headers["x-seed"]) == (7, "7")


def test_one_image_without_a_seed_stays_at_the_noise_mean(api: TestClient, redis_db: Redis) -> None:
    r = post(api, model=NOISY)
    job = stored(redis_db, r)
    assert (job.n, job.seed) == (1, None)
    assert "x-seed" not in r.headers
    seeded = post(api, model=NOISY, seed=3)
    assert (stored(redis_db, seeded).seed, seeded.headers["x-seed"]) == (3, "3")


@pytest.mark.parametrize("how", ["form", "json", "query"])
@pytest.mark.parametrize("field", ["n", "seed"])
def test_a_model_without_noise_answers_422_naming_the_field(
    api: TestClient, how: str, field: str
) -> None:
    r = post(api, how, model=PLAIN, **{field: 2})
    assert r.headers["content-type"] == "application/problem+json"
    assert invalid_fields(r) == [field]
    assert "takes no noise" in r.json()["detail"]


def test_auto_drops_a_seed_for_a_model_without_noise_but_not_n(
    api: TestClient, redis_db: Redis
) -> None:
    r = post(api, seed=5)  # a drawing: auto routes it to sketch2photo, which has no noise
    job = stored(redis_db, r)
    assert (job.model, job.n, job.seed) == (PLAIN, 1, None)
    assert "x-seed" not in r.headers
    assert invalid_fields(post(api, n=2)) == ["n"]


def test_auto_gives_variations_when_it_routes_to_a_model_with_noise(
    redis_url: str, redis_db: Redis, beat: None
) -> None:
    with make_client(redis_url, default_sketch2photo_model=NOISY) as client:
        r = post(client, n=4)
    job = stored(redis_db, r)
    assert (job.model, job.n) == (NOISY, 4)
    assert r.headers["x-seed"] == str(job.seed)


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"n": 0}, "n"), ({"n": 9}, "n"), ({"seed": -1}, "seed"), ({"seed": SEED_LIMIT}, "seed")],
)
def test_bounds(api: TestClient, fields: dict[str, int], field: str) -> None:
    assert invalid_fields(post(api, "json", model=NOISY, **fields)) == [field]
    assert invalid_fields(post(api, "form", model=NOISY, **fields)) == [field]


def test_json_true_is_not_a_number(api: TestClient) -> None:
    assert invalid_fields(post(api, "json", model=NOISY, n=True)) == ["n"]


def test_openapi_documents_n_seed_and_x_seed() -> None:
    spec = schema_of()
    body = spec["components"]["schemas"]["TranslateJSON"]["properties"]
    assert body["n"]["minimum"] == 1
    assert body["n"]["maximum"] == 8
    assert "noise" in body["n"]["description"]
    seed = next(s for s in body["seed"]["anyOf"] if s.get("type") == "integer")
    assert (seed["minimum"], seed["exclusiveMaximum"]) == (0, SEED_LIMIT)
    translate = spec["paths"]["/v1/translate"]["post"]
    form = translate["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"n", "seed"} <= set(form)
    assert "X-Seed" in translate["responses"]["200"]["headers"]
    assert "X-Seed" in translate["responses"]["202"]["headers"]
