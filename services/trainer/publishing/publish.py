"""Publishing a run's models: export, manifest, new registry version, and maybe CURRENT.

For each ``ExportSpec`` of ``recipe.exports()``: TorchScript + ONNX export, parity-checked
against eager PyTorch (``services.trainer.publishing.export.export_model``), a manifest
with the latest evaluation's metrics, then ``registry.publish(..., make_current=False)``.
CURRENT moves to the new version by the run's policy:

- "if-better": when the new version is not worse than the served one on the publish metric
  (lower is better unless the metric is in ``config.HIGHER_IS_BETTER``); when nothing is
  served yet, or the served version has no value for the metric, it moves; when the new
  version has no (finite) value for a metric the served one has, it does not;
- "always": it moves; "never": nothing is written to the registry at all (export with
  ``python -m services.trainer export`` or publish later with ``publish --checkpoint``).
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Literal

from services.trainer.config import HIGHER_IS_BETTER
from services.trainer.engine.progress import PublishedVersion
from services.trainer.publishing.export import export_model
from services.trainer.recipes.base import Recipe
from shared.manifest import Manifest
from shared.registry import Registry

log = logging.getLogger(__name__)

Policy = Literal["if-better", "always", "never"]


def not_worse(new: float, served: float, metric: str) -> bool:
    return new >= served if metric in HIGHER_IS_BETTER else new <= served


def should_serve(
    policy: Policy, metric: str, new: dict[str, float], served: dict[str, float] | None
) -> tuple[bool, str]:
    """(move CURRENT?, why) for a new version's metrics against the served version's."""
    if policy == "always":
        return True, "policy always"
    if policy == "never":
        return False, "policy never"
    if served is None:
        return True, "no version is served yet"
    if metric not in served or not math.isfinite(served[metric]):
        return True, f"the served version has no {metric}"
    value = new.get(metric)
    if value is None or not math.isfinite(value):
        return False, f"the new version has no {metric}"
    better = "higher" if metric in HIGHER_IS_BETTER else "lower"
    if not_worse(value, served[metric], metric):
        return (
            True,
            f"{metric} {value:.4g} is not worse than {served[metric]:.4g} ({better} is better)",
        )
    return False, f"{metric} {value:.4g} is worse than {served[metric]:.4g} ({better} is better)"


def publish_recipe(
    recipe: Recipe,
    registry: Registry,
    *,
    metrics: dict[str, float],
    steps: int,
    policy: Policy,
    metric: str,
    dataset: str | None = None,
    compute: dict[str, float] | None = None,
) -> list[PublishedVersion]:
    """Export and publish every model of ``recipe``; move CURRENT by ``policy``."""
    if policy == "never":
        log.info("not published (policy never): the checkpoint can be published later")
        return []
    finite = {k: float(v) for k, v in metrics.items() if math.isfinite(v)}
    published = []
    for spec in recipe.exports():
        name = spec.model_name
        with tempfile.TemporaryDirectory(prefix="s2i-export-") as tmp:
            result = export_model(spec.net, spec.input.shape(1), Path(tmp))
            manifest = Manifest(
                name=name,
                task=spec.task,
                architecture=spec.architecture,
                arch_kwargs=spec.arch_kwargs,
                recipe=recipe.name,
                input=spec.input,
                output=spec.output,
                metrics=finite,
                dataset=dataset,
                steps=steps,
                compute=dict(compute or {}),
                parent_version=registry.current(name),
                description=spec.description,
            )
            written = registry.publish(manifest, result.files, make_current=False)
        current = registry.current(name)
        served = registry.manifest(name, current).metrics if current is not None else None
        move, why = should_serve(policy, metric, finite, served)
        if move:
            registry.set_current(name, written.version)
        log.info(
            "%s v%d published; %s (%s)",
            name,
            written.version,
            "now served" if move else f"v{current} stays served",
            why,
        )
        published.append(
            PublishedVersion(model=name, version=written.version, metrics=finite, served=move)
        )
    return published
