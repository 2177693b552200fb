"""Every recipe, end to end: a few loop steps on tiny self-made data, publish, and the
worker's own loading path (sha256 check, canary batch, dynamic batcher) serves the version."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.trainer.config import TrainConfig
from services.trainer.engine.loop import train
from services.worker.model_pool import ModelPool
from shared.registry import Registry
from shared.settings import Settings

TINY: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # recipe: (recipe options, other config fields)
    "pix2pix": ({"ngf": 4, "ndf": 4}, {}),
    "resnet-cgan": ({"ngf": 4, "n_blocks": 2, "ndf": 8}, {}),
    "cyclegan": ({"ngf": 4, "ndf": 4, "n_blocks": 2}, {}),
    "sketchygan": ({"ngf": 4, "ndf": 4, "noise_dim": 8, "lambda_perceptual": 0}, {}),
    "siamese-gan": ({"ngf": 8, "ndf": 8, "embed_dim": 16}, {"publish_metric": "val_l1"}),
    "vae": ({"nf": 8, "z_dim": 16}, {}),
}


@pytest.mark.parametrize("recipe", sorted(TINY))
def test_recipe_trains_publishes_and_the_worker_serves_it(recipe: str, tmp_path: Path) -> None:
    options, fields = TINY[recipe]
    config = TrainConfig(
        recipe=recipe,
        data="synthetic://8?val=2",
        image_size=32,
        batch_size=2,
        max_steps=3,
        num_workers=0,
        eval_samples=2,
        publish="always",
        run_dir=tmp_path / "run",
        model_name=f"served-{recipe}",
        options=options,
        **fields,
    )
    registry = Registry(tmp_path / "models")
    final = train(config, registry=registry)

    assert final.state == "finished"
    assert final.step == 3
    assert final.losses
    assert all(math.isfinite(v) for v in final.losses.values())
    assert final.published, "nothing was published"
    settings = Settings(model_root=tmp_path / "models", max_queue_delay_ms=0)
    pool = ModelPool(registry, settings)
    try:
        for published in final.published:
            assert published.served
            assert registry.current(published.model) == published.version
            loaded = pool.load(published.model, published.version)  # sha256 + canary
            spec = loaded.manifest.input
            example = np.random.default_rng(0).uniform(-1, 1, spec.shape(1)[1:])
            out = loaded.batcher.submit(example.astype(np.float32)).result(timeout=30)
            assert out.output.shape == loaded.manifest.output.shape(1)[1:]
            assert np.isfinite(out.output).all()
            loaded.batcher.close()
    finally:
        pool.close()
