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

from services.trainer.data.loading import to_device
from services.trainer.engine.logging_utils import RunLogger
from services.trainer.engine.seeding import isolated_rng
from services.trainer.evaluation.attribute_net import Reads
from services.trainer.evaluation.fid import FIDUnavailable
from services.trainer.evaluation.sample_grid import save_grid
from services.trainer.evaluation.suite import EvalSuite
from services.trainer.recipes.base import Recipe, unwrap

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
    """Evaluates a recipe on a fixed held-out set: iterates it, keeps the grid rows and the
    recipe's own metrics, and leaves every score to one ``EvalSuite`` (kept across
    evaluations, so FID's real statistics are computed once per run)."""

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
        self._suite: EvalSuite | None = None

    def suite(self, photos_out: bool) -> EvalSuite:
        """The scorers, made at the first evaluation (attributes by the committed judge of
        photos or of sketches, what the outputs are)."""
        if self._suite is None:
            reads: Reads = "photo" if photos_out else "sketch"
            try:
                self._suite = EvalSuite.create(
                    self.device, fid=self.want_fid, attributes=self.want_attributes, reads=reads
                )
            except FIDUnavailable as exc:
                log.warning("FID skipped: %s", exc)
                self._suite = EvalSuite.create(
                    self.device, fid=False, attributes=self.want_attributes, reads=reads
                )
        return self._suite

    @torch.no_grad()
    def __call__(self, recipe: Recipe, *, photos_out: bool = True) -> EvalResult:
        """Metrics and grid rows; ``photos_out``: the outputs are photos (attribute metrics)."""
        suite = self.suite(photos_out)
        sums: dict[str, float] = {}
        count = 0
        grid: dict[str, list[Tensor]] = {}
        loader = DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False)
        with plain_eval_nets(recipe):
            for raw in loader:
                batch = to_device(raw, self.device, self.channels_last)
                out = recipe.evaluate_batch(batch)
                fake = out.fake.float().contiguous()  # (N, 3, H, W)
                real = None if out.real is None else out.real.float().contiguous()
                n = fake.shape[0]
                count += n
                suite.update(fake, real, batch.get("attrs") if real is not None else None)
                if real is None and "B" in batch:
                    suite.add_real(batch["B"].float())  # unpaired: FID against the B images
                extra = dict(out.metrics)
                if real is not None and "val_recon" not in extra:
                    extra["val_recon"] = float((fake - real).square().mean())
                for k, v in extra.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * n
                for name, row in out.grid.items():
                    have = sum(len(t) for t in grid.get(name, []))
                    if have < GRID_COLUMNS:
                        grid.setdefault(name, []).append(row[: GRID_COLUMNS - have].float().cpu())
        metrics = suite.compute()
        suite.reset()  # FID's real statistics are complete now and kept
        metrics.update({k: v / max(count, 1) for k, v in sums.items()})
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
