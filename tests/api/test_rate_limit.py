"""Per-caller rate limits and the /metrics key setting, against a real Redis."""

from __future__ import annotations

from redis import Redis

from tests.api.test_admission import fake_heartbeat, make_client
from tests.images import sketch_png


def submit(client, key: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/translate",
        params={"async": "true"},
        files={"image": ("s.png", sketch_png())},
        data={"model": "sketch2photo"},
        headers={"X-API-Key": key},
    )


def test_a_caller_past_its_burst_gets_429_others_and_polling_do_not(
    redis_url: str, redis_db: Redis
) -> None:
    fake_heartbeat(redis_db, {"sketch2photo": 1})
    settings = {"api_keys": ["alice", "bob"], "rate_limit_per_s": 0.2, "rate_limit_burst": 3}
    with make_client(redis_url, **settings) as client:
        accepted = [submit(client, "alice") for _ in range(3)]
        assert [r.status_code for r in accepted] == [202, 202, 202]
        refused = submit(client, "alice")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("rate-limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 5  # one token per 5 s
        assert submit(client, "bob").status_code == 202  # a bucket per key
        job = accepted[0].json()["id"]
        polled = client.get(f"/v1/jobs/{job}", headers={"X-API-Key": "alice"})
        assert polled.status_code == 200  # only job-creating requests are limited
    buckets = list(redis_db.scan_iter("s2i:rate:*"))
    assert len(buckets) == 2
    assert all(redis_db.ttl(b) > 0 for b in buckets)
    assert not any(b"alice" in b or b"bob" in b for b in buckets)  # keys stored hashed


def test_no_limit_by_default(redis_url: str, redis_db: Redis) -> None:
    fake_heartbeat(redis_db, {"sketch2photo": 1})
    with make_client(redis_url, max_queue_length=100) as client:
        assert all(submit(client, "x").status_code == 202 for _ in range(25))
    assert list(redis_db.scan_iter("s2i:rate:*")) == []


def test_metrics_need_a_key_only_when_set(redis_url: str, redis_db: Redis) -> None:
    with make_client(redis_url, api_keys=["k"], metrics_need_key=True) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert client.get("/metrics", headers={"X-API-Key": "k"}).status_code == 200
        assert client.get("/metrics", headers={"Authorization": "Bearer k"}).status_code == 200
    with make_client(redis_url, api_keys=["k"]) as client:
        assert client.get("/metrics").status_code == 200  # the default: scrapers need no key
