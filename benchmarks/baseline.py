"""``python -m benchmarks.baseline``: the stack against the naive one-process app (issue 10).

Starts ``make run``'s stack (Redis, one worker, the API; the bundled models) and the naive app
of ``benchmarks/naive_app.py`` on the same served ``sketch2photo`` version files (twice where
the version has an int8 copy: ``naive`` runs model.onnx, ``naive-int8`` the int8 graph, which
the stack serves where its manifest accepts it), then drives each with the same closed-loop
clients and the same 256x256 PNG sketch, interleaved (naive, naive-int8, stack, naive, ...)
at each ``--clients`` level, and prints per level:
req/s, p50 and p99 latency, errors, CPU ms per request summed over the serving processes
(the stack: API + worker + Redis; naive: its one process), and each one's throughput over the
faster naive app's (``vs naive``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from benchmarks.common import (
    cpu_seconds,
    load_average,
    machine_info,
    markdown_table,
    parse_int_list,
    print_machine,
    sketch_png,
)
from benchmarks.load import LoadResult, drive
from services.local import LocalStack, free_port, wait_until
from shared.registry import Registry

log = logging.getLogger(__name__)

MODEL = "sketch2photo"
# the naive app on model.onnx, on its int8 copy (where the version has one), and the stack
# (which serves the int8 copy where its manifest accepts it: S2I_PRECISION=auto)
TARGETS = ("naive", "naive-int8", "stack")


def start_naive(
    version_dir: Path, port: int, log_path: Path, precision: str = "fp32"
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "S2I_NAIVE_MODEL_DIR": str(version_dir), "S2I_NAIVE_PRECISION": precision}
    args = [sys.executable, "-m", "uvicorn", "benchmarks.naive_app:app", "--port", str(port),
            "--no-access-log", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(args, env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/healthz"
    wait_until(lambda: httpx.get(url).status_code == 200, 60, "the naive app")
    return proc


def phase(url: str, pids: list[int], clients: int, seconds: float, image: bytes) -> LoadResult:
    """One timed closed-loop phase; the serving processes' CPU seconds in ``cpu_s``."""
    result = LoadResult(url)
    before = sum(cpu_seconds(p) for p in pids)
    asyncio.run(drive(url, result, clients=clients, seconds=seconds, max_requests=10**6,
                      model=MODEL, timeout_s=120, image=image))  # fmt: skip
    result.cpu_s = {"serving": sum(cpu_seconds(p) for p in pids) - before}
    return result


def merge(results: list[LoadResult]) -> LoadResult:
    out = LoadResult(results[0].mode)
    for r in results:
        out.seconds += r.seconds
        out.latencies_ms += r.latencies_ms
        out.errors.update(r.errors)
        out.cpu_s["serving"] = out.cpu_s.get("serving", 0.0) + r.cpu_s["serving"]
    return out


def run(args: argparse.Namespace, var: Path) -> list[list[object]]:
    env = {"S2I_LOG_LEVEL": "WARNING", **args.stack_env}
    stack = LocalStack(var_dir=var, api_port=free_port(), trainer=False, env=env)
    naive: dict[str, subprocess.Popen[bytes]] = {}
    try:
        stack.start()
        stack.wait_ready()
        registry = Registry(stack.model_root)
        current = registry.current(MODEL) or 1
        version = registry.version_dir(MODEL, current)
        targets = [t for t in TARGETS if t != "naive-int8" or registry.manifest(MODEL).quantized]
        urls, pids = {"stack": stack.base_url}, {}
        for target in (t for t in targets if t != "stack"):
            port = free_port()
            precision = "int8" if target == "naive-int8" else "fp32"
            log_path = var / "logs" / f"{target}.log"
            naive[target] = start_naive(version, port, log_path, precision)
            urls[target], pids[target] = f"http://127.0.0.1:{port}", [naive[target].pid]
        serving = ("api", "worker0", "redis")
        pids["stack"] = [proc.pid for name, proc in stack.procs.items() if name in serving]
        image = sketch_png(256)
        rows: list[list[object]] = []
        for clients in args.clients:
            runs: dict[str, list[LoadResult]] = {t: [] for t in targets}
            for target in targets:  # warm-up, untimed
                phase(urls[target], pids[target], clients, args.warmup, image)
            for _ in range(args.rounds):
                for target in targets:
                    runs[target].append(
                        phase(urls[target], pids[target], clients, args.seconds, image)
                    )
            merged = {t: merge(r) for t, r in runs.items()}
            best_naive = max(r.rps for t, r in merged.items() if t != "stack")
            for target, r in merged.items():
                cpu_ms = 1000 * r.cpu_s["serving"] / r.ok if r.ok else float("nan")
                ratio = r.rps / best_naive if best_naive else float("nan")
                rows.append([clients, target, f"{r.rps:.1f}", f"{r.p(50):.0f}", f"{r.p(99):.0f}",
                             sum(r.errors.values()), f"{cpu_ms:.1f}", f"{ratio:.2f}"])  # fmt: skip
            print(f"  {clients} clients done; load average {load_average()}", flush=True)
        return rows
    finally:
        for proc in naive.values():
            proc.terminate()
            proc.wait(20)
        stack.stop()


def setting(text: str) -> tuple[str, str]:
    """``S2I_X=VALUE`` -> (name, value)."""
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("S2I_"):
        raise argparse.ArgumentTypeError(f"expected S2I_NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=parse_int_list, default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=10.0, help="per timed phase")
    parser.add_argument("--rounds", type=int, default=2, help="timed phases per target")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--stack-env",
        action="append",
        default=[],
        type=setting,
        metavar="S2I_X=VALUE",
        help="a setting for the stack's processes, e.g. S2I_ONNX_SPINNING=true; repeat",
    )
    args = parser.parse_args(argv)
    args.stack_env = dict(args.stack_env)
    logging.basicConfig(level=logging.WARNING)
    print_machine(machine_info())
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args, Path(tmp))
    header = ["clients", "app", "req/s", "p50 ms", "p99 ms", "errors", "CPU ms/req",
              "vs faster naive"]  # fmt: skip
    print(markdown_table(header, rows))
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
