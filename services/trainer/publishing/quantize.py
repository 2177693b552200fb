"""int8 copies of published ONNX graphs, offered only where they keep their quality.

    python -m services.trainer quantize --model sketch2photo --data ../shared/data/fs2k

1. ``model.onnx`` of the version (fp16 weights are cast back to fp32 first) is quantized by
   ONNX Runtime's static quantizer: QDQ format, int8 weights per output channel, uint8
   activations whose ranges come from ``calibration`` training inputs prepared as the worker
   prepares requests (``shared.model_input``; the dataset's *train* split, never scored on).
2. Both graphs are scored on the same held-out pairs by ``compare`` (FID, SSIM, PSNR, FSIM, …,
   and ONNX Runtime's ms per image on this CPU).
3. A new version is published with the source version's files, the int8 copy and
   ``Manifest.quantized``: the two sets of metrics and whether int8 stayed within the bound
   (SSIM drop ≤ ``max_ssim_drop``, FID rise ≤ ``max_fid_rise`` relative, PSNR drop ≤
   ``max_psnr_drop`` dB; SSIM must have been measured). Workers hot-reload it; with
   ``S2I_PRECISION=auto`` (the default) they run the int8 graph on CPU only if accepted.

The quantizer lives in ``onnxruntime.quantization`` (part of the onnxruntime wheel the worker
already has); nothing here is needed to serve the result.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx

from services.trainer.evaluation.compare import compare, load_pairs
from services.trainer.publishing.bundle import fp32_weights
from shared.manifest import INPUT_NAME, INT8_ONNX_FILE, ONNX_FILE, Manifest, Quantized
from shared.model_input import model_inputs
from shared.registry import Registry

log = logging.getLogger(__name__)

METHOD = (
    "ONNX Runtime static quantization, QDQ, int8 per-channel weights (7-bit range), "
    "uint8 activations"
)


@dataclass(frozen=True)
class Bound:
    """How much quality int8 may lose against fp32 on the held-out pairs."""

    max_ssim_drop: float = 0.01
    max_fid_rise: float = 0.02  # relative: 0.02 = FID up by at most 2%
    max_psnr_drop: float = 0.25  # dB

    def limits(self) -> dict[str, str]:
        return {
            "ssim": f"SSIM drop <= {self.max_ssim_drop:g}",
            "fid": f"FID rise <= {self.max_fid_rise:.0%}",
            "psnr": f"PSNR drop <= {self.max_psnr_drop:g} dB",
        }

    def text(self, fp32: dict[str, float], int8: dict[str, float]) -> str:
        """The limits that apply to these two sets of metrics (FID only where measured)."""
        return ", ".join(t for k, t in self.limits().items() if k in fp32 and k in int8)

    def holds(self, fp32: dict[str, float], int8: dict[str, float]) -> bool:
        """SSIM was measured for both, and every metric both have stays within its limit."""
        checks = {
            "ssim": lambda a, b: a - b <= self.max_ssim_drop,
            "psnr": lambda a, b: a - b <= self.max_psnr_drop,
            "fid": lambda a, b: b <= a * (1 + self.max_fid_rise),
        }
        measured = [k for k in checks if k in fp32 and k in int8]
        return "ssim" in measured and all(checks[k](fp32[k], int8[k]) for k in measured)


class _Inputs:
    """onnxruntime's CalibrationDataReader protocol over arrays (N, C, H, W), one per call."""

    def __init__(self, batches: Iterable[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {INPUT_NAME: np.ascontiguousarray(batch, np.float32)}


def quantize_onnx(source: Path, target: Path, calibration: Iterable[np.ndarray]) -> None:
    """Write an int8 copy of the graph at ``source`` (fp32 or fp16 weights) to ``target``;
    ``calibration``: input batches (N, C, H, W) whose activation ranges set the scales."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        onnx.save(fp32_weights(onnx.load(str(source))), str(fp32))
        quantize_static(
            str(fp32),
            str(target),
            _Inputs(calibration),  # a CalibrationDataReader by its one method
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # 7-bit weights: x86 CPUs without VNNI (AVX2 only) add uint8 x int8 products in
            # pairs into int16 sums that saturate with 8-bit weights, which moved the face
            # models' outputs up to 118 grey levels from fp32 there (MODELS.md); ONNX
            # Runtime's advice for per-channel weights on such CPUs
            reduce_range=True,
        )


def calibration_batches(
    data: Path, manifest: Manifest, count: int, input_half: str | None = None, batch: int = 16
) -> list[np.ndarray]:
    """Up to ``count`` training inputs of the model, as the worker builds them, in batches."""
    spec = manifest.input
    pairs = load_pairs(data, direction_of(manifest), count, input_half, split="train")
    inputs = []
    for pair in pairs:
        inputs += model_inputs(pair.source, spec, pair.style if spec.condition else None)
    return [np.stack(inputs[i : i + batch]) for i in range(0, len(inputs), batch)]


def direction_of(manifest: Manifest) -> str:
    return "photo2sketch" if manifest.task == "photo2sketch" else "sketch2photo"


def quantize_version(
    registry: Registry,
    name: str,
    data: Path,
    *,
    version: int | None = None,
    calibration: int = 256,
    samples: int | None = None,
    bound: Bound | None = None,
    fid: bool = True,
    input_half: str | None = None,
) -> Manifest:
    """Quantize, score and publish (see the module doc); returns the new version's manifest.
    ``input_half``: for side-by-side AB data, the half the model takes (as for compare)."""
    bound = bound or Bound()
    manifest = registry.manifest(name, version)
    if manifest.input.kind != "image" or manifest.input.noise_dim:
        # a noise plane would be calibrated at z = 0 only, and variations are not scored
        raise ValueError(f"{name}: only image-to-image models without noise are quantized")
    source_dir = registry.version_dir(name, manifest.version)
    with tempfile.TemporaryDirectory() as tmp:
        int8_file = Path(tmp) / INT8_ONNX_FILE
        batches = calibration_batches(data, manifest, calibration, input_half)
        quantize_onnx(source_dir / ONNX_FILE, int8_file, batches)
        # score both graphs side by side: a scratch registry holds the candidate version
        scratch = Registry(Path(tmp) / "models")
        candidate = manifest.model_copy(
            update={"quantized": Quantized(method=METHOD, calibration="")}
        )
        files = {f: source_dir / f for f in manifest.files if f != INT8_ONNX_FILE}
        files[INT8_ONNX_FILE] = int8_file
        scratch.publish(candidate, files)
        ref = f"{name}@1"
        scores = compare(
            data, direction_of(manifest), [ref, f"{ref}:int8"], samples=samples,
            registry=scratch, fid=fid, input_half=input_half,
        )  # fmt: skip
        fp32_metrics, int8_metrics = scores[ref], scores[f"{ref}:int8"]
        quantized = Quantized(
            method=METHOD,
            calibration=f"{data.name} train, {sum(len(b) for b in batches)} inputs",
            metrics=int8_metrics,
            fp32_metrics=fp32_metrics,
            bound=bound.text(fp32_metrics, int8_metrics),
            accepted=bound.holds(fp32_metrics, int8_metrics),
        )
        log.info(
            "%s: int8 %s the bound (%s): fp32 %s, int8 %s",
            name,
            "within" if quantized.accepted else "OUTSIDE",
            quantized.bound,
            fp32_metrics,
            int8_metrics,
        )
        update = {
            "quantized": quantized,
            "parent_version": manifest.version,
            "created_at": datetime.now(UTC).isoformat(),
        }
        return registry.publish(manifest.model_copy(update=update), files)
