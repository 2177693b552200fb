"""Issue 9 row 1 on the real stack: ten large-but-legal images at once leave the API's and
the worker's memory within the stated bound (docs/reliability.md)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from benchmarks.common import memory_mb
from services.local import LocalStack
from tests.shared.test_decode_budget import png

pytestmark = pytest.mark.integration

BOUND_MB = 250  # peak RSS growth per process; before the budget: +1,131 MB in the API


def test_ten_huge_pngs_at_once_keep_api_and_worker_memory_bounded(stack: LocalStack) -> None:
    data = png((6300, 6300))  # 39.7 Mpx grey, about 80 KB: under every limit
    pids = {name: stack.procs[name].pid for name in ("api", "worker0")}
    before = {name: memory_mb(pid, "VmRSS") for name, pid in pids.items()}

    def send(_: int) -> httpx.Response:
        files = {"image": ("big.png", data, "image/png")}
        return httpx.post(stack.base_url + "/v1/translate", files=files, timeout=180)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(send, range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    growth = {name: memory_mb(pid, "VmHWM") - before[name] for name, pid in pids.items()}
    assert max(growth.values()) < BOUND_MB, growth
