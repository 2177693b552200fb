"""An auxiliary attribute classifier on the target image: StarGAN's D_cls (Choi et al. 2018).

netC learns the dataset's attribute labels (FS2K: hair, hair colour, gender, earrings, smile,
head pose) from the real targets real_B only. G gets λ · netC's cross-entropy on fake_B against
real_B's labels, so a photo made from a sketch is pushed to keep what the sketch shows: a
smile, earrings, a bald head. It is not the evaluation's classifier
(``evaluation/fs2k_attributes.safetensors``, which ``--init-from`` refuses as a netC): netC
starts from scratch, or from ``--init-from`` (an earlier run's, or one trained alone on the
real photos by ``evaluation/attributes.py``), reads the side ``options.attr_size`` (by default
the training size; the evaluation reads 64 px), and never sees a validation photo.

netC has ``AttributeClassifier``'s layout (a small multi-head CNN, ~0.4 M parameters at width
32). Its batch norm runs in training mode on real photos and in eval mode (running statistics)
when it scores G's photos, so a batch of fakes never moves its statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from services.trainer.evaluation.attribute_net import AttributeClassifier, AttributeSpec

CRITIC_WIDTH = 32


def build_attribute_critic(image_size: int) -> AttributeClassifier:
    """A fresh netC for FS2K's face attributes, reading images resized to ``image_size``."""
    return AttributeClassifier(AttributeSpec.fs2k(), image_size=image_size, width=CRITIC_WIDTH)


def attribute_labels(batch: dict[str, Tensor]) -> Tensor:
    """(N, K) long labels in netC's attribute order from the batch's FS2K label rows (N, 7)."""
    if "attrs" not in batch:
        raise ValueError("options.lambda_attr needs FS2K items (batch['attrs'])")
    return AttributeSpec.fs2k().labels(batch["attrs"])


def attribute_cross_entropy(netC: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """Mean over the attributes of netC's cross-entropy on images (N, 3, H, W) in [-1, 1]."""
    logits = netC(images)  # one (N, C_k) tensor per attribute
    losses = [F.cross_entropy(lg.float(), labels[:, k]) for k, lg in enumerate(logits)]
    return torch.stack(losses).mean()


def critic_loss(netC: nn.Module, real_B: Tensor, labels: Tensor) -> Tensor:
    """netC's own loss: the labels of the real targets (training mode)."""
    netC.train()
    netC.requires_grad_(True)
    return attribute_cross_entropy(netC, real_B, labels)


def generator_attribute_loss(netC: nn.Module, fake_B: Tensor, labels: Tensor) -> Tensor:
    """G's term: netC (frozen, eval mode) should read the real target's labels off fake_B."""
    netC.eval()
    netC.requires_grad_(False)
    return attribute_cross_entropy(netC, fake_B, labels)
