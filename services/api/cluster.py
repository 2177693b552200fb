"""What the workers serve, read from their heartbeats in Redis (cached for a second).

The API never opens the model volume: workers announce the models and versions they
serve, so ``/v1/models`` and request validation reflect what can actually run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from shared.jobs import WORKER_KEY_PREFIX


@dataclass
class ClusterView:
    workers: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> summary
    read_at: float = 0.0

    def versions(self, name: str) -> set[int]:
        info = self.models.get(name)
        return set(info.get("available_versions", [])) if info else set()


async def read_cluster(redis: Redis) -> ClusterView:
    keys = [k async for k in redis.scan_iter(match=WORKER_KEY_PREFIX + "*", count=500)]
    values = await redis.mget(keys) if keys else []
    view = ClusterView(read_at=time.monotonic())
    for raw in values:
        if raw is None:
            continue
        beat = json.loads(raw)
        view.workers.append(beat)
        for name, info in beat.get("models", {}).items():
            known = view.models.get(name)
            # several workers may briefly disagree during a reload: show the newest
            if known is None or info.get("version", 0) > known.get("version", 0):
                entry = dict(info)
                entry["workers"] = (known or {}).get("workers", 0) + 1
                view.models[name] = entry
            else:
                known["workers"] = known.get("workers", 0) + 1
    return view


class ClusterCache:
    def __init__(self, redis: Redis, max_age_s: float = 1.0) -> None:
        self.redis = redis
        self.max_age_s = max_age_s
        self._view: ClusterView | None = None

    async def get(self, fresh: bool = False) -> ClusterView:
        view = self._view
        if fresh or view is None or time.monotonic() - view.read_at > self.max_age_s:
            view = self._view = await read_cluster(self.redis)
        return view
