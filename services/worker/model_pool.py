"""Loaded model versions, their batchers, and hot reload from the model volume.

Every ``reload_interval_s`` the pool reads each model's ``CURRENT`` (polling: inotify does
not work on network volumes). On a change it loads the new version beside the old one,
verifies every sha256, runs a canary batch (right shape, finite, not constant), and only
then swaps it in. The old batcher finishes what it already holds before it stops, so no
request fails or is dropped by a reload. A version that fails a check is remembered and
never served; the old one stays, and the failure is logged and counted in metrics.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from services.worker.batcher import BatchStats, DynamicBatcher
from shared.backends import InferenceBackend, load_backend
from shared.manifest import Manifest
from shared.registry import Registry, RegistryError, parse_current
from shared.settings import Settings
from shared.worker_beat import ServedModel

log = logging.getLogger(__name__)

BackendFactory = Callable[[Path, Manifest], InferenceBackend]
ReloadResult = Literal["loaded", "integrity", "canary", "error", "bad-current"]
MAX_PINNED = 4  # older versions kept loaded for requests that pin a version


class CanaryError(Exception):
    """A freshly loaded version whose test batch looks wrong."""


@dataclass
class LoadedModel:
    manifest: Manifest
    backend: InferenceBackend
    batcher: DynamicBatcher

    @property
    def key(self) -> tuple[str, int]:
        return (self.manifest.name, self.manifest.version)


@dataclass
class ReloadEvent:
    model: str
    version: int
    result: ReloadResult
    detail: str = ""


def intra_op_threads(settings: Settings) -> int:
    """The intra-op threads of each model's session: ``S2I_INTRA_OP_THREADS`` when set, else
    this process's cores shared among the model's instances (0, the runtime's own default,
    for one instance)."""
    if settings.intra_op_threads or settings.model_instances == 1:
        return settings.intra_op_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // settings.model_instances)


def canary(backend: InferenceBackend, manifest: Manifest) -> None:
    """Run a batch of 2 different inputs; the output must be right-shaped, finite, not flat."""
    lo, hi = manifest.input.value_range
    x = np.random.default_rng(0).uniform(lo, hi, manifest.input.shape(2)).astype(np.float32)
    out = backend.run(x)
    expected = manifest.output.shape(2)
    if tuple(out.shape) != expected:
        raise CanaryError(f"output shape {tuple(out.shape)}, manifest says {expected}")
    if not np.isfinite(out).all():
        raise CanaryError("output has NaN or Inf values")
    if float(out.std()) < 1e-6:
        raise CanaryError("output is constant")


@dataclass
class ModelPool:
    registry: Registry
    settings: Settings
    backend_factory: BackendFactory | None = None
    on_batch: Callable[[str, int, BatchStats], None] | None = None
    on_reload: Callable[[ReloadEvent], None] | None = None
    served: dict[str, LoadedModel] = field(default_factory=dict)
    failed: dict[tuple[str, int], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._pinned: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._bad_current: dict[str, str] = {}  # model -> the bad CURRENT already reported

    # --- loading -----------------------------------------------------------------------
    def _open_backend(self, version_dir: Path, manifest: Manifest) -> InferenceBackend:
        if self.backend_factory is not None:
            return self.backend_factory(version_dir, manifest)
        s = self.settings
        return load_backend(
            version_dir,
            manifest,
            prefer=s.backend,
            device=s.device,
            intra_op_threads=intra_op_threads(s),
            precision=s.precision,
            spinning=s.onnx_spinning,
            gpu_fp16=s.gpu_fp16,
            trt_cache=s.trt_cache_root,
        )

    def load(self, name: str, version: int) -> LoadedModel:
        """Verify, open and canary one version; raise on any failure (and remember it)."""
        key = (name, version)
        self.registry.version_dir(name, version)  # a version not there (yet) is no failure
        try:
            manifest = self.registry.verify(name, version)
        except (RegistryError, ValueError, OSError) as exc:  # bad hash, manifest or file
            self._record_failure(key, "integrity", str(exc))
            raise RegistryError(str(exc)) from exc
        try:
            backend = self._open_backend(self.registry.version_dir(name, version), manifest)
        except Exception as exc:
            self._record_failure(key, "error", f"cannot open: {exc}")
            raise
        try:
            canary(backend, manifest)
        except Exception as exc:
            backend.close()
            self._record_failure(key, "canary", str(exc))
            raise CanaryError(str(exc)) from exc
        s = self.settings

        def stats_sink(stats: BatchStats) -> None:
            if self.on_batch is not None:
                self.on_batch(name, version, stats)

        batcher = DynamicBatcher(
            backend,
            max_batch_size=s.max_batch_size,
            max_queue_delay_ms=s.max_queue_delay_ms,
            idle_runs_at_once=s.batch_idle_runs_at_once,
            batch_sizes=s.batch_sizes,
            example_shape=manifest.input.shape(1)[1:],
            on_batch=stats_sink,
            name=f"batcher-{name}-v{version}",
            instances=s.model_instances,
        )
        self._emit(ReloadEvent(name, version, "loaded", backend.name))
        return LoadedModel(manifest, backend, batcher)

    def _record_failure(self, key: tuple[str, int], result: ReloadResult, detail: str) -> None:
        log.error("model %s v%d not served (%s): %s", key[0], key[1], result, detail)
        self.failed[key] = f"{result}: {detail}"
        self._emit(ReloadEvent(key[0], key[1], result, detail))

    def _emit(self, event: ReloadEvent) -> None:
        if self.on_reload is not None:
            try:
                self.on_reload(event)
            except Exception:
                log.exception("on_reload callback failed")

    # --- serving -----------------------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> LoadedModel:
        """The served version of ``name``, or a pinned ``version`` (loaded on demand)."""
        with self._lock:
            if not self.wants(name):
                raise RegistryError(f"model {name!r} is not served by this worker (S2I_MODELS)")
            served = self.served.get(name)
            if version is None or (served is not None and served.manifest.version == version):
                if served is None:
                    raise RegistryError(f"model {name!r} is not served by this worker")
                return served
            key = (name, version)
            if key in self.failed:
                raise RegistryError(f"{name} v{version} failed its checks: {self.failed[key]}")
            if key in self._pinned:
                self._pinned.move_to_end(key)
                return self._pinned[key]
        loaded = self.load(name, version)  # outside the lock: served requests go on meanwhile
        with self._lock:
            if key in self._pinned:  # another thread loaded it meanwhile
                self._retire(loaded)
                return self._pinned[key]
            self._pinned[key] = loaded
            while len(self._pinned) > MAX_PINNED:
                _, old = self._pinned.popitem(last=False)
                self._retire(old)
            return loaded

    def _retire(self, old: LoadedModel) -> None:
        """Close a replaced version once its batcher has finished what it holds."""

        def close() -> None:
            old.batcher.close()
            old.backend.close()

        threading.Thread(target=close, name=f"retire-{old.key}", daemon=True).start()

    # --- hot reload --------------------------------------------------------------------
    def _current(self, name: str) -> int | None:
        """CURRENT of ``name``; a value that names no version is logged once and counted."""
        text = self.registry.current_text(name)
        version = parse_current(text)
        bad = text is not None and (version is None or not self.registry.has_version(name, version))
        if not bad:
            self._bad_current.pop(name, None)
            return version
        if self._bad_current.get(name) != text:
            self._bad_current[name] = text or ""
            detail = f"CURRENT holds {text!r}, which names no version"
            log.error("model %s: %s; the served version stays", name, detail)
            self._emit(ReloadEvent(name, version or 0, "bad-current", detail))
        return None

    def wants(self, name: str) -> bool:
        """Whether this worker loads ``name`` (``S2I_MODELS``; empty: every model)."""
        return not self.settings.models or name in self.settings.models

    def poll_once(self) -> None:
        for name in filter(self.wants, self.registry.models()):
            try:
                current = self._current(name)
            except (OSError, RegistryError):
                log.exception("cannot read CURRENT of %s", name)
                continue
            if current is None or (name, current) in self.failed:
                continue
            served = self.served.get(name)
            if served is not None and served.manifest.version == current:
                continue
            try:
                loaded = self.load(name, current)
            except Exception:
                continue  # already logged and recorded; the old version stays
            with self._lock:
                old = self.served.get(name)
                self.served[name] = loaded
            log.info(
                "serving %s v%d (was %s)",
                name,
                current,
                f"v{old.manifest.version}" if old is not None else "none",
            )
            if old is not None and old.key not in self._pinned:
                self._retire(old)

    def start(self) -> None:
        self.poll_once()
        self._poller = threading.Thread(target=self._poll_loop, name="model-poller", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.settings.reload_interval_s):
            try:
                self.poll_once()
            except Exception:
                log.exception("model poll failed")

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            loaded = [*self.served.values(), *self._pinned.values()]
            self.served.clear()
            self._pinned.clear()
        for model in loaded:
            model.batcher.close()
            model.backend.close()

    def served_models(self) -> dict[str, ServedModel]:
        """What this worker serves, for its heartbeat (read by the API)."""
        with self._lock:
            served = dict(self.served)
        models = {}
        for name, model in served.items():
            refused = {str(v): why for (n, v), why in self.failed.items() if n == name}
            available = [v for v in self.registry.versions(name) if str(v) not in refused]
            models[name] = ServedModel.of(model.manifest, model.backend.name, available, refused)
        return models

    def refusals(self) -> dict[str, str]:
        """``"name:version"`` -> why that version is not served."""
        return {f"{n}:{v}": reason for (n, v), reason in self.failed.items()}
