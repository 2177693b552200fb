"""``python -m benchmarks.load``: the whole service under load, batching on vs off.

Starts a :class:`~services.local.LocalStack` (Redis, one worker, the API) on a free loopback
port in a temporary folder, with the bootstrap UNet (untrained weights) in its model volume,
and drives it with ``--clients`` concurrent clients (asyncio + httpx), each posting a
128x128 PNG sketch to ``POST /v1/translate`` in a closed loop for ``--seconds`` after a
warm-up. It does this twice in the same run, restarting the stack in between:

- batching on:  ``S2I_MAX_BATCH_SIZE=16``, ``S2I_MAX_QUEUE_DELAY_MS=10``
- batching off: ``S2I_MAX_BATCH_SIZE=1``

and prints throughput (req/s), latency p50/p95/p99, errors, the worker's mean batch size
(from ``/metrics``), and the ratios ``batching_on/off`` of throughput and of p50.
Traffic stays on 127.0.0.1, and every run is bounded by time and by ``--max-requests``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.common import (
    BENCH_MODELS,
    cpu_seconds,
    load_average,
    machine_info,
    markdown_table,
    parse_int_list,
    percentile,
    print_machine,
    publish_untrained,
    ratio,
    sketch_png,
)
from services.local import LocalStack, free_port
from shared.registry import Registry

log = logging.getLogger(__name__)

MODES = {
    "on": {"S2I_MAX_BATCH_SIZE": "16", "S2I_MAX_QUEUE_DELAY_MS": "10"},
    "off": {"S2I_MAX_BATCH_SIZE": "1"},
}

CPU_COLUMNS = ("api", "worker0", "redis", "client")


@dataclass
class LoadResult:
    mode: str
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # successful requests only
    queue_ms: list[float] = field(default_factory=list)  # X-Queue-Ms
    compute_ms: list[float] = field(default_factory=list)  # X-Compute-Ms (whole batch)
    errors: Counter[str] = field(default_factory=Counter)  # status code or exception type
    mean_batch: float = float("nan")
    cpu_s: dict[str, float] = field(default_factory=dict)  # process -> CPU s in the timed phase

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else float("nan")

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


# --- the clients -----------------------------------------------------------------------------
def _header_ms(headers: httpx.Headers, name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


async def drive(
    base_url: str,
    result: LoadResult,
    *,
    clients: int,
    seconds: float,
    max_requests: int,
    model: str,
    timeout_s: float,
    image: bytes | None = None,
) -> None:
    """``clients`` closed-loop clients until ``seconds`` pass or ``max_requests`` are sent,
    each posting ``image`` (default: the 128x128 benchmark sketch)."""
    png = image or sketch_png()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    sent = 0

    async def client(http: httpx.AsyncClient, deadline: float) -> None:
        nonlocal sent
        while time.perf_counter() < deadline and sent < max_requests:
            sent += 1
            t0 = time.perf_counter()
            try:
                resp = await http.post(
                    "/v1/translate",
                    files={"image": ("sketch.png", png, "image/png")},
                    data={"model": model},
                )
            except httpx.HTTPError as exc:
                result.errors[type(exc).__name__] += 1
                continue
            elapsed_ms = (time.perf_counter() - t0) * 1000
            if resp.status_code != 200:
                result.errors[str(resp.status_code)] += 1
                continue
            result.latencies_ms.append(elapsed_ms)
            for name, values in (("X-Queue-Ms", result.queue_ms),
                                 ("X-Compute-Ms", result.compute_ms)):  # fmt: skip
                value = _header_ms(resp.headers, name)
                if value is not None:
                    values.append(value)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout_s) as http:
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(client(http, deadline) for _ in range(clients)))
        result.seconds = time.perf_counter() - start  # includes requests in flight at the end


def batch_totals(base_url: str) -> tuple[float, float]:
    """(sum, count) of the worker's ``s2i_batch_size`` histogram, over every label set."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    totals = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        m = re.match(r"s2i_batch_size_(sum|count)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m:
            totals[m.group(1)] += float(m.group(3))
    return totals["sum"], totals["count"]


def padding_ladder(text: str) -> list[int]:
    """``S2I_BATCH_SIZES`` from ``--batch-sizes``: "all" is every size up to 16 (no padding)."""
    return list(range(1, 17)) if text == "all" else parse_int_list(text)


def process_cpu(stack: LocalStack) -> dict[str, float]:
    """CPU seconds so far of each of the stack's processes and of this (client) process."""
    pids = {name: proc.pid for name, proc in stack.procs.items()}
    return {name: cpu_seconds(pid) for name, pid in {**pids, "client": os.getpid()}.items()}


# --- one stack, one mode ---------------------------------------------------------------------
def start_stack(mode: str, model_root: Path, var_dir: Path, args: argparse.Namespace) -> LocalStack:
    """A ready stack configured for ``mode`` (stopped again if it does not come up)."""
    env = {
        "S2I_MODEL_ROOT": str(model_root),
        "S2I_LOG_LEVEL": "WARNING",
        "S2I_RELOAD_INTERVAL_S": "5",
        **MODES[mode],
    }
    if args.worker_threads:
        env["S2I_INTRA_OP_THREADS"] = str(args.worker_threads)
    if mode == "on" and args.queue_delay_ms is not None:
        env["S2I_MAX_QUEUE_DELAY_MS"] = str(args.queue_delay_ms)
    if args.batch_sizes:  # the padding ladder; "all" pads nothing
        env["S2I_BATCH_SIZES"] = json.dumps(padding_ladder(args.batch_sizes))
    stack = LocalStack(var_dir=var_dir / mode, api_port=free_port(), env=env, bootstrap=False)
    t0 = time.perf_counter()
    try:
        stack.start()
        stack.wait_ready(timeout=args.ready_timeout)
    except BaseException:
        stack.stop()
        raise
    print(f"  [{mode}] stack ready in {time.perf_counter() - t0:.1f} s", flush=True)
    return stack


