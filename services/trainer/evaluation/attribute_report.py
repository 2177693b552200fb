"""The attribute classifier's accuracy on generated photos against its accuracy on real ones.

    attr_acc_real   accuracy on the real photos of the held-out items (mean over the
                    attributes the classifier can tell apart, ``summary_names``)
    attr_acc_fake   accuracy on the generated photos of the same items, against the same labels
    attr_acc_ratio  attr_acc_fake / attr_acc_real (1.0: the generator keeps every attribute
                    the classifier can see; higher is better)

plus ``attr_acc_real/<name>`` and ``attr_acc_fake/<name>`` per attribute.
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
        k = len(self.names)
        self.correct_real = torch.zeros(k, dtype=torch.float64)
        self.correct_fake = torch.zeros(k, dtype=torch.float64)
        self.count = 0

    def update(self, fake: Tensor, real: Tensor, attrs: Tensor, *, label_rows: bool = True) -> None:
        """fake, real: (N, 3, H, W) in [-1, 1] of the same items; attrs their label rows."""
        if fake.shape[0] != real.shape[0] or attrs.shape[0] != real.shape[0]:
            raise ValueError("fake, real and attrs must describe the same items")
        y = _labels(self.classifier, attrs, label_rows)  # (N, K)
        self.correct_real += (self.classifier.predict(real) == y).sum(0).double()
        self.correct_fake += (self.classifier.predict(fake) == y).sum(0).double()
        self.count += y.shape[0]

    def compute(self) -> dict[str, float]:
        """The report (see the module doc); empty when nothing was added."""
        if self.count == 0:
            return {}
        real = self.correct_real / self.count  # (K,)
        fake = self.correct_fake / self.count  # (K,)
        keep = [self.names.index(n) for n in self.classifier.summary_names]
        acc_real, acc_fake = float(real[keep].mean()), float(fake[keep].mean())
        out = {
            "attr_acc_real": acc_real,
            "attr_acc_fake": acc_fake,
            "attr_acc_ratio": acc_fake / acc_real if acc_real > 0 else 0.0,
        }
        for k, name in enumerate(self.names):
            out[f"attr_acc_real/{name}"] = float(real[k])
            out[f"attr_acc_fake/{name}"] = float(fake[k])
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
