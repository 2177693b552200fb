"""Cluster-wide serving metrics kept in Redis: workers write, the API's ``/metrics`` reads.

Workers are many processes on many hosts; the API is the one place a user scrapes. Each
metric is one Redis hash. Counters: field ``<labels>`` -> count. Histograms: fields
``<labels>|<le>`` (non-cumulative bucket counts), ``<labels>|sum`` and ``<labels>|count``;
the reader makes the buckets cumulative as Prometheus wants. Labels are joined with ``,``
as ``model=name,version=3``.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from redis import Redis
from redis.client import Pipeline

log = logging.getLogger(__name__)

PREFIX = "s2i:metrics:"
# each write sets a hash to expire this long after it: a metric no worker has written for
# that long restarts from zero (Prometheus reads that as a counter reset)
TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class HistogramDef:
    name: str
    doc: str
    buckets: tuple[float, ...]


@dataclass(frozen=True)
class CounterDef:
    name: str
    doc: str


BATCH_SIZE = HistogramDef(
    "s2i_batch_size", "Real examples per forward pass", (1, 2, 4, 8, 16, 32, 64, 128)
)
QUEUE_SECONDS = HistogramDef(
    "s2i_batch_queue_seconds",
    "Time an example waited in the dynamic batcher before its batch started",
    (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)
COMPUTE_SECONDS = HistogramDef(
    "s2i_batch_compute_seconds",
    "Forward-pass time of one batch",
    (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
JOB_SECONDS = HistogramDef(
    "s2i_job_seconds",
    "Job time from the API accepting it to its result being stored",
    (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
JOBS = CounterDef("s2i_jobs", "Jobs that reached a final state, by model and state")
RELOADS = CounterDef(
    "s2i_model_reloads", "Model versions a worker tried to load, by result (loaded or why not)"
)
NON_FINITE = CounterDef(
    "s2i_nonfinite_outputs", "Outputs with NaN or infinite values (the job fails), by model"
)
HISTOGRAMS = (BATCH_SIZE, QUEUE_SECONDS, COMPUTE_SECONDS, JOB_SECONDS)
COUNTERS = (JOBS, RELOADS, NON_FINITE)


def _labels(labels: Mapping[str, object]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _parse_labels(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if part)


class MetricsWriter:
    """Worker side: adds observations to the Redis hashes (one pipeline per call)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def observe(
        self, hist: HistogramDef, labels: Mapping[str, object], values: Iterable[float]
    ) -> None:
        self.observe_many([(hist, labels, values)])

    def observe_many(
        self, items: Sequence[tuple[HistogramDef, Mapping[str, object], Iterable[float]]]
    ) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for hist, labels, values in items:
            self._add_observations(pipe, hist, _labels(labels), values)
        self._execute(pipe)

    def inc(self, counter: CounterDef, labels: Mapping[str, object], amount: int = 1) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(PREFIX + counter.name, _labels(labels), amount)
        pipe.expire(PREFIX + counter.name, TTL_S)
        self._execute(pipe)

    @staticmethod
    def _add_observations(
        pipe: Pipeline, hist: HistogramDef, label: str, values: Iterable[float]
    ) -> None:
        key = PREFIX + hist.name
        for value in values:
            i = bisect.bisect_left(hist.buckets, value)
            le = repr(float(hist.buckets[i])) if i < len(hist.buckets) else "+Inf"
            pipe.hincrby(key, f"{label}|{le}", 1)
            pipe.hincrbyfloat(key, f"{label}|sum", float(value))
            pipe.hincrby(key, f"{label}|count", 1)
        pipe.expire(key, TTL_S)

    @staticmethod
    def _execute(pipe: Pipeline) -> None:
        try:
            pipe.execute()
        except Exception:  # metrics must never fail a job
            log.warning("could not write metrics to Redis", exc_info=True)


class ClusterCollector:
    """API side: a prometheus_client collector reading the hashes at scrape time."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self) -> Iterator[Metric]:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for d in (*HISTOGRAMS, *COUNTERS):
                pipe.hgetall(PREFIX + d.name)
            raw = pipe.execute()
        except Exception:
            log.warning("cannot read cluster metrics from Redis", exc_info=True)
            return
        hashes = [{k.decode(): v.decode() for k, v in h.items()} for h in raw]
        for hist, data in zip(HISTOGRAMS, hashes[: len(HISTOGRAMS)], strict=True):
            yield self._histogram(hist, data)
        for counter, data in zip(COUNTERS, hashes[len(HISTOGRAMS) :], strict=True):
            family = CounterMetricFamily(counter.name, counter.doc, labels=self._label_names(data))
            for label, value in sorted(data.items()):
                family.add_metric(list(_parse_labels(label).values()), float(value))
            yield family

    @staticmethod
    def _label_names(data: Mapping[str, str]) -> list[str]:
        for field in data:
            return list(_parse_labels(field.split("|")[0]).keys())
        return []

    def _histogram(self, hist: HistogramDef, data: Mapping[str, str]) -> HistogramMetricFamily:
        per_label: dict[str, dict[str, float]] = defaultdict(dict)
        for field, value in data.items():
            label, _, part = field.rpartition("|")
            per_label[label][part] = float(value)
        family = HistogramMetricFamily(hist.name, hist.doc, labels=self._label_names(data))
        for label, parts in sorted(per_label.items()):
            running = 0.0
            buckets: list[tuple[str, float]] = []
            for le in [*(repr(float(b)) for b in hist.buckets), "+Inf"]:
                running += parts.get(le, 0.0)
                buckets.append((le, running))
            family.add_metric(
                list(_parse_labels(label).values()), buckets, sum_value=parts.get("sum", 0.0)
            )
        return family
