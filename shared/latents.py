"""The latent vectors of a ``generate`` model, from a seed: one place for what the worker
feeds ``POST /v1/generate`` models and what offline scoring feeds them, so a score is the
score of the images users get.

    z = generate_latents(manifest.input, n=8, seed=7, class_name="cat")  # (8, z_dim + classes)
"""

from __future__ import annotations

import numpy as np

from shared.manifest import TensorSpec


def generate_latents(
    spec: TensorSpec, n: int, seed: int | None, class_name: str | None = None
) -> np.ndarray:
    """(n, z_dim + num_classes) float32: z ~ N(0, I) from ``default_rng(seed)``, then, for a
    class-conditional model, the one-hot class (``class_name``, else drawn from the same
    generator for each image)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, spec.z_dim)).astype(np.float32)  # (n, z_dim)
    if not spec.num_classes:
        return z
    if class_name is not None:
        labels = np.full(n, spec.class_names.index(class_name))  # (n,)
    else:
        labels = rng.integers(0, spec.num_classes, n)  # (n,)
    one_hot = np.zeros((n, spec.num_classes), np.float32)  # (n, classes)
    one_hot[np.arange(n), labels] = 1.0
    return np.concatenate([z, one_hot], axis=1)
