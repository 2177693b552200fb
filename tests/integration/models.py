"""Publishing models for the integration tests: real exports, plus deliberately broken ones."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from services.trainer.nets import UNetGenerator, build_serving_net, init_weights
from services.trainer.publishing.bootstrap import (
    ARCH_KWARGS,
    MODELS,
    manifest_for,
    publish_generator,
)
from services.trainer.publishing.export import ONNX_FILE, export_model, export_onnx
from shared.manifest import Manifest, TensorSpec
from shared.registry import Registry


def generator(seed: int) -> nn.Module:
    """An untrained but deterministic bootstrap-shaped U-Net (eval mode)."""
    torch.manual_seed(seed)
    netG = UNetGenerator(**ARCH_KWARGS)  # type: ignore[arg-type]
    init_weights(netG)
    return netG.eval()


def publish(
    registry: Registry,
    name: str,
    seed: int,
    task: str = "sketch2photo",
    *,
    make_current: bool = True,
) -> Manifest:
    spec = next(m for m in MODELS if m.task == task)
    manifest = manifest_for(spec, {"val_l1": 1.0, "steps": seed}).model_copy(update={"name": name})
    return publish_generator(registry, generator(seed), manifest, make_current=make_current)


class NaNNet(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tensor(float("nan"))


class BrightNaNNet(nn.Module):
    """The identity, but NaN for an all-white image: passes the random canary."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.mean(dim=(1, 2, 3), keepdim=True) > 0.999  # (N, 1, 1, 1): all white
        return torch.where(bright, torch.full_like(x, float("nan")), x)


def publish_bright_nan(registry: Registry, name: str) -> Manifest:
    """A version (the bootstrap manifest, another net) whose output is NaN on white images."""
    spec = next(m for m in MODELS if m.task == "sketch2photo")
    manifest = manifest_for(spec, {"val_l1": 1.0}).model_copy(update={"name": name})
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(
            BrightNaNNet(), torch.zeros(manifest.input.shape(1)), Path(tmp) / ONNX_FILE
        )
        return registry.publish(manifest, {ONNX_FILE: path})


def publish_nan(registry: Registry, name: str) -> Manifest:
    """A version whose export is valid but whose outputs are NaN (the canary must refuse it)."""
    template = registry.manifest(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(NaNNet(), torch.zeros(template.input.shape(1)), Path(tmp) / ONNX_FILE)
        return registry.publish(
            template.model_copy(update={"parent_version": None}), {ONNX_FILE: path}
        )


def publish_tampered(registry: Registry, name: str, seed: int) -> Manifest:
    """A good version whose ONNX file is changed after publishing (sha256 no longer matches).
    CURRENT moves to it only once it is tampered with: a worker polling in between would
    otherwise load the good file and never see the bad one."""
    manifest = publish(registry, name, seed, make_current=False)
    path = registry.version_dir(name, manifest.version) / ONNX_FILE
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    registry.set_current(name, manifest.version)
    return manifest


def publish_dcgan(
    registry: Registry,
    name: str,
    *,
    z_dim: int = 16,
    seed: int = 0,
    gain: float = 0.02,
    description: str = "",
) -> Manifest:
    """A class-conditional (cat, dog) DCGAN generate model, untrained but deterministic;
    weights N(0, gain): DCGAN's 0.02 gives a near-flat grey, 0.2 images with structure."""
    kwargs = {"z_dim": z_dim, "ngf": 8, "num_classes": 2}
    torch.manual_seed(seed)
    net = init_weights(build_serving_net("dcgan", **kwargs), gain=gain).eval()
    noise = TensorSpec(
        kind="noise", z_dim=z_dim, num_classes=2, class_names=["cat", "dog"], layout="NC"
    )
    image = TensorSpec(kind="image", height=32, width=32)
    manifest = Manifest(
        name=name,
        task="generate",
        architecture="dcgan",
        arch_kwargs=kwargs,
        recipe="siamese-gan",
        input=noise,
        output=image,
        description=description,
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = export_model(net, noise.shape(1), Path(tmp))
        return registry.publish(manifest, result.files)
