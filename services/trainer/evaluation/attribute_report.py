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
    pred = classifier.predict(images)  # (N, K)
    out: dict[str, float] = {}
    for k, name in enumerate(classifier.spec.names):
        hit = (pred[:, k] == y[:, k]).double()
        if balanced:
            recalls = [hit[y[:, k] == c].mean() for c in y[:, k].unique()]
            out[name] = float(torch.stack(recalls).mean())
        else:
            out[name] = float(hit.mean())
    return out


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
        k, c = len(self.names), max(self.classifier.spec.num_classes)
        self.correct_real = torch.zeros(k, dtype=torch.float64)
        self.correct_fake = torch.zeros(k, dtype=torch.float64)
        self.count = 0
        self.per_class = torch.zeros(k, c, dtype=torch.float64)  # items of each true class
        self.per_class_real = torch.zeros(k, c, dtype=torch.float64)  # ... predicted right
        self.per_class_fake = torch.zeros(k, c, dtype=torch.float64)

    def update(self, fake: Tensor, real: Tensor, attrs: Tensor, *, label_rows: bool = True) -> None:
        """fake, real: (N, 3, H, W) in [-1, 1] of the same items; attrs their label rows."""
        if fake.shape[0] != real.shape[0] or attrs.shape[0] != real.shape[0]:
            raise ValueError("fake, real and attrs must describe the same items")
        y = _labels(self.classifier, attrs, label_rows)  # (N, K)
        hit_real = (self.classifier.predict(real) == y).double()  # (N, K)
        hit_fake = (self.classifier.predict(fake) == y).double()
        self.correct_real += hit_real.sum(0)
        self.correct_fake += hit_fake.sum(0)
        self.count += y.shape[0]
        for k in range(y.shape[1]):
            self.per_class[k].index_add_(0, y[:, k], torch.ones_like(hit_real[:, k]))
            self.per_class_real[k].index_add_(0, y[:, k], hit_real[:, k])
            self.per_class_fake[k].index_add_(0, y[:, k], hit_fake[:, k])

    def _balanced(self, hits: Tensor) -> Tensor:
        """(K,) mean recall over the classes present, from per-class hit counts (K, C)."""
        present = self.per_class > 0
        recall = torch.where(present, hits / self.per_class.clamp(min=1), 0.0)
        return recall.sum(1) / present.sum(1).clamp(min=1)

    def compute(self) -> dict[str, float]:
        """The report (see the module doc); empty when nothing was added."""
        if self.count == 0:
            return {}
        real = self.correct_real / self.count  # (K,)
        fake = self.correct_fake / self.count  # (K,)
        keep = [self.names.index(n) for n in self.classifier.summary_names]
        acc_real, acc_fake = float(real[keep].mean()), float(fake[keep].mean())
        bal_real = self._balanced(self.per_class_real)
        bal_fake = self._balanced(self.per_class_fake)
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
