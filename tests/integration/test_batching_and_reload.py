"""Must-shows of the serving core: batching under load, hot reload, bad versions refused."""

from __future__ import annotations

import io
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from shared.registry import Registry
from tests.images import sketch_png
from tests.integration import models

pytestmark = pytest.mark.integration


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_64_concurrent_requests_are_batched(client: httpx.Client) -> None:
    labels = {"model": "sketch2photo"}
    count_before = metric(client, "s2i_batch_size_count", **labels)
    ones_before = metric(client, "s2i_batch_size_bucket", le="1.0", **labels)
    body = sketch_png(3)

    def one(_: int) -> int:
        r = httpx.post(
            f"{client.base_url}/v1/translate",
            files={"image": ("s.png", body)},
            data={"model": "sketch2photo"},
            timeout=120,
        )
        return r.status_code

    with ThreadPoolExecutor(64) as pool:
        codes = list(pool.map(one, range(64)))
    assert codes == [200] * 64
    batches = metric(client, "s2i_batch_size_count", **labels) - count_before
    singles = metric(client, "s2i_batch_size_bucket", le="1.0", **labels) - ones_before
    assert 0 < batches < 64, f"64 requests ran in {batches} batches"
    assert singles < batches, "no batch held more than one request"
    examples = metric(client, "s2i_batch_size_sum", **labels)
    assert examples >= 64


def test_publish_during_traffic_switches_version_without_failures(
    client: httpx.Client, registry: Registry
) -> None:
    name = "reload-demo"
    models.publish(registry, name, seed=10)
    wait_for(lambda: client.get(f"/v1/models/{name}").status_code == 200, 30, "v1 served")
    seen: list[tuple[float, int, str | None]] = []
    stop = threading.Event()
    body = sketch_png(4)

    def traffic() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=60) as c:
            while not stop.is_set():
                r = c.post("/v1/translate", files={"image": ("s.png", body)}, data={"model": name})
                seen.append((time.monotonic(), r.status_code, r.headers.get("x-model-version")))

    threads = [threading.Thread(target=traffic) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(seen) >= 16, 60, "traffic on v1")
        published_at = time.monotonic()
        models.publish(registry, name, seed=11)
        wait_for(lambda: any(v == "2" for _, _, v in seen[-8:]), 60, "responses from v2")
        n = len(seen)
        wait_for(lambda: len(seen) >= n + 16, 60, "more traffic on v2")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert [code for _, code, _ in seen if code != 200] == [], "requests failed during reload"
    assert {v for _, _, v in seen} == {"1", "2"}
    assert all(v == "1" for at, _, v in seen if at < published_at)
    # the switch is clean: after the first v2 answer, at most the requests already in flight
    # (one per client thread) can still come back from v1
    first_v2 = next(i for i, (_, _, v) in enumerate(seen) if v == "2")
    assert sum(v == "1" for _, _, v in seen[first_v2:]) <= len(threads)
    assert metric(client, "s2i_model_reloads_total", model=name, result="loaded") >= 2


def test_versions_with_bad_sha256_or_nan_outputs_are_never_served(
    client: httpx.Client, registry: Registry
) -> None:
    name = "guarded"
    good = models.publish(registry, name, seed=20)
    wait_for(lambda: client.get(f"/v1/models/{name}").status_code == 200, 30, "v1 served")
    body = sketch_png(5)

    def served_version() -> str:
        r = client.post("/v1/translate", files={"image": ("s.png", body)}, data={"model": name})
        assert r.status_code == 200, r.text
        return r.headers["x-model-version"]

    tampered = models.publish_tampered(registry, name, seed=21)
    assert registry.current(name) == tampered.version
    wait_for(
        lambda: metric(client, "s2i_model_reloads_total", model=name, result="integrity") >= 1,
        30,
        "the integrity failure in /metrics",
    )
    assert served_version() == str(good.version)

    nan = models.publish_nan(registry, name)
    assert registry.current(name) == nan.version
    wait_for(
        lambda: metric(client, "s2i_model_reloads_total", model=name, result="canary") >= 1,
        30,
        "the canary failure in /metrics",
    )
    for _ in range(3):
        assert served_version() == str(good.version)
    # pinning a refused version is refused too, with a problem document
    pinned = client.post(
        "/v1/translate",
        files={"image": ("s.png", body)},
        data={"model": name, "version": str(nan.version)},
    )
    assert pinned.status_code in (404, 422, 500)
    assert pinned.headers["content-type"] == "application/problem+json"
    # and a good version published after them is served
    fixed = models.publish(registry, name, seed=22)
    wait_for(lambda: served_version() == str(fixed.version), 30, "the fixed version served")
    assert re.fullmatch(r"\d+", served_version())


def test_a_non_finite_output_fails_its_job_and_is_counted(
    client: httpx.Client, registry: Registry
) -> None:
    name = "bright-nan"
    version = models.publish_bright_nan(registry, name).version
    white = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(white, "PNG")

    def post(image: bytes) -> httpx.Response:
        fields = {"model": name, "version": str(version)}
        return client.post("/v1/translate", files={"image": ("x.png", image)}, data=fields)

    wait_for(lambda: post(sketch_png(3)).status_code == 200, 30, "the version served")
    r = post(white.getvalue())
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("invalid-model-output")
    wait_for(
        lambda: metric(client, "s2i_nonfinite_outputs_total", model=name) >= 1,
        30,
        "the non-finite output in /metrics",
    )
    assert post(sketch_png(4)).status_code == 200  # other inputs are still served
