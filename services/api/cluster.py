"""What the workers serve, read from their heartbeats in Redis (cached for a second).

The API never opens the model volume: workers announce the models and versions they
serve, so ``/v1/models`` and request validation reflect what can actually run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from shared.job_store import AsyncJobStore
from shared.worker_beat import ServedModel, WorkerBeat


@dataclass
class ClusterView:
    workers: list[WorkerBeat] = field(default_factory=list)
    models: dict[str, ServedModel] = field(default_factory=dict)  # the newest version served
    worker_counts: dict[str, int] = field(default_factory=dict)  # model -> workers serving it
    read_at: float = 0.0

    @classmethod
    def of(cls, beats: list[WorkerBeat]) -> ClusterView:
        view = cls(workers=beats, read_at=time.monotonic())
        for beat in beats:
            for name, served in beat.models.items():
                known = view.models.get(name)
                # several workers may briefly disagree during a reload: show the newest
                if known is None or served.version > known.version:
                    view.models[name] = served
                view.worker_counts[name] = view.worker_counts.get(name, 0) + 1
        return view

    def versions(self, name: str) -> set[int]:
        served = self.models.get(name)
        return set(served.available_versions) if served else set()


class ClusterCache:
    def __init__(self, jobs: AsyncJobStore, max_age_s: float = 1.0) -> None:
        self.jobs = jobs
        self.max_age_s = max_age_s
        self._view: ClusterView | None = None

    async def get(self, fresh: bool = False) -> ClusterView:
        view = self._view
        if fresh or view is None or time.monotonic() - view.read_at > self.max_age_s:
            view = self._view = ClusterView.of(await self.jobs.beats())
        return view
