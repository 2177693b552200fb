"""``python -m benchmarks.latency``: where one client's request spends its time (issue 10).

Starts ``make run``'s stack and the naive app on the same served ``sketch2photo`` version's
files (as ``benchmarks.baseline`` does), the naive app on the graph the stack serves (the int8
copy where the manifest accepts it), then sends one request at a time,
alternating between the two (naive, stack, naive, ...), the 256x256 PNG sketch of the other
benchmarks. For each stack request it reads the job's timestamps (``GET /v1/jobs/{id}``,
untimed) and splits the client's latency into:

- ``api in``: the client sends -> the API has parsed, decoded and checked the upload and
  created the job (``created_at``);
- ``queue``: -> a worker claimed it (``started_at``: the API's queue check and its one Redis
  transaction with the record, the input and the Celery message, then the worker's consumer,
  task thread and job record reads);
- ``worker``: -> the worker stored the result (``finished_at``): input read, decode, fit,
  the batcher's hand-offs, the model (``model``, the ``X-Compute-Ms`` header), PNG encode;
- ``api out``: -> the client has the image (the finish script and its notification, the
  API's waiter, the result read, the response).

Prints medians per stage and the naive app's median for the whole request. Clients and
servers share the machine's clock: per request the stages add up to its total (their
medians only roughly).

``--marks`` splits the stages finer, with timestamps taken inside the API and the worker by
``benchmarks/stage_marks/sitecustomize.py`` (which this puts first on the stack's
``PYTHONPATH``; see its docstring for the marks): the median of each step between consecutive
marks, in the order a request passes them.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
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
MARKS_DIR = Path(__file__).parent / "stage_marks"  # its sitecustomize.py
# every timestamp of one request, in the order it passes them (client, job record, marks)
TIMELINE = ("sent", "created_at", "enqueue", "stored", "task",
            "started_at", "submit", "batched", "finish_in", "finished_at", "finish_out", "event",
            "waited", "response", "received")  # fmt: skip

Timestamps = dict[str, float]  # one request's unix times, by TIMELINE name


def stack_request(client: httpx.Client, image: bytes) -> tuple[str, Timestamps, float]:
    """One request through the stack: its job id, timestamps and X-Compute-Ms."""
    sent = time.time()
    response = client.post("/v1/translate", files={"image": ("s.png", image, "image/png")},
                           data={"model": MODEL})  # fmt: skip
    received = time.time()
    response.raise_for_status()
    job_id = response.headers["x-job-id"]
    t = client.get(f"/v1/jobs/{job_id}").json()["timings"]
    stamps = {"sent": sent, "received": received}
    stamps.update({k: t[k] for k in ("created_at", "started_at", "finished_at")})
    return job_id, stamps, float(response.headers["x-compute-ms"])


def stages(t: Timestamps, model_ms: float) -> dict[str, float]:
    """One request split into STAGES (ms)."""
    return {
        "api in": 1000 * (t["created_at"] - t["sent"]),
        "queue": 1000 * (t["started_at"] - t["created_at"]),
        "worker": 1000 * (t["finished_at"] - t["started_at"]),
        "model": model_ms,
        "api out": 1000 * (t["received"] - t["finished_at"]),
        "total": 1000 * (t["received"] - t["sent"]),
    }


def read_marks(folder: Path) -> dict[str, Timestamps]:
    """{job id: {mark: unix time}} from the files stage_marks/sitecustomize.py wrote."""
    marks: dict[str, Timestamps] = {}
    for path in folder.glob("*.txt"):
        for line in path.read_text().splitlines():
            name, job_id, at = line.split()
            marks.setdefault(job_id, {})[name] = float(at)
    return marks


def steps(requests: Sequence[Timestamps]) -> list[tuple[str, float]]:
    """("a -> b", median ms) between consecutive TIMELINE names every request has."""
    names = [n for n in TIMELINE if requests and all(n in t for t in requests)]
    return [
        (f"{a} -> {b}", median([1000 * (t[b] - t[a]) for t in requests]))
        for a, b in itertools.pairwise(names)
    ]


def naive_request(client: httpx.Client, image: bytes) -> float:
    sent = time.perf_counter()
    client.post("/v1/translate", files={"image": ("s.png", image, "image/png")}).raise_for_status()
    return 1000 * (time.perf_counter() - sent)


def run(
    requests: int, warmup: int, var: Path, marks: Path | None = None
) -> tuple[list[Timestamps], list[float], list[float]]:
    """Per timed stack request its timestamps (with the marks when ``marks`` is a folder)
    and X-Compute-Ms; and the naive app's request times (ms)."""
    env = {"S2I_LOG_LEVEL": "WARNING", "S2I_MODELS": MODEL}
    if marks is not None:
        repo = MARKS_DIR.parents[1]  # importable from any working directory
        path = [str(MARKS_DIR), str(repo), os.environ.get("PYTHONPATH", "")]
        env.update(S2I_STAGE_MARKS=str(marks), PYTHONPATH=os.pathsep.join(filter(None, path)))
    stack = LocalStack(var_dir=var, api_port=free_port(), trainer=False, env=env)
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
        timed: dict[str, Timestamps] = {}
        model_ms: list[float] = []
        naive_ms: list[float] = []
        with (
            httpx.Client(base_url=stack.base_url, timeout=60) as to_stack,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as to_naive,
        ):
            for i in range(warmup + requests):
                n = naive_request(to_naive, image)
                job_id, stamps, compute_ms = stack_request(to_stack, image)
                if i >= warmup:
                    naive_ms.append(n)
                    timed[job_id] = stamps
                    model_ms.append(compute_ms)
    finally:
        if naive is not None:
            naive.terminate()
            naive.wait(20)
        stack.stop()
    if marks is not None:
        for job_id, inside in read_marks(marks).items():
            if job_id in timed:
                timed[job_id].update(inside)
    return list(timed.values()), model_ms, naive_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=300, help="timed requests per app")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--marks", action="store_true",
                        help="also time the steps inside the API and the worker")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print_machine(machine_info())
    with tempfile.TemporaryDirectory() as tmp:
        marks = Path(tmp) / "marks" if args.marks else None
        if marks is not None:
            marks.mkdir()
        timed, model_ms, naive_ms = run(args.requests, args.warmup, Path(tmp), marks)
    split = [stages(t, ms) for t, ms in zip(timed, model_ms, strict=True)]
    medians = {s: median([row[s] for row in split]) for s in STAGES}
    rows = [[stage, f"{ms:.2f}"] for stage, ms in medians.items()]
    rows.append(["naive app, whole request", f"{median(naive_ms):.2f}"])
    rows.append(["stack p50 - naive p50", f"{medians['total'] - median(naive_ms):.2f}"])
    print(markdown_table(["one client, stage", "median ms"], rows))
    if marks is not None:
        print()
        print(markdown_table(["one client, step", "median ms"],
                             [[step, f"{ms:.2f}"] for step, ms in steps(timed)]))  # fmt: skip
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
