"""An auxiliary attribute classifier on the target image: StarGAN's D_cls (Choi et al. 2018).

netC learns the dataset's attribute labels (FS2K: hair, hair colour, gender, earrings, smile,
head pose) from the real targets real_B only. G gets λ · netC's cross-entropy on fake_B against
real_B's labels, so a photo made from a sketch is pushed to keep what the sketch shows: a
smile, earrings, a bald head. It is not the evaluation's classifier
(``evaluation/fs2k_attributes.safetensors``, which ``--init-from`` refuses as a netC): netC
starts from scratch, or from ``--init-from`` (an earlier run's, or one trained alone on the
real photos by ``evaluation/attributes.py``), reads the side ``options.attr_size`` (by default
the training size; the evaluation reads 64 px), and never sees a validation photo.

``attr_balance`` b weights each class in G's term by its frequency in the training set to the
power -b (the classifier trainer's ``balance``; classes absent from the set weigh 0): at b = 0
every image counts alike, so the rare classes (earrings, a bald head) move G little.

netC has ``AttributeClassifier``'s layout (a small multi-head CNN, ~0.4 M parameters at width
32). Its batch norm runs in training mode on real photos and in eval mode (running statistics)
when it scores G's photos, so a batch of fakes never moves its statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from services.trainer.data.common import attribute_rows
from services.trainer.evaluation.attribute_net import AttributeClassifier, AttributeSpec
from services.trainer.evaluation.attribute_train import class_weights

CRITIC_WIDTH = 32


def build_attribute_critic(image_size: int) -> AttributeClassifier:
    """A fresh netC for FS2K's face attributes, reading images resized to ``image_size``."""
    return AttributeClassifier(AttributeSpec.fs2k(), image_size=image_size, width=CRITIC_WIDTH)


def attribute_labels(batch: dict[str, Tensor]) -> Tensor:
    """(N, K) long labels in netC's attribute order from the batch's FS2K label rows (N, 7)."""
    if "attrs" not in batch:
        raise ValueError("options.lambda_attr needs FS2K items (batch['attrs'])")
    return AttributeSpec.fs2k().labels(batch["attrs"])


def training_class_weights(dataset: Any, balance: float) -> list[Tensor]:
    """One (C_k,) weight vector per attribute: frequency**-balance over the training set's
    labels (``evaluation.attribute_train.class_weights``: mean 1 over the classes present)."""
    rows = attribute_rows(dataset)
    if rows is None:
        raise ValueError("options.attr_balance needs a training set with FS2K labels")
    spec = AttributeSpec.fs2k()
    labels = spec.labels(rows)  # (N, K)
    return [class_weights(labels[:, k], c, balance) for k, c in enumerate(spec.num_classes)]


def attribute_cross_entropy(
    netC: nn.Module, images: Tensor, labels: Tensor, weights: Sequence[Tensor] | None = None
) -> Tensor:
    """Mean over the attributes of netC's cross-entropy on images (N, 3, H, W) in [-1, 1].

    ``weights``: per attribute a (C_k,) weight of each class, scaling the loss of each image
    by its label's weight (a mean over the batch, not renormalised: at batch size 1 the weight
    still counts)."""
    logits = netC(images)  # one (N, C_k) tensor per attribute
    losses = []
    for k, lg in enumerate(logits):
        ce = F.cross_entropy(lg.float(), labels[:, k], reduction="none")  # (N,)
        if weights is not None:
            ce = ce * weights[k][labels[:, k]]  # weights on the loss's device
        losses.append(ce.mean())
    return torch.stack(losses).mean()


def critic_loss(netC: nn.Module, real_B: Tensor, labels: Tensor) -> Tensor:
    """netC's own loss: the labels of the real targets (training mode)."""
    netC.train()
    netC.requires_grad_(True)
    return attribute_cross_entropy(netC, real_B, labels)


def generator_attribute_loss(
    netC: nn.Module, fake_B: Tensor, labels: Tensor, weights: Sequence[Tensor] | None = None
) -> Tensor:
    """G's term: netC (frozen, eval mode) should read the real target's labels off fake_B."""
    netC.eval()
    netC.requires_grad_(False)
    return attribute_cross_entropy(netC, fake_B, labels, weights)
