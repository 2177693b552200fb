"""The API's Prometheus registry: its own request metrics plus the cluster's, from Redis."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from redis import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.cluster_metrics import ClusterCollector
from shared.job_store import JobStore
from shared.redis_clients import connect
from shared.settings import Settings

log = logging.getLogger(__name__)


class QueueCollector:
    """Queue length and live workers (with the version each serves), read at scrape time."""

    def __init__(self, jobs: JobStore, queue: str) -> None:
        self.jobs = jobs
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        try:
            length = int(self.jobs.redis.llen(self.queue))
            beats = self.jobs.beats()
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
            for name, model in beat.models.items():
                served.add_metric([name, beat.worker], model.version)
        yield served


class RedisMemoryCollector:
    """Redis's memory (``INFO memory``), read at scrape time: with ``maxmemory`` it says how
    close Redis is to refusing jobs (503 storage-full)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self) -> Iterator[Metric]:
        try:
            info = self.redis.info("memory")
        except Exception:
            log.warning("cannot read Redis memory", exc_info=True)
            return
        yield GaugeMetricFamily(
            "s2i_redis_used_memory_bytes", "Memory Redis uses", value=info["used_memory"]
        )
        yield GaugeMetricFamily(
            "s2i_redis_maxmemory_bytes",
            "Redis's memory limit (0: none); at the limit it refuses writes",
            value=info.get("maxmemory", 0),
        )


def make_registry(settings: Settings) -> tuple[CollectorRegistry, Redis]:
    registry = CollectorRegistry()
    redis = connect(settings.redis_url, socket_timeout=5)
    jobs = JobStore(redis, settings.job_ttl_s, settings.result_ttl_s)
    registry.register(ClusterCollector(redis))
    registry.register(QueueCollector(jobs, settings.inference_queue))
    registry.register(RedisMemoryCollector(redis))
    return registry, redis


class RequestMetrics:
    """Counts requests by method, route template and status, and times them (pure ASGI: no
    task per request, and the app reads its own request body, so limits raised while reading
    reach the app's exception handlers)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "s2i_http_requests",
            "HTTP requests by route and status (499: the client left before the answer)",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "s2i_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = str(scope.get("method", ""))
            self.requests.labels(method, route, str(status)).inc()
            self.latency.labels(method, route).observe(time.perf_counter() - start)


def instrument(app: FastAPI, registry: CollectorRegistry) -> None:
    app.add_middleware(RequestMetrics, registry=registry)
