"""A published model version's ``manifest.json`` (docs/architecture.md, "The model volume")."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# a model's name: its folder on the model volume and the `model` field of requests
MODEL_NAME = r"[a-z0-9][a-z0-9-]{0,63}"
MODEL_NAME_PATTERN = f"^{MODEL_NAME}$"
MODEL_NAME_RE = re.compile(MODEL_NAME_PATTERN)

# files of a version folder, and the tensor names of the exported graphs
ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"  # the int8 copy of model.onnx, when Manifest.quantized
TORCHSCRIPT_FILE = "model.ts"
INPUT_NAME = "input"
OUTPUT_NAME = "output"

Task = Literal["sketch2photo", "photo2sketch", "generate"]
# which ONNX graph runs on CPU (Settings.precision, shared.backends.load_backend)
Precision = Literal["auto", "fp32", "int8"]


class TensorSpec(BaseModel):
    """What a served graph takes or gives: one tensor, batch axis first."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["image", "noise"] = "image"
    # image: (N, channels, height, width) in value_range; noise: (N, z_dim)
    height: int = 0
    width: int = 0
    channels: int = 3
    z_dim: int = 0
    num_classes: int = 0  # generate models: a one-hot class block after z (N, z_dim + classes)
    class_names: list[str] = Field(default_factory=list)
    value_range: tuple[float, float] = (-1.0, 1.0)
    layout: Literal["NCHW", "NC"] = "NCHW"
    dtype: Literal["float32"] = "float32"
    fit: Literal["resize", "letterbox"] = "resize"  # how an input image is brought to size
    # image inputs with a condition: a request field (e.g. "style") whose value, one-hot over
    # condition_values, fills the last len(condition_values) of the `channels` planes
    condition: str | None = None
    condition_values: list[str] = Field(default_factory=list)
    condition_default: str | None = None  # None: the first of condition_values
    # image inputs of models with noise (SketchyGAN): when > 0, the LAST of the `channels`
    # planes carries z ~ N(0, I): its first noise_dim values in row-major order are z, the
    # rest zero (needs height * width >= noise_dim); all zeros is the prior's mean
    noise_dim: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _noise_fits_a_plane(self) -> TensorSpec:
        if self.noise_dim and (self.kind != "image" or self.height * self.width < self.noise_dim):
            raise ValueError(
                f"noise_dim {self.noise_dim} needs an image input of at least that many "
                f"pixels, not {self.kind} {self.height}x{self.width}"
            )
        return self

    def shape(self, batch: int) -> tuple[int, ...]:
        if self.kind == "noise":
            return (batch, self.z_dim + self.num_classes)
        return (batch, self.channels, self.height, self.width)


class Quantized(BaseModel):
    """``INT8_ONNX_FILE``, an int8 copy of the ONNX graph beside it
    (``services/trainer/publishing/quantize.py``).

    ``metrics`` are the int8 graph's on the same held-out set as ``fp32_metrics`` (those of
    ``model.onnx``, measured in the same run); ``accepted``: its quality loss stayed within
    ``bound``, so ``S2I_PRECISION=auto`` serves it on CPU.
    """

    model_config = ConfigDict(extra="forbid")

    method: str  # e.g. "static QDQ, int8 per-channel weights, uint8 activations"
    calibration: str  # the inputs the activation ranges came from, e.g. "fs2k train, 256"
    metrics: dict[str, float] = Field(default_factory=dict)
    fp32_metrics: dict[str, float] = Field(default_factory=dict)
    bound: str = ""  # e.g. "SSIM drop <= 0.01, FID rise <= 2%"
    accepted: bool = False


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: int = 0  # set by the registry at publish time
    task: Task
    architecture: str
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    recipe: str
    input: TensorSpec
    output: TensorSpec
    files: dict[str, str] = Field(default_factory=dict)  # file name -> sha256 hex
    metrics: dict[str, float] = Field(default_factory=dict)
    dataset: str | None = None
    steps: int = 0
    # cumulative training cost: steps, images_seen, cpu_hours, wall_hours (across --init-from)
    compute: dict[str, float] = Field(default_factory=dict)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    parent_version: int | None = None
    description: str = ""
    quantized: Quantized | None = None  # an int8 graph ships beside model.onnx

    def summary(self) -> dict[str, Any]:
        """The public view served by ``GET /v1/models`` (no file hashes)."""
        return self.model_dump(exclude={"files"})
