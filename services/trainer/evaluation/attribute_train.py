"""Training the attribute classifier on real photos (see ``attributes.py`` for the CLI)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from services.trainer.evaluation.attribute_net import AttributeClassifier, AttributeSpec
from services.trainer.evaluation.attribute_report import attribute_accuracy

log = logging.getLogger(__name__)

# a torch Dataset or a plain list of items {"B": (3, H, W) in [-1, 1], "attrs": (K,) long}
Items = Dataset[dict[str, Any]] | Sequence[dict[str, Any]]


def load_photos(
    dataset: Items, spec: AttributeSpec, size: int, num_workers: int = 0
) -> tuple[Tensor, Tensor]:
    """Every item's photo ("B") resized to `size` and its labels: (N, 3, S, S), (N, K) long."""
    images, labels = [], []
    items = cast(Dataset[dict[str, Any]], dataset)  # DataLoader takes any sized sequence
    for batch in DataLoader(items, batch_size=32, num_workers=num_workers):
        x = batch["B"].float()  # (n, 3, H, W) in [-1, 1]
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        images.append(x)
        labels.append(spec.labels(batch["attrs"]))
    return torch.cat(images), torch.cat(labels)


def _augment(x: Tensor, size: int, gen: torch.Generator) -> Tensor:
    """A random size x size crop and a random horizontal flip of each image in (N, 3, L, L)."""
    n, L = x.shape[0], x.shape[-1]
    out = torch.empty(n, 3, size, size)
    offsets = torch.randint(0, L - size + 1, (n, 2), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    for i in range(n):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        crop = x[i, :, dy : dy + size, dx : dx + size]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def class_weights(labels: Tensor, num_classes: int, balance: float) -> Tensor:
    """(C,) loss weights frequency**-balance, mean 1 over the classes present (absent: 0)."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    w = torch.where(counts > 0, counts.clamp(min=1) ** -balance, torch.zeros(()))
    return w * (counts > 0).sum() / w.sum()


def fit_attribute_classifier(
    images: Tensor,
    labels: Tensor,
    *,
    spec: AttributeSpec,
    epochs: int = 20,
    device: torch.device | str = "cpu",
    image_size: int = 64,
    width: int = 32,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    balance: float = 0.5,
    val: tuple[Tensor, Tensor] | None = None,
) -> AttributeClassifier:
    """Train on photos (N, 3, L, L) in [-1, 1] (L >= image_size) with labels (N, K) in spec order.

    Each step takes random image_size crops and flips; AdamW with a one-cycle schedule,
    cross-entropy (label smoothing 0.05) summed over attributes, each class weighted by
    frequency**-balance (0: plain; 0.5: FS2K's rare classes (no hair, turned heads) are not
    drowned by the common ones). `val`: (images, labels) whose accuracy is logged after every
    epoch. Returns the net in eval mode.
    """
    if images.shape[-1] < image_size:
        raise ValueError(f"photos of {images.shape[-1]} px are smaller than {image_size} px")
    device = torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = AttributeClassifier(spec, image_size=image_size, width=width).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    steps_per_epoch = -(-len(images) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
    weights = [
        class_weights(labels[:, k], c, balance).to(device) for k, c in enumerate(spec.num_classes)
    ]
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        total = 0.0
        for idx in torch.randperm(len(images), generator=gen).split(batch_size):
            x = _augment(images[idx], image_size, gen).to(device)  # (B, 3, S, S)
            y = labels[idx].to(device)  # (B, K)
            losses = [
                F.cross_entropy(lg, y[:, k], weight=weights[k], label_smoothing=0.05)
                for k, lg in enumerate(net(x))
            ]
            loss = torch.stack(losses).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        msg = f"epoch {epoch + 1}/{epochs} loss {total / len(images):.3f}"
        if val is not None:
            acc = attribute_accuracy(net, val[0], val[1], label_rows=False)
            msg += " val " + " ".join(f"{k} {v:.3f}" for k, v in acc.items())
        log.info("attribute classifier: %s (%.0f s)", msg, time.perf_counter() - t0)
    return net.eval()


def train_attribute_classifier(
    dataset: Items,
    *,
    epochs: int = 20,
    device: torch.device | str = "cpu",
    spec: AttributeSpec | None = None,
    image_size: int = 64,
    val_dataset: Items | None = None,
    num_workers: int = 0,
    **options: Any,
) -> AttributeClassifier:
    """Train on a dataset of real photos: items {"B": (3, H, W) in [-1, 1], "attrs": (K,)}.

    FS2KDataset (direction "sketch2photo", so B is the photo) gives exactly that; `spec`
    defaults to the FS2K face attributes. Photos are loaded once at 9/8 of image_size for
    the random crops. `options` go to ``fit_attribute_classifier`` (width, batch_size, lr, seed).
    """
    spec = spec or AttributeSpec.fs2k()
    t0 = time.perf_counter()
    images, labels = load_photos(dataset, spec, image_size + image_size // 8, num_workers)
    val = None if val_dataset is None else load_photos(val_dataset, spec, image_size, num_workers)
    log.info(
        "attribute classifier: %d photos loaded in %.1f s", len(images), time.perf_counter() - t0
    )
    return fit_attribute_classifier(
        images, labels, spec=spec, epochs=epochs, device=device, image_size=image_size,
        val=val, **options,
    )  # fmt: skip


def majority_baseline(train_labels: Tensor, val_labels: Tensor, spec: AttributeSpec) -> Tensor:
    """(K,) accuracy on val of always answering the train split's most common class."""
    out = []
    for k, c in enumerate(spec.num_classes):
        majority = torch.bincount(train_labels[:, k], minlength=c).argmax()
        out.append((val_labels[:, k] == majority).double().mean())
    return torch.stack(out)
