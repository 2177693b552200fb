"""The worker process's long-lived parts: Redis client, model pool, heartbeat, metrics.

One :class:`WorkerRuntime` per worker process, started when Celery's worker starts and
closed when it stops. Tasks get it from :func:`get_runtime`.

Crash recovery: with every heartbeat (and when it starts) a worker puts back in the queue the
jobs left ``running`` by workers whose heartbeat expired (killed, out of memory, machine
lost), and sends their messages again: they run again within
``S2I_WORKER_HEARTBEAT_TTL_S`` + ``S2I_HEARTBEAT_INTERVAL_S`` of the crash. Celery alone would
leave them for the broker's visibility timeout (``shared.celery_app``).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from services.worker.batcher import BatchStats
from services.worker.model_pool import ModelPool, ReloadEvent
from shared import cluster_metrics as cm
from shared.celery_app import redelivery_s
from shared.job_store import JobStore
from shared.jobs import JobRecord
from shared.redis_clients import connect
from shared.registry import Registry
from shared.settings import Settings
from shared.worker_beat import WorkerBeat

log = logging.getLogger(__name__)


SendJob = Callable[[JobRecord], None]  # sends a job's message (again) to the inference queue


class WorkerRuntime:
    def __init__(
        self, settings: Settings, pool: ModelPool | None = None, send_job: SendJob | None = None
    ) -> None:
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        self.redis = connect(settings.redis_url, socket_timeout=10)
        self.jobs = JobStore(self.redis, settings.job_ttl_s, settings.result_ttl_s)
        self.send_job = send_job  # None: this runtime recovers no dead worker's jobs
        self.metrics = cm.MetricsWriter(self.redis)
        self.pool = pool or ModelPool(Registry(settings.model_root), settings)
        self.pool.on_batch = self._on_batch
        self.pool.on_reload = self._on_reload
        self.decoder = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode")
        self.started_at = time.time()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._batch_stats: queue.SimpleQueue[tuple[str, int, BatchStats] | None] = (
            queue.SimpleQueue()
        )
        threading.Thread(
            target=self._write_batch_metrics, name="batch-metrics", daemon=True
        ).start()

    def _on_batch(self, model: str, version: int, stats: BatchStats) -> None:
        # called on the batching thread: hand off, so a slow Redis never delays a batch
        self._batch_stats.put((model, version, stats))

    def _write_batch_metrics(self) -> None:
        while True:
            item = self._batch_stats.get()
            if item is None:
                return
            model, version, stats = item
            labels = {"model": model, "version": version}
            self.metrics.observe_many(
                [
                    (cm.BATCH_SIZE, labels, [stats.size]),
                    (cm.QUEUE_SECONDS, labels, [ms / 1000 for ms in stats.queue_ms]),
                    (cm.COMPUTE_SECONDS, labels, [stats.compute_ms / 1000]),
                ]
            )

    def _on_reload(self, event: ReloadEvent) -> None:
        self.metrics.inc(cm.RELOADS, {"model": event.model, "result": event.result})

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.pool.start()
        self.beat()
        self.recover()
        self._heartbeat = threading.Thread(target=self._beat_loop, name="heartbeat", daemon=True)
        self._heartbeat.start()
        log.info("worker %s serving %s", self.worker_id, sorted(self.pool.served))

    def beat(self) -> None:
        """Tell the API what this worker serves; the key expires if the worker dies."""
        beat = WorkerBeat(
            worker=self.worker_id,
            started_at=self.started_at,
            beat_at=time.time(),
            queue=self.settings.inference_queue,
            models=self.pool.served_models(),
            failed=self.pool.refusals(),
        )
        self.jobs.save_beat(beat, self.settings.worker_heartbeat_ttl_s)

    def recover(self) -> None:
        """Requeue the jobs that dead workers left running, and send them again; send again
        the messages of jobs queued for longer than the broker's redelivery time while its
        queue is empty (their message was lost: taken by a worker killed before recording
        it as unacked; see ``shared.job_scripts``)."""
        if self.send_job is None:
            return
        for job in self.jobs.requeue_orphans():
            self.send_job(job)
        if self.redis.llen(self.settings.inference_queue) == 0:  # no backlog to wait behind
            for job in self.jobs.stale_queued(redelivery_s(self.settings)):
                log.warning("job %s queued without a message; sent again", job.id)
                self.send_job(job)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval_s):
            try:
                self.beat()
            except Exception:
                log.warning("heartbeat failed", exc_info=True)
            try:
                self.recover()
            except Exception:
                log.warning("could not requeue the jobs of dead workers", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        try:
            self.jobs.drop_beat(self.worker_id)
        except Exception:
            log.warning("could not remove heartbeat", exc_info=True)
        self.pool.close()
        self._batch_stats.put(None)
        self.decoder.shutdown(wait=False)


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime(send_job: SendJob | None = None) -> WorkerRuntime:
    """The process's runtime, made and started on the first call (with ``send_job``)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            from shared.settings import get_settings

            _runtime = WorkerRuntime(get_settings(), send_job=send_job)
            _runtime.start()
        return _runtime


def close_runtime() -> None:
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.close()
            _runtime = None
