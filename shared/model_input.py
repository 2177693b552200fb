"""From a decoded image (and the request's condition) to the array a translation model takes.

One place for what the worker does before inference and what offline evaluation must do the
same way: bring the image to the model's size as its manifest says (``fit``), then append the
condition's one-hot planes where the model has one (FS2K photo→sketch takes the drawing
style: ``channels`` = 3 + 3, ``condition`` = "style", ``condition_values`` = ["1", "2", "3"]).

    x = model_input(img, manifest.input, condition="2")    # (C, H, W) float32 in [-1, 1]
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from shared.image_ops import to_array
from shared.manifest import TensorSpec


class ConditionError(ValueError):
    """A condition value the model does not take, or one given to a model without one."""


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


def model_input(img: Image.Image, spec: TensorSpec, condition: str | None = None) -> np.ndarray:
    """(spec.channels, H, W) float32: the image fitted to the model, then condition planes."""
    rgb = to_array(img, (spec.width, spec.height), fit=spec.fit)  # (3, H, W)
    index = condition_index(spec, condition)
    if index is None:
        return rgb
    planes = np.zeros((len(spec.condition_values), spec.height, spec.width), np.float32)
    planes[index] = 1.0
    return np.concatenate([rgb, planes], axis=0)  # (3 + K, H, W)
