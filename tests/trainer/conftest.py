"""Trainer tests run tiny nets: one intra-op thread is fastest, and fair to the rest of the
suite on a 2-core machine (``torch_one_thread`` in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(torch_one_thread: None) -> None:
    del torch_one_thread
