"""The API's admission control against a real Redis, with no worker consuming the queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from services.api.main import create_app
from services.local import free_port
from shared.jobs import worker_key
from shared.settings import Settings
from tests.images import sketch_png


def fake_heartbeat(redis: Redis, models: dict[str, int], task: str = "sketch2photo") -> None:
    """What a live worker announces (this one never consumes the queue)."""
    beat = {
        "worker": "idle-worker",
        "models": {
            name: {
                "name": name,
                "version": v,
                "task": task,
                "architecture": "unet",
                "recipe": "pix2pix",
                "input": {"height": 128, "width": 128},
                "metrics": {},
                "available_versions": [v],
            }
            for name, v in models.items()
        },
    }
    redis.set(worker_key("idle-worker"), json.dumps(beat), ex=60)


def make_client(redis_url: str, **overrides: object) -> TestClient:
    settings = Settings(redis_url=redis_url, **overrides)  # type: ignore[arg-type]
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def api(redis_url: str, redis_db: Redis) -> Iterator[TestClient]:
    with make_client(redis_url, max_queue_length=2) as client:
        yield client


def post(client: TestClient, **params: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/translate",
        params=params,
        files={"image": ("s.png", sketch_png())},
        data={"model": "sketch2photo"},
    )


def test_no_worker_gives_503_with_retry_after(api: TestClient) -> None:
    r = post(api)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "2"
    assert r.headers["content-type"] == "application/problem+json"
    assert "worker" in r.json()["detail"]
    ready = api.get("/readyz")
    assert ready.status_code == 503
    assert api.get("/healthz").status_code == 200


def test_full_queue_gives_429_and_nothing_is_enqueued(api: TestClient, redis_db: Redis) -> None:
    fake_heartbeat(redis_db, {"sketch2photo": 1})
    assert post(api, **{"async": "true"}).status_code == 202
    assert post(api, **{"async": "true"}).status_code == 202
    r = post(api, **{"async": "true"})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert r.json()["type"].endswith("queue-full")
    assert redis_db.llen("s2i.inference") == 2


def test_enqueued_message_carries_only_the_job_id_as_json(api: TestClient, redis_db: Redis) -> None:
    fake_heartbeat(redis_db, {"sketch2photo": 1})
    job_id = post(api, **{"async": "true"}).json()["id"]
    raw = redis_db.lindex("s2i.inference", 0)
    assert raw is not None
    message = json.loads(raw)
    assert message["content-type"] == "application/json"
    assert message["headers"]["task"] == "s2i.translate"
    assert len(raw) < 4096  # no image bytes in the message
    assert job_id in raw.decode()
    assert redis_db.ttl(f"s2i:input:{job_id}") > 0  # the image waits in Redis with a TTL


def test_cancel_a_queued_job(api: TestClient, redis_db: Redis) -> None:
    fake_heartbeat(redis_db, {"sketch2photo": 1})
    job_id = post(api, **{"async": "true"}).json()["id"]
    assert api.get(f"/v1/jobs/{job_id}/result").status_code == 409
    r = api.delete(f"/v1/jobs/{job_id}")
    assert r.status_code == 200
    assert r.json()["state"] == "canceled"
    assert api.get(f"/v1/jobs/{job_id}").json()["state"] == "canceled"
    result = api.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 410
    assert result.json()["type"].endswith("job-canceled")


def test_sync_request_times_out_with_504_at_its_deadline(api: TestClient, redis_db: Redis) -> None:
    fake_heartbeat(redis_db, {"sketch2photo": 1})
    start = time.monotonic()
    r = api.post(
        "/v1/translate",
        files={"image": ("s.png", sketch_png())},
        data={"model": "sketch2photo", "timeout": "0.5"},
    )
    assert r.status_code == 504
    assert 0.4 < time.monotonic() - start < 5
    assert r.json()["type"].endswith("deadline-exceeded")


def test_redis_down_gives_503_not_a_crash(redis_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with make_client(dead) as client:
        r = client.post(
            "/v1/translate",
            files={"image": ("s.png", sketch_png())},
            data={"model": "sketch2photo"},
        )
        assert r.status_code == 503
        assert r.headers["retry-after"]
        assert r.headers["content-type"] == "application/problem+json"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_api_keys_when_configured(redis_url: str, redis_db: Redis) -> None:
    with make_client(redis_url, api_keys=["s3cret"]) as client:
        r = client.get("/v1/models")
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert client.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
        # a key that is not ASCII is just a wrong key (compare_digest on str would raise)
        r = client.get("/v1/models", headers={"X-API-Key": "café".encode()})
        assert r.status_code == 401
        assert client.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        ok = client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200  # probes need no key


def test_trainings_without_a_trainer_say_how_to_start_one(redis_url: str, redis_db: Redis) -> None:
    body = {"recipe": "pix2pix", "dataset": "synthetic://8"}
    with make_client(redis_url, admin_api_keys=["adm"]) as client:
        r = client.post("/v1/trainings", json=body, headers={"X-API-Key": "adm"})
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["retry-after"]
        assert "make run TRAINER=1" in r.json()["detail"]
        assert list(redis_db.scan_iter("s2i:training:*")) == []  # nothing was queued
        redis_db.set("s2i:trainer:test-host-1", "1", ex=30)  # a trainer's heartbeat
        r = client.post("/v1/trainings", json=body, headers={"X-API-Key": "adm"})
        assert r.status_code == 202
