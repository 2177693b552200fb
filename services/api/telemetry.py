"""The API's Prometheus registry: its own request metrics plus the cluster's, from Redis."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from redis import Redis

from shared.cluster_metrics import ClusterCollector
from shared.jobs import WORKER_KEY_PREFIX
from shared.settings import Settings

log = logging.getLogger(__name__)


class QueueCollector:
    """Queue length and live workers (with the version each serves), read at scrape time."""

    def __init__(self, redis: Redis, queue: str) -> None:
        self.redis = redis
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        try:
            length = int(self.redis.llen(self.queue))
            keys = list(self.redis.scan_iter(match=WORKER_KEY_PREFIX + "*", count=500))
            beats = [json.loads(v) for v in self.redis.mget(keys) if v] if keys else []
        except Exception:
            log.warning("cannot read queue metrics from Redis", exc_info=True)
            return
        queue = GaugeMetricFamily(
            "s2i_queue_length", "Jobs waiting in the inference queue", labels=["queue"]
        )
        queue.add_metric([self.queue], length)
        yield queue
        workers = GaugeMetricFamily("s2i_workers", "Inference workers with a fresh heartbeat")
        workers.add_metric([], len(beats))
        yield workers
        served = GaugeMetricFamily(
            "s2i_model_served_version", "Version each worker serves", labels=["model", "worker"]
        )
        for beat in beats:
            for name, info in beat.get("models", {}).items():
                served.add_metric([name, beat.get("worker", "?")], info.get("version", 0))
        yield served


def make_registry(settings: Settings) -> tuple[CollectorRegistry, Redis]:
    registry = CollectorRegistry()
    redis = Redis.from_url(settings.redis_url, socket_timeout=5)
    registry.register(ClusterCollector(redis))
    registry.register(QueueCollector(redis, settings.inference_queue))
    return registry, redis


def instrument(app: FastAPI, registry: CollectorRegistry) -> None:
    requests = Counter(
        "s2i_http_requests",
        "HTTP requests by route and status",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "s2i_http_request_seconds",
        "HTTP request latency by route",
        ["method", "route"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    )

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            requests.labels(request.method, path, str(status)).inc()
            latency.labels(request.method, path).observe(time.perf_counter() - start)
