"""How many pixels one process decodes at once: the bound on image memory.

Decoding is where an image costs memory (a 40-megapixel PNG is 120 MB as RGB, more while
its alpha is composited), and the API and the worker decode in thread pools. A
``PixelBudget`` lets a decode start only while the pixels in flight stay within its capacity;
a large image waits for its share (a small one usually need not), so peak decode memory is
about capacity x 5 bytes whatever arrives. Every decode in a process shares
``process_budget()``, sized by ``S2I_DECODE_PIXEL_BUDGET``.

The bound needs one more thing: glibc keeps a freed buffer of a few MB in the arena of the
thread that freed it (its mmap threshold grows after each large free), so ten decode threads
taking turns would each keep the last image they decoded. ``process_budget()`` therefore
fixes the threshold at 1 MB: image buffers are mmapped and go back to the OS when freed.
Measured on ten 6300x6300 grey PNGs decoded by ten threads: peak RSS growth 1,725 MB before
(no budget, full-size RGB), 383 MB with the budget and early reduction alone, 41 MB with the
threshold fixed too (``tests/shared/test_decode_budget.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from shared.settings import get_settings

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 1 << 20


class PixelBudget:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0  # the most pixels ever held at once
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Wait until ``pixels`` (at most the whole capacity) fit, hold them in the block."""
        share = max(1, min(pixels, self.capacity))
        with self._changed:
            self._changed.wait_for(lambda: self.in_use + share <= self.capacity)
            self.in_use += share
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= share
                self._changed.notify_all()


def mmap_large_buffers() -> bool:
    """Allocate buffers >= 1 MB with mmap, so freed image memory returns to the OS at once
    (glibc only; elsewhere a no-op). True if set."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        done = bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        done = False
    if not done:
        log.info("could not fix the malloc mmap threshold; decode memory may be kept longer")
    return done


_created = threading.Lock()
_process_budget: PixelBudget | None = None


def process_budget() -> PixelBudget:
    """The budget every decode of this process shares (made once, also when the first
    decodes start together on several threads)."""
    global _process_budget
    with _created:
        if _process_budget is None:
            mmap_large_buffers()
            _process_budget = PixelBudget(get_settings().decode_pixel_budget)
        return _process_budget
