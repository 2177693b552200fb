"""Small builders shared by the tests (registry, export, backends, worker, the s2i CLI)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from redis.asyncio import Redis as AsyncRedis
from torch import nn

from services.trainer.nets import build_serving_net, init_weights
from services.trainer.publishing.export import export_model
from shared.job_store import AsyncJobStore
from shared.jobs import JobRecord, new_job_id
from shared.manifest import Manifest, TensorSpec
from shared.registry import Registry
from tests.images import sketch_png

REPO_ROOT = Path(__file__).parents[1]


def s2i_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``s2i`` command line (``shared.client_cli``) with ``args``; its result."""
    return subprocess.run(
        [sys.executable, "-m", "shared.client_cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# architecture -> (constructor kwargs, input shape without the batch axis): tiny but complete
TINY_ARCHS: dict[str, tuple[dict[str, int], tuple[int, ...]]] = {
    "unet": ({"ngf": 4, "num_downs": 5}, (3, 32, 32)),
    "resnet": ({"ngf": 4, "n_blocks": 2}, (3, 16, 16)),
    "resnet-cgan": ({"ngf": 4, "n_blocks": 2}, (3, 16, 16)),
    "sketchy": ({"ngf": 4, "noise_dim": 8, "num_levels": 3}, (3 + 1, 16, 16)),  # + noise plane
    "dcgan": ({"z_dim": 16, "ngf": 8, "num_classes": 2}, (18,)),
    "vae": ({"z_dim": 8, "nf": 8}, (8,)),
}


def image_spec(size: int = 8) -> TensorSpec:
    return TensorSpec(kind="image", height=size, width=size, channels=3)


def make_manifest(name: str = "m", *, size: int = 8, **extra: Any) -> Manifest:
    """A sketch2photo manifest for (N, 3, size, size) -> (N, 3, size, size)."""
    fields: dict[str, Any] = {
        "name": name,
        "task": "sketch2photo",
        "architecture": "tiny-conv",
        "recipe": "test",
        "input": image_spec(size),
        "output": image_spec(size),
    }
    fields.update(extra)
    return Manifest(**fields)


def write_files(folder: Path, contents: Mapping[str, bytes]) -> dict[str, Path]:
    """Write source files for a publish; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for filename, data in contents.items():
        path = folder / filename
        path.write_bytes(data)
        paths[filename] = path
    return paths


class TinyConv(nn.Module):
    """(N, 3, H, W) -> (N, 3, H, W): a seeded 3x3 conv + tanh, quick to export."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        weight, bias = self.conv.weight, self.conv.bias
        assert bias is not None
        with torch.no_grad():
            weight.copy_(torch.randn(weight.shape, generator=gen) * 0.5)
            bias.copy_(torch.randn(bias.shape, generator=gen) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x))  # (N, 3, H, W)


def publish_tiny(
    registry: Registry,
    name: str,
    work_dir: Path,
    *,
    seed: int,
    size: int = 8,
    make_current: bool = True,
) -> tuple[Manifest, TinyConv]:
    """Export TinyConv(seed) to ONNX + TorchScript for real and publish it; returns the net too."""
    net = TinyConv(seed).eval()
    out_dir = work_dir / f"export-{name}-{seed}"
    result = export_model(net, (1, 3, size, size), out_dir, check_batches=(2,))
    manifest = registry.publish(
        make_manifest(name, size=size), result.files, make_current=make_current
    )
    return manifest, net


def publish_tiny_sketchy(
    registry: Registry,
    name: str,
    work_dir: Path,
    *,
    seed: int = 0,
    size: int = 16,
    gain: float = 0.3,
) -> Manifest:
    """A tiny SketchyGAN sketch2photo model with noise, exported for real (ONNX + TorchScript)
    and published: input (N, 3 + 1, size, size), the sketch then the noise plane. Weights are
    N(0, ``gain``): large enough that each noise vector visibly changes the image."""
    kwargs, _ = TINY_ARCHS["sketchy"]
    torch.manual_seed(seed)
    net = init_weights(build_serving_net("sketchy", **kwargs), gain=gain).eval()
    noisy = TensorSpec(height=size, width=size, channels=3 + 1, noise_dim=kwargs["noise_dim"])
    manifest = make_manifest(
        name, size=size, architecture="sketchy", arch_kwargs=kwargs, recipe="sketchygan",
        input=noisy,
    )  # fmt: skip
    result = export_model(
        net, noisy.shape(1), work_dir / f"export-{name}-{seed}", check_batches=(2,)
    )
    return registry.publish(manifest, result.files)


def store_job(redis_url: str, model: str, data: bytes | None = None, **fields: Any) -> str:
    """Store a job (and ``data``, by default a 32 px sketch, as its input) as the API does;
    its id."""
    job = JobRecord(id=new_job_id(), model=model, **fields)

    async def create() -> None:
        redis = AsyncRedis.from_url(redis_url)
        try:
            await AsyncJobStore(redis, 60, 60).create(job, data or sketch_png(1, size=32))
        finally:
            await redis.aclose()

    asyncio.run(create())
    return job.id


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