def measure(stack: LocalStack, mode: str, args: argparse.Namespace) -> LoadResult:
    """Warm up, then one timed phase against ``stack``."""
    result = LoadResult(mode)
    common = {"clients": args.clients, "max_requests": args.max_requests,
              "model": args.model, "timeout_s": args.timeout}  # fmt: skip
    asyncio.run(drive(stack.base_url, LoadResult(mode), seconds=args.warmup, **common))
    before = batch_totals(stack.base_url)
    cpu_before = process_cpu(stack)
    asyncio.run(drive(stack.base_url, result, seconds=args.seconds, **common))
    cpu_after = process_cpu(stack)
    after = batch_totals(stack.base_url)
    result.cpu_s = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
    if after[1] > before[1]:
        result.mean_batch = (after[0] - before[0]) / (after[1] - before[1])
    print(
        f"  [{mode}] {result.ok} ok in {result.seconds:.1f} s: {result.rps:.1f} req/s, "
        f"p50 {result.p(50):.0f} ms, errors {dict(result.errors) or 0}",
        flush=True,
    )
    return result


def run_modes(
    modes: list[str], model_root: Path, var_dir: Path, args: argparse.Namespace
) -> dict[str, LoadResult]:
    """One stack per mode, each started only after the previous one has stopped."""
    results: dict[str, LoadResult] = {}
    for mode in modes:
        stack = start_stack(mode, model_root, var_dir, args)
        try:
            results[mode] = measure(stack, mode, args)
        finally:
            stack.stop()
    return results


# --- report ----------------------------------------------------------------------------------
def row(r: LoadResult, clients: int) -> list[object]:
    return [
        r.mode, clients, r.ok, sum(r.errors.values()), f"{r.rps:.1f}",
        f"{r.p(50):.0f}", f"{r.p(95):.0f}", f"{r.p(99):.0f}",
        f"{percentile(r.queue_ms, 50):.0f}", f"{percentile(r.compute_ms, 50):.0f}",
        f"{r.mean_batch:.2f}",
    ]  # fmt: skip


def cpu_row(r: LoadResult) -> list[object]:
    total = sum(r.cpu_s.values())
    return [
        r.mode, *(f"{r.cpu_s.get(name, float('nan')):.1f}" for name in CPU_COLUMNS),
        f"{total:.1f}", f"{total / r.seconds:.2f}" if r.seconds else "nan",
        f"{1000 * total / r.ok:.0f}" if r.ok else "nan",
    ]  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="timed phase per mode")
    parser.add_argument("--warmup", type=float, default=5.0, help="untimed phase per mode")
    parser.add_argument("--max-requests", type=int, default=100_000, help="cap per phase")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--model", default="sketch2photo", help="model field (or auto)")
    parser.add_argument("--modes", default="on,off")
    parser.add_argument(
        "--worker-threads",
        type=int,
        default=0,
        help="S2I_INTRA_OP_THREADS for the worker (0: runtime default)",
    )
    parser.add_argument(
        "--batch-sizes",
        default="",
        help="S2I_BATCH_SIZES, the sizes batches are padded to, e.g. 1,2,4,8,16 "
        "or 'all' (no padding); default: the worker's",
    )
    parser.add_argument(
        "--queue-delay-ms",
        type=float,
        help="S2I_MAX_QUEUE_DELAY_MS with batching on (default 10)",
    )
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument(
        "--model-root",
        type=Path,
        default=None,
        help="model volume with the benchmark models (published if missing)",
    )
    args = parser.parse_args(argv)
    if args.batch_sizes:
        try:
            padding_ladder(args.batch_sizes)
        except ValueError as exc:
            parser.error(str(exc))
    if args.quick:
        args.clients, args.seconds, args.warmup, args.max_requests = 4, 1.5, 0.5, 200
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation notes
    args = parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"unknown modes {sorted(unknown)}; known: {sorted(MODES)}")
    print("# benchmarks.load\n")
    print_machine(machine_info())
    with tempfile.TemporaryDirectory(prefix="s2i-load-") as tmp:
        model_root = args.model_root or Path(tmp) / "models"
        needed = BENCH_MODELS if args.model == "auto" else (args.model,)
        missing = [n for n in needed if Registry(model_root).current(n) is None]
        if missing:
            publish_untrained(model_root, names=missing)
        results = run_modes(modes, model_root, Path(tmp), args)
    print(
        f"\n## POST /v1/translate, {args.clients} clients, {args.seconds:g} s per mode "
        f"(after {args.warmup:g} s warm-up), model {args.model}\n"
    )
    print(markdown_table(
        ["batching", "clients", "ok", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms",
         "X-Queue-Ms p50", "X-Compute-Ms p50", "mean batch"],
        [row(r, args.clients) for r in results.values()]))  # fmt: skip
    print(f"\nCPU seconds used during the {args.seconds:g} s timed phase, by process:\n")
    print(markdown_table(["batching", *CPU_COLUMNS, "total", "cores busy", "CPU ms / request"],
                         [cpu_row(r) for r in results.values()]))  # fmt: skip
    print()
    if "on" in results and "off" in results:
        on, off = results["on"], results["off"]
        print(f"batching_on/off = {ratio(on.rps, off.rps):.2f} (throughput)")
        print(f"batching_on/off p50 = {ratio(on.p(50), off.p(50)):.2f} (latency; < 1 is better)")
    print(f"\nload average after: {load_average()}")
    return 0 if all(r.ok for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
