"""A bounded soak on the real stack (``benchmarks/soak.py``, here for 40 s): no failed request,
memory of the API, the worker and Redis flat after the warm-up, every key with a TTL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.soak import soak
from services.local import LocalStack, free_port
from tests.conftest import STACK_ENV, running_stack
from tests.images import sketch_png

pytestmark = pytest.mark.integration

RESULT_TTL_S = 5  # shorter than the warm-up, so the async results kept reach a steady state
FLAT_PROCESS_MB = 40.0  # growth allowed after the warm-up (allocator noise, caches filling)
FLAT_REDIS_MB = 5.0


@pytest.fixture(scope="module")
def soak_stack(tmp_path_factory: pytest.TempPathFactory, model_root: Path) -> Iterator[LocalStack]:
    env = {**STACK_ENV, "S2I_MODEL_ROOT": str(model_root), "S2I_RESULT_TTL_S": str(RESULT_TTL_S)}
    local = LocalStack(
        var_dir=tmp_path_factory.mktemp("soak"),
        api_port=free_port(),
        trainer=False,
        env=env,
        bootstrap=False,
    )
    with running_stack(local):
        yield local


def test_steady_load_keeps_memory_flat_and_every_key_expiring(soak_stack: LocalStack) -> None:
    report = soak(soak_stack, seconds=40, clients=4, image=sketch_png(6), every=2)
    assert report.requests > 40
    assert dict(report.failures) == {}
    assert report.keys_without_ttl == []
    grown = report.growth_after_warmup()
    assert grown["api"] < FLAT_PROCESS_MB, grown
    assert grown["worker0"] < FLAT_PROCESS_MB, grown
    assert grown["redis"] < FLAT_REDIS_MB, grown
