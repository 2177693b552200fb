"""Small builders shared by the serving-core tests (registry, export, backends, worker)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from services.trainer.publishing.export import export_model
from shared.manifest import Manifest, TensorSpec
from shared.registry import Registry

# architecture -> (constructor kwargs, input shape without the batch axis): tiny but complete
TINY_ARCHS: dict[str, tuple[dict[str, int], tuple[int, ...]]] = {
    "unet": ({"ngf": 4, "num_downs": 5}, (3, 32, 32)),
    "resnet": ({"ngf": 4, "n_blocks": 2}, (3, 16, 16)),
    "resnet-cgan": ({"ngf": 4, "n_blocks": 2}, (3, 16, 16)),
    "sketchy": ({"ngf": 4, "noise_dim": 8, "num_levels": 3}, (3, 16, 16)),
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


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
