"""Tiny demo models trained in a minute or two on the synthetic shapes, with no dataset.

``python -m services.trainer bootstrap --synthetic`` trains and publishes
``shapes-sketch2photo`` and ``shapes-photo2sketch`` (models that already have a served
version are left alone): a minimal pix2pix within a time budget on two CPU cores. The tests
build their throwaway models from the same pieces. The models a fresh install serves are the
bundled FS2K ones (``shared.bundled``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.utils.data import DataLoader

from services.trainer.data.synthetic import SyntheticPairs
from services.trainer.nets import (
    NLayerDiscriminator,
    UNetGenerator,
    build_serving_net,
    init_weights,
)
from services.trainer.publishing.export import export_model
from shared.manifest import Manifest, TensorSpec
from shared.registry import Registry

log = logging.getLogger(__name__)

IMAGE_SIZE = 128
# instance norm: eval-mode batch-norm statistics wash a GAN generator's output out (see
# services/trainer/recipes/pix2pix.py)
ARCH_KWARGS = {"in_channels": 3, "out_channels": 3, "num_downs": 7, "ngf": 16, "norm": "instance"}


@dataclass(frozen=True)
class BootstrapModel:
    name: str
    task: Literal["sketch2photo", "photo2sketch"]
    source: str  # key of the input in a SyntheticPairs item: "A" sketch, "B" photo
    target: str


MODELS = (
    BootstrapModel("shapes-sketch2photo", "sketch2photo", "A", "B"),
    BootstrapModel("shapes-photo2sketch", "photo2sketch", "B", "A"),
)


def train_minimal_pix2pix(
    spec: BootstrapModel,
    *,
    budget_s: float = 100.0,
    max_steps: int = 100_000,
    batch_size: int = 4,
    lr: float = 5e-4,
    lambda_l1: float = 100.0,
    seed: int = 0,
) -> tuple[nn.Module, dict[str, float]]:
    """pix2pix (GAN + λ·L1, PatchGAN on (input, output)) until the budget or step limit."""
    torch.manual_seed(seed)
    netG = UNetGenerator(**ARCH_KWARGS)  # type: ignore[arg-type]
    netD = NLayerDiscriminator(in_channels=6, ndf=32, n_layers=2)
    init_weights(netG)
    init_weights(netD)
    opt_G = torch.optim.Adam(netG.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(netD.parameters(), lr=lr, betas=(0.5, 0.999))
    gan_loss = nn.BCEWithLogitsLoss()
    data = DataLoader(
        SyntheticPairs(100_000, size=IMAGE_SIZE, seed=seed),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    start = time.monotonic()
    step, l1_value = 0, float("nan")
    for step, batch in enumerate(data, start=1):
        real_A, real_B = batch[spec.source], batch[spec.target]  # (N, 3, H, W) each
        fake_B = netG(real_A)
        # D: real pairs -> 1, fake pairs -> 0
        pred_real = netD(torch.cat([real_A, real_B], 1))
        pred_fake = netD(torch.cat([real_A, fake_B.detach()], 1))
        loss_D = 0.5 * (
            gan_loss(pred_real, torch.ones_like(pred_real))
            + gan_loss(pred_fake, torch.zeros_like(pred_fake))
        )
        opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        opt_D.step()
        # G: fool D, stay close to the target
        pred_fake = netD(torch.cat([real_A, fake_B], 1))
        loss_l1 = (fake_B - real_B).abs().mean()
        loss_G = gan_loss(pred_fake, torch.ones_like(pred_fake)) + lambda_l1 * loss_l1
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
        l1_value = float(loss_l1)
        if step % 50 == 0:
            log.info(
                "%s step %d: loss_D %.3f loss_G %.3f L1 %.3f",
                spec.name,
                step,
                float(loss_D),
                float(loss_G),
                l1_value,
            )
        if step >= max_steps or time.monotonic() - start > budget_s:
            break
    netG.eval()
    return netG, {"train_l1": l1_value, "steps": float(step), "val_l1": validation_l1(netG, spec)}


@torch.no_grad()
def validation_l1(netG: nn.Module, spec: BootstrapModel, n: int = 16) -> float:
    """Mean L1 between output and target on held-out synthetic pairs."""
    netG.eval()
    val = SyntheticPairs(n, size=IMAGE_SIZE, seed=0, split="val")
    batch = next(iter(DataLoader(val, batch_size=n)))
    return float((netG(batch[spec.source]) - batch[spec.target]).abs().mean())


def manifest_for(spec: BootstrapModel, metrics: dict[str, float]) -> Manifest:
    image = TensorSpec(kind="image", height=IMAGE_SIZE, width=IMAGE_SIZE)
    return Manifest(
        name=spec.name,
        task=spec.task,
        architecture="unet",
        arch_kwargs=ARCH_KWARGS,
        recipe="pix2pix",
        input=image,
        output=image,
        metrics={"val_l1": metrics["val_l1"]},
        dataset="synthetic-shapes",
        steps=int(metrics.get("steps", 0)),
        description="Bootstrap pix2pix on the project's synthetic shapes (offline demo model)",
    )


def publish_generator(
    registry: Registry, netG: nn.Module, manifest: Manifest, *, make_current: bool = True
) -> Manifest:
    """Wrap, export (TorchScript + ONNX, parity-checked) and publish one generator."""
    serving = build_serving_net(manifest.architecture, **manifest.arch_kwargs)
    serving.load_state_dict({f"netG.{k}": v for k, v in netG.state_dict().items()})
    with tempfile.TemporaryDirectory() as tmp:
        result = export_model(serving, manifest.input.shape(1), Path(tmp))
        return registry.publish(manifest, result.files, make_current=make_current)


def ensure_synthetic(registry: Registry, *, budget_s: float = 100.0) -> list[Manifest]:
    """Train and publish every synthetic-shapes model that has no served version yet."""
    published = []
    for spec in MODELS:
        if registry.current(spec.name) is not None:
            log.info("%s already served (v%s); skipped", spec.name, registry.current(spec.name))
            continue
        log.info("training %s on synthetic shapes for up to %.0f s", spec.name, budget_s)
        netG, metrics = train_minimal_pix2pix(spec, budget_s=budget_s)
        published.append(publish_generator(registry, netG, manifest_for(spec, metrics)))
    return published
