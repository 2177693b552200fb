"""``python -m benchmarks.worker_footprint``: one CPU worker's start-up time and memory with
every bundled model loaded, against the same worker loading only the two default face models
(``S2I_MODELS``), so a deployment can choose what to load.

For each case it starts the local stack (``make run``'s Redis, one worker and the API) on the
bundled models in a temporary folder, times from the worker process's start to ``/readyz``
answering 200 with every wanted model listed by ``/v1/models`` (polled every 0.2 s), then
sends one request to each model (the first request warms a model's ONNX session) and reads
the worker's resident memory (RSS) and peak (``VmHWM``). ``--repeats`` start-ups per case;
the medians are printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import (
    load_average,
    machine_info,
    markdown_table,
    median,
    memory_mb,
    print_machine,
    sketch_png,
)
from services.local import LocalStack, free_port, wait_until
from shared.bundled import bundled_names
from shared.manifest import Manifest
from shared.settings import get_settings

log = logging.getLogger(__name__)


def call(base: str, manifest: Manifest) -> int:
    """One request to the model, the way a user sends it; its HTTP status."""
    if manifest.task == "generate":
        r = httpx.post(base + "/v1/generate", json={"model": manifest.name, "seed": 1}, timeout=60)
    else:
        files = {"image": ("s.png", sketch_png(256))}
        r = httpx.post(
            base + "/v1/translate", files=files, data={"model": manifest.name}, timeout=60
        )
    return r.status_code


def started_at(pid: int) -> float:
    """When process ``pid`` started (Unix time, 10 ms resolution), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[19])  # field 22 of stat(5): start time in clock ticks after boot
    boot = next(
        int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )  # fmt: skip
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def measure(models: list[str], wanted: str) -> dict[str, float]:
    """Start-up seconds and worker memory for a worker loading ``wanted`` (S2I_MODELS)."""
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(
            var_dir=Path(tmp), api_port=free_port(), trainer=False, env={"S2I_MODELS": wanted}
        )
        stack.start()
        try:
            names = wanted.split(",") if wanted else models

            def ready() -> bool:
                if httpx.get(stack.base_url + "/readyz").status_code != 200:
                    return False
                listed = httpx.get(stack.base_url + "/v1/models").json()["models"]
                return set(names) <= {m["name"] for m in listed}

            wait_until(ready, 180, "the worker serving its models")
            startup_s = time.time() - started_at(stack.procs["worker0"].pid)
            listed = httpx.get(stack.base_url + "/v1/models").json()["models"]
            idle_mb = memory_mb(stack.procs["worker0"].pid)
            statuses = [call(stack.base_url, Manifest.model_validate(m)) for m in listed]
            pid = stack.procs["worker0"].pid
            return {
                "models": float(len(listed)),
                "startup_s": startup_s,
                "rss_loaded_mb": idle_mb,
                "rss_after_one_call_each_mb": memory_mb(pid),
                "peak_mb": memory_mb(pid, "VmHWM"),
                "failed_calls": float(sum(s != 200 for s in statuses)),
            }
        finally:
            stack.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print_machine(machine_info())
    s = get_settings()
    models = bundled_names()
    cases = {
        f"all {len(models)} bundled models": "",
        "the two defaults (S2I_MODELS)": f"{s.default_sketch2photo_model},"
        f"{s.default_photo2sketch_model}",
    }
    rows = []
    for label, wanted in cases.items():
        runs = [measure(models, wanted) for _ in range(args.repeats)]
        m = {k: median([r[k] for r in runs]) for k in runs[0]}
        rows.append(
            [label, int(m["models"]), f"{m['startup_s']:.1f}", f"{m['rss_loaded_mb']:.0f}",
             f"{m['rss_after_one_call_each_mb']:.0f}", f"{m['peak_mb']:.0f}",
             int(m["failed_calls"])]
        )  # fmt: skip
    header = ["worker loads", "models", "start-up s", "RSS loaded MB", "RSS after a call each MB",
              "peak MB", "failed calls"]  # fmt: skip
    print(markdown_table(header, rows))
    print(f"\nload average at the end: {load_average()}; medians of {args.repeats} start-ups")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
