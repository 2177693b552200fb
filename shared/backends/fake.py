"""A backend made of a numpy function: for tests and for benchmarking the serving path alone."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def invert(batch: np.ndarray) -> np.ndarray:
    return -batch


class FakeBackend:
    """Runs ``fn`` on the batch, after sleeping ``latency_s + per_item_s * N`` (a GPU stand-in).

    ``calls`` records each batch size it ran, so tests can see how requests were batched.
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray] = invert,
        *,
        latency_s: float = 0.0,
        per_item_s: float = 0.0,
        name: str = "fake",
        pad_batches: bool = True,
    ) -> None:
        self.fn = fn
        self.latency_s = latency_s
        self.per_item_s = per_item_s
        self.name = name
        self.pad_batches = pad_batches
        self.calls: list[int] = []
        self.closed = False

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(int(batch.shape[0]))
        delay = self.latency_s + self.per_item_s * batch.shape[0]
        if delay:
            time.sleep(delay)
        return np.asarray(self.fn(batch), dtype=np.float32)

    def close(self) -> None:
        self.closed = True
