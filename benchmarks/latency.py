"""``python -m benchmarks.latency``: where one client's request spends its time (issue 10).

Starts ``make run``'s stack and the naive app on the same served ``sketch2photo`` version's
files (as ``benchmarks.baseline`` does), the naive app on the graph the stack serves (the int8
copy where the manifest accepts it), then sends one request at a time,
alternating between the two (naive, stack, naive, ...), the 256x256 PNG sketch of the other
benchmarks. For each stack request it reads the job's timestamps (``GET /v1/jobs/{id}``,
untimed) and splits the client's latency into:

- ``api in``: the client sends -> the API has parsed, decoded and checked the upload and
  created the job (``created_at``);
- ``queue``: -> a worker claimed it (``started_at``: the Celery message crossed Redis and the
  worker's consumer, task thread and job record reads);
- ``worker``: -> the worker stored the result (``finished_at``): input read, decode, fit,
  the batcher's hand-offs, the model (``model``, the ``X-Compute-Ms`` header), PNG encode;
- ``api out``: -> the client has the image (the finish script and its notification, the
  API's waiter, the result read, the response).

Prints medians per stage and the naive app's median for the whole request. Clients and
servers share the machine's clock: per request the stages add up to its total (their
medians only roughly).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.baseline import MODEL, start_naive
from benchmarks.common import (
    load_average,
    machine_info,
    markdown_table,
    median,
    print_machine,
    sketch_png,
)
from services.local import LocalStack, free_port
from shared.backends import int8_file
from shared.registry import Registry

log = logging.getLogger(__name__)

STAGES = ("api in", "queue", "worker", "model", "api out", "total")


def stack_request(client: httpx.Client, image: bytes) -> dict[str, float]:
    """One request through the stack, split into STAGES (ms)."""
    sent = time.time()
    response = client.post("/v1/translate", files={"image": ("s.png", image, "image/png")},
                           data={"model": MODEL})  # fmt: skip
    received = time.time()
    response.raise_for_status()
    t = client.get(f"/v1/jobs/{response.headers['x-job-id']}").json()["timings"]
    return {
        "api in": 1000 * (t["created_at"] - sent),
        "queue": 1000 * (t["started_at"] - t["created_at"]),
        "worker": 1000 * (t["finished_at"] - t["started_at"]),
        "model": float(response.headers["x-compute-ms"]),
        "api out": 1000 * (received - t["finished_at"]),
        "total": 1000 * (received - sent),
    }


def naive_request(client: httpx.Client, image: bytes) -> float:
    sent = time.perf_counter()
    client.post("/v1/translate", files={"image": ("s.png", image, "image/png")}).raise_for_status()
    return 1000 * (time.perf_counter() - sent)


def run(requests: int, warmup: int, var: Path) -> tuple[dict[str, float], float]:
    stack = LocalStack(var_dir=var, api_port=free_port(), trainer=False,
                       env={"S2I_LOG_LEVEL": "WARNING", "S2I_MODELS": MODEL})  # fmt: skip
    naive: subprocess.Popen[bytes] | None = None
    try:
        stack.start()
        stack.wait_ready()
        registry = Registry(stack.model_root)
        version = registry.version_dir(MODEL, registry.current(MODEL) or 1)
        served_int8 = int8_file(version, registry.manifest(MODEL), "auto")  # the stack's rule
        precision = "int8" if served_int8 is not None else "fp32"
        port = free_port()
        naive = start_naive(version, port, var / "logs" / "naive.log", precision)
        image = sketch_png(256)
        stages: dict[str, list[float]] = {s: [] for s in STAGES}
        naive_ms: list[float] = []
        with (
            httpx.Client(base_url=stack.base_url, timeout=60) as to_stack,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as to_naive,
        ):
            for i in range(warmup + requests):
                n = naive_request(to_naive, image)
                split = stack_request(to_stack, image)
                if i >= warmup:
                    naive_ms.append(n)
                    for stage, ms in split.items():
                        stages[stage].append(ms)
        return {s: median(v) for s, v in stages.items()}, median(naive_ms)
    finally:
        if naive is not None:
            naive.terminate()
            naive.wait(20)
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=300, help="timed requests per app")
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print_machine(machine_info())
    with tempfile.TemporaryDirectory() as tmp:
        stages, naive_ms = run(args.requests, args.warmup, Path(tmp))
    rows = [[stage, f"{ms:.2f}"] for stage, ms in stages.items()]
    rows.append(["naive app, whole request", f"{naive_ms:.2f}"])
    rows.append(["stack p50 - naive p50", f"{stages['total'] - naive_ms:.2f}"])
    print(markdown_table(["one client, stage", "median ms"], rows))
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
