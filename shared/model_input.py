"""From a decoded image (and the request's condition and noise) to the arrays a translation
model takes.

One place for what the worker does before inference and what offline evaluation must do the
same way: bring the image to the model's size as its manifest says (``fit``), then append the
condition's one-hot planes where the model has one (FS2K photo→sketch takes the drawing
style: ``channels`` = 3 + 3, ``condition`` = "style", ``condition_values`` = ["1", "2", "3"]),
then, for a model with noise (``noise_dim`` > 0, SketchyGAN), the plane carrying z (its first
``noise_dim`` values in row-major order; zeros, the prior's mean, when none is given).

    x = model_input(img, manifest.input, condition="2")    # (C, H, W) float32 in [-1, 1]
    z = noise_vectors(seed=7, n=4, noise_dim=spec.noise_dim)  # (4, noise_dim) float32
    xs = model_inputs(img, spec, noises=z)                  # 4 x (C, H, W), fitted once
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from shared.image_ops import to_array
from shared.manifest import TensorSpec


class ConditionError(ValueError):
    """A condition value (or noise) the model does not take, or one given to a model without."""


def condition_index(spec: TensorSpec, value: str | None) -> int | None:
    """The one-hot position of ``value`` (None: the model's default); None without a condition."""
    if spec.condition is None:
        if value is not None:
            raise ConditionError("this model takes no condition")
        return None
    if value is None:
        value = spec.condition_default or spec.condition_values[0]
    if value not in spec.condition_values:
        allowed = ", ".join(spec.condition_values)
        raise ConditionError(f"{spec.condition} must be one of {allowed}, not {value!r}")
    return spec.condition_values.index(value)


def noise_vectors(seed: int | None, n: int, noise_dim: int) -> np.ndarray:
    """(n, noise_dim) float32 draws of z ~ N(0, I): the same seed, the same vectors (the
    worker's variations and offline evaluation draw them here, and only here)."""
    return np.random.default_rng(seed).standard_normal((n, noise_dim)).astype(np.float32)


def noise_plane(spec: TensorSpec, z: np.ndarray) -> np.ndarray:
    """(H, W) float32: z (noise_dim,) in the first values, row-major, the rest zero."""
    if z.shape != (spec.noise_dim,):
        raise ConditionError(f"noise must have shape ({spec.noise_dim},), not {z.shape}")
    plane = np.zeros(spec.height * spec.width, np.float32)  # (H * W,)
    plane[: spec.noise_dim] = z
    return plane.reshape(spec.height, spec.width)


def model_inputs(
    img: Image.Image,
    spec: TensorSpec,
    condition: str | None = None,
    noises: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One (spec.channels, H, W) float32 input per row of ``noises`` (n, noise_dim), the image
    fitted once; ``noises`` None: one input (a model with noise gets z = 0)."""
    if not spec.noise_dim and noises is not None:
        raise ConditionError("this model takes no noise: one image (n=1), no seed")
    planes = [to_array(img, (spec.width, spec.height), fit=spec.fit)]  # (3, H, W)
    index = condition_index(spec, condition)
    if index is not None:
        one_hot = np.zeros((len(spec.condition_values), spec.height, spec.width), np.float32)
        one_hot[index] = 1.0
        planes.append(one_hot)  # (K, H, W)
    image = np.concatenate(planes, axis=0) if len(planes) > 1 else planes[0]  # (3 [+ K], H, W)
    if not spec.noise_dim:
        return [image]
    if noises is None:
        noises = np.zeros((1, spec.noise_dim), np.float32)  # the prior's mean
    return [np.concatenate([image, noise_plane(spec, z)[None]], axis=0) for z in noises]


def model_input(
    img: Image.Image,
    spec: TensorSpec,
    condition: str | None = None,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """(spec.channels, H, W) float32: the image fitted to the model, then condition planes,
    then the noise plane of ``noise`` (noise_dim,) (None: zeros) for a model with noise."""
    return model_inputs(img, spec, condition, None if noise is None else noise[None])[0]
