"""Held-out evaluation during training: metrics and the rows of the sample grid.

Metrics (``services.trainer.evaluation``), over the first ``max_samples`` held-out items:

- with a paired target (``EvalOutput.real``): val_l1, psnr, ssim, fsim, and val_recon (mean
  squared error per pixel in [-1, 1] units, the VAE's reconstruction error);
- fid when asked for (``fid=True``, e.g. the publish metric is "fid") and the Inception
  weights are installed: generated images against the held-out real images (the paired
  target, else the item's "B"); the real statistics are computed once per run;
- FS2K attribute accuracy (attr_acc_real, attr_acc_fake, attr_acc_ratio) when the items carry
  "attrs", the outputs are photos and the classifier's weights are installed;
- whatever the recipe reports in ``EvalOutput.metrics`` (averaged, weighted by batch size).

Evaluation runs on the plain nets (not DDP / compiled wrappers) in eval mode, which is
restored to each module's previous mode afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from services.trainer.data_loading import to_device
from services.trainer.evaluation import MetricAccumulator
from services.trainer.logging_utils import RunLogger
from services.trainer.recipes.base import Recipe, unwrap
from services.trainer.sample_grid import save_grid
from services.trainer.seeding import isolated_rng

log = logging.getLogger(__name__)

GRID_COLUMNS = 8


@dataclass
class EvalResult:
    metrics: dict[str, float]
    grid: dict[str, Tensor] = field(default_factory=dict)  # name -> (K, 3, H, W) CPU rows


@contextmanager
def plain_eval_nets(recipe: Recipe) -> Iterator[None]:
    """The recipe's nets unwrapped and in eval mode inside the block."""
    wrapped = dict(recipe.nets)
    modes = {m: m.training for net in wrapped.values() for m in net.modules()}
    recipe.nets = {name: unwrap(net).eval() for name, net in wrapped.items()}
    try:
        yield
    finally:
        recipe.nets = wrapped
        for module, training in modes.items():
            module.training = training


class Evaluator:
    """Evaluates a recipe on a fixed held-out set; scorers persist across evaluations."""

    def __init__(
        self,
        dataset: Dataset[dict[str, Any]],
        *,
        device: torch.device,
        max_samples: int = 64,
        batch_size: int = 16,
        channels_last: bool = False,
        fid: bool = False,
        attributes: bool = True,
    ) -> None:
        n = min(len(dataset), max_samples)  # type: ignore[arg-type]
        self.dataset = Subset(dataset, range(n))
        self.device, self.batch_size, self.channels_last = device, batch_size, channels_last
        self.want_fid, self.want_attributes = fid, attributes
        self._fid: Any = None
        self._fid_real_done = False
        self._classifier: Any = None
        self._classifier_tried = False

    def _fid_scorer(self) -> Any:
        if self._fid is None and self.want_fid:
            from services.trainer.evaluation import FIDScorer, FIDUnavailable

            try:
                self._fid = FIDScorer(self.device)
            except FIDUnavailable as exc:
                log.warning("FID skipped: %s", exc)
                self.want_fid = False
        return self._fid

    def _attribute_classifier(self) -> Any:
        if not self._classifier_tried and self.want_attributes:
            from services.trainer.evaluation import load_default_classifier

            self._classifier_tried = True
            self._classifier = load_default_classifier(self.device)
        return self._classifier

    @torch.no_grad()
    def __call__(self, recipe: Recipe, *, photos_out: bool = True) -> EvalResult:
        """Metrics and grid rows; ``photos_out``: the outputs are photos (attribute metrics)."""
        paired = MetricAccumulator()
        sums: dict[str, float] = {}
        count = 0
        grid: dict[str, list[Tensor]] = {}
        fid = self._fid_scorer()
        attr_acc = None
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False)
        with plain_eval_nets(recipe):
            for raw in loader:
                batch = to_device(raw, self.device, self.channels_last)
                out = recipe.evaluate_batch(batch)
                fake = out.fake.float().contiguous()  # (N, 3, H, W)
                real = None if out.real is None else out.real.float().contiguous()
                n = fake.shape[0]
                count += n
                paired.update(fake, real)
                extra = dict(out.metrics)
                if real is not None and "val_recon" not in extra:
                    extra["val_recon"] = float((fake - real).square().mean())
                for k, v in extra.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * n
                if fid is not None:
                    reference = real if real is not None else batch.get("B")
                    if not self._fid_real_done and reference is not None:
                        fid.add_real(reference.float())
                    fid.add_fake(fake)
                classifier = self._attribute_classifier() if photos_out else None
                if classifier is not None and real is not None and "attrs" in batch:
                    from services.trainer.evaluation import AttributeAccumulator

                    attr_acc = attr_acc or AttributeAccumulator(classifier)
                    attr_acc.update(fake, real, batch["attrs"])
                for name, row in out.grid.items():
                    have = sum(len(t) for t in grid.get(name, []))
                    if have < GRID_COLUMNS:
                        grid.setdefault(name, []).append(row[: GRID_COLUMNS - have].float().cpu())
        metrics = paired.compute()
        metrics.update({k: v / max(count, 1) for k, v in sums.items()})
        if fid is not None:
            self._fid_real_done = True
            if fid.real_count >= 2 and fid.fake_count >= 2:
                metrics["fid"] = fid.score()
            fid.reset_fake()
        if attr_acc is not None:
            metrics.update(attr_acc.compute())
        return EvalResult(metrics, {k: torch.cat(v) for k, v in grid.items()})

    def record(
        self,
        recipe: Recipe,
        *,
        step: int,
        epoch: int,
        run_dir: Path,
        logger: RunLogger,
        seed: int,
    ) -> dict[str, float]:
        """Evaluate in an isolated RNG stream, write the sample grid and the log record."""
        with isolated_rng(seed):
            result = self(recipe, photos_out=recipe.config.direction == "sketch2photo")
        grid = save_grid(result.grid, run_dir / "samples", step) if result.grid else None
        logger.evaluation(
            step=step, epoch=epoch, metrics=result.metrics, grid=str(grid) if grid else None
        )
        log.info("step %d: %s", step, {k: round(v, 4) for k, v in result.metrics.items()})
        return result.metrics
