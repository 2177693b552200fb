"""The attribute classifier's accuracy on generated photos against its accuracy on real ones.

    attr_acc_real   accuracy on the real photos of the held-out items (mean over the
                    attributes the classifier can tell apart, ``summary_names``)
    attr_acc_fake   accuracy on the generated photos of the same items, against the same labels
    attr_acc_ratio  attr_acc_fake / attr_acc_real (1.0: the generator keeps every attribute
                    the classifier can see; higher is better)
    attr_bacc_*     the same with balanced accuracy (the mean recall over the classes present):
                    on FS2K's skewed attributes, outputs that all look alike (no earrings,
                    closed mouths) score the majority class's share in plain accuracy but
                    chance (1 / classes) here

plus ``attr_acc_real/<name>``, ``attr_acc_fake/<name>`` and ``attr_bacc_fake/<name>`` per
attribute.
"""

from __future__ import annotations

import torch
from torch import Tensor

from services.trainer.evaluation.attribute_net import AttributeClassifier


def _labels(classifier: AttributeClassifier, attrs: Tensor, label_rows: bool) -> Tensor:
    return classifier.spec.labels(attrs).cpu() if label_rows else attrs.long().cpu()


def class_counts(labels: Tensor, hits: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Items of each true class and how many of them were predicted right: two (..., C) tensors
    from labels (N, K) and hits (N, K) (1.0 where the prediction was right), per attribute."""
    shape = (*labels.shape[1:], num_classes)
    totals = torch.zeros(shape, dtype=torch.float64)
    correct = torch.zeros(shape, dtype=torch.float64)
    for k in range(labels.shape[1]):
        totals[k].index_add_(0, labels[:, k], torch.ones_like(hits[:, k], dtype=torch.float64))
        correct[k].index_add_(0, labels[:, k], hits[:, k].double())
    return totals, correct


def mean_recall(totals: Tensor, correct: Tensor) -> Tensor:
    """(K,) balanced accuracy: the mean recall over the classes present, from (K, C) counts."""
    present = totals > 0
    recall = torch.where(present, correct / totals.clamp(min=1), 0.0)
    return recall.sum(1) / present.sum(1).clamp(min=1)


def attribute_accuracy(
    classifier: AttributeClassifier,
    images: Tensor,
    attrs: Tensor,
    *,
    label_rows: bool = True,
    balanced: bool = False,
) -> dict[str, float]:
    """attribute name -> accuracy of the classifier on images (N, 3, H, W) in [-1, 1].

    attrs: label rows (N, K) as the dataset gives them (FS2K "attrs", (N, 7)); with
    label_rows=False, labels already in the classifier's order (N, len(spec.names)).
    balanced: mean recall over the classes present (robust to FS2K's skewed attributes).
    """
    y = _labels(classifier, attrs, label_rows)  # (N, K)
    hits = (classifier.predict(images) == y).double()  # (N, K)
    if balanced:
        acc = mean_recall(*class_counts(y, hits, max(classifier.spec.num_classes)))
    else:
        acc = hits.mean(0)
    return {name: float(acc[k]) for k, name in enumerate(classifier.spec.names)}


class AttributeAccumulator:
    """``attribute_report`` over many batches: counts correct predictions per attribute.

    >>> acc = AttributeAccumulator(classifier)
    >>> for batch in val_loader:  # FS2K items: "A" sketch, "B" photo, "attrs" (N, 7)
    ...     acc.update(netG(batch["A"]), batch["B"], batch["attrs"])
    >>> acc.compute()  # {"attr_acc_real": ..., "attr_acc_fake": ..., "attr_acc_ratio": ...}
    """

    def __init__(self, classifier: AttributeClassifier) -> None:
        self.classifier = classifier
        self.names = classifier.spec.names
        self.reset()

    def reset(self) -> None:
        shape = (len(self.names), max(self.classifier.spec.num_classes))
        self.totals = torch.zeros(shape, dtype=torch.float64)  # (K, C) items of each true class
        self.correct_real = torch.zeros(shape, dtype=torch.float64)  # ... predicted right
        self.correct_fake = torch.zeros(shape, dtype=torch.float64)

    @property
    def count(self) -> int:
        """Items added so far."""
        return int(self.totals[0].sum()) if len(self.names) else 0

    def update(self, fake: Tensor, real: Tensor, attrs: Tensor, *, label_rows: bool = True) -> None:
        """fake, real: (N, 3, H, W) in [-1, 1] of the same items; attrs their label rows."""
        if fake.shape[0] != real.shape[0] or attrs.shape[0] != real.shape[0]:
            raise ValueError("fake, real and attrs must describe the same items")
        y = _labels(self.classifier, attrs, label_rows)  # (N, K)
        c = self.totals.shape[1]
        totals, correct_real = class_counts(y, self.classifier.predict(real) == y, c)
        _, correct_fake = class_counts(y, self.classifier.predict(fake) == y, c)
        self.totals += totals
        self.correct_real += correct_real
        self.correct_fake += correct_fake

    def compute(self) -> dict[str, float]:
        """The report (see the module doc); empty when nothing was added."""
        if self.count == 0:
            return {}
        real = self.correct_real.sum(1) / self.count  # (K,)
        fake = self.correct_fake.sum(1) / self.count  # (K,)
        keep = [self.names.index(n) for n in self.classifier.summary_names]
        acc_real, acc_fake = float(real[keep].mean()), float(fake[keep].mean())
        bal_real = mean_recall(self.totals, self.correct_real)  # (K,)
        bal_fake = mean_recall(self.totals, self.correct_fake)
        bacc_real, bacc_fake = float(bal_real[keep].mean()), float(bal_fake[keep].mean())
        out = {
            "attr_acc_real": acc_real,
            "attr_acc_fake": acc_fake,
            "attr_acc_ratio": acc_fake / acc_real if acc_real > 0 else 0.0,
            "attr_bacc_real": bacc_real,
            "attr_bacc_fake": bacc_fake,
            "attr_bacc_ratio": bacc_fake / bacc_real if bacc_real > 0 else 0.0,
        }
        for k, name in enumerate(self.names):
            out[f"attr_acc_real/{name}"] = float(real[k])
            out[f"attr_acc_fake/{name}"] = float(fake[k])
            out[f"attr_bacc_fake/{name}"] = float(bal_fake[k])
        return out


def attribute_report(
    classifier: AttributeClassifier, fake: Tensor, real: Tensor, attrs: Tensor
) -> dict[str, float]:
    """{"attr_acc_real", "attr_acc_fake", "attr_acc_ratio", + per attribute} for one batch.

    fake, real: (N, 3, H, W) in [-1, 1] (generated and real photos of the same items), attrs:
    their label rows (N, K), e.g. FS2K "attrs" (N, 7).
    """
    acc = AttributeAccumulator(classifier)
    acc.update(fake, real, attrs)
    return acc.compute()
