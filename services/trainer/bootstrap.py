"""The models a fresh install serves: a minimal pix2pix on the synthetic shapes set.

``python -m services.trainer bootstrap`` publishes ``sketch2photo`` and ``photo2sketch``
into an empty model volume (models that already have a served version are left alone).
Their weights ship with the package (``bundled/*.safetensors``, fp16, trained with
``bootstrap --retrain``); without them the same loop trains from scratch within a time
budget (about two minutes on two CPU cores), so no download is ever needed.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from shared.export import export_model
from shared.manifest import Manifest, TensorSpec
from shared.nets import NLayerDiscriminator, UNetGenerator, build_serving_net, init_weights
from shared.registry import Registry
from shared.synthetic import SyntheticPairs

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).parent / "bundled"
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
    BootstrapModel("sketch2photo", "sketch2photo", "A", "B"),
    BootstrapModel("photo2sketch", "photo2sketch", "B", "A"),
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


def publish_generator(registry: Registry, netG: nn.Module, manifest: Manifest) -> Manifest:
    """Wrap, export (TorchScript + ONNX, parity-checked) and publish one generator."""
    serving = build_serving_net(manifest.architecture, **manifest.arch_kwargs)
    serving.load_state_dict({f"netG.{k}": v for k, v in netG.state_dict().items()})
    with tempfile.TemporaryDirectory() as tmp:
        result = export_model(serving, manifest.input.shape(1), Path(tmp))
        return registry.publish(manifest, result.files)


def bundled_path(spec: BootstrapModel) -> Path:
    return BUNDLED_DIR / f"{spec.name}.safetensors"


def load_bundled(spec: BootstrapModel) -> tuple[nn.Module, dict[str, float]] | None:
    path = bundled_path(spec)
    if not path.is_file():
        return None
    netG = UNetGenerator(**ARCH_KWARGS)  # type: ignore[arg-type]
    tensors = load_file(str(path))
    steps = float(tensors.pop("__steps__").item()) if "__steps__" in tensors else 0.0
    netG.load_state_dict({k: v.float() for k, v in tensors.items()})
    netG.eval()
    return netG, {"val_l1": validation_l1(netG, spec), "steps": steps}


def save_bundled(spec: BootstrapModel, netG: nn.Module, steps: int) -> Path:
    path = bundled_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().half().contiguous()
        for k, v in netG.state_dict().items()
        if v.is_floating_point()
    }
    tensors |= {
        k: v.contiguous() for k, v in netG.state_dict().items() if not v.is_floating_point()
    }
    tensors["__steps__"] = torch.tensor([steps])
    save_file(tensors, str(path))
    return path


def ensure_bootstrap(
    registry: Registry, *, retrain: bool = False, budget_s: float = 100.0
) -> list[Manifest]:
    """Publish every bootstrap model that has no served version yet (idempotent)."""
    published = []
    for spec in MODELS:
        if registry.current(spec.name) is not None and not retrain:
            log.info("%s already served (v%s); skipped", spec.name, registry.current(spec.name))
            continue
        loaded = None if retrain else load_bundled(spec)
        if loaded is None:
            log.info("training %s on synthetic shapes for up to %.0f s", spec.name, budget_s)
            loaded = train_minimal_pix2pix(spec, budget_s=budget_s)
            if retrain:
                save_bundled(spec, loaded[0], int(loaded[1]["steps"]))
        netG, metrics = loaded
        published.append(publish_generator(registry, netG, manifest_for(spec, metrics)))
    return published
