"""Every model shipped in the package gives, on fixed inputs, the output stored beside the test.

An accidental change of weights (a re-bundle, a corrupted file) or of preprocessing (fit,
resize filter, condition planes) changes the outputs beyond float rounding and fails here. After
a deliberate change, rewrite the references: ``S2I_UPDATE_REFERENCES=1 pytest <this file>``.
Also: all the weights in the repository together stay within the 100 MB budget.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.backends import Precision, load_backend
from shared.bundled import BUNDLED_ROOT, MANIFEST_FILE, bundled_names
from shared.image_ops import from_array
from shared.latents import generate_latents
from shared.manifest import Manifest
from shared.model_input import model_input, model_inputs, noise_vectors
from tests.bundled_inputs import DATA, generate_requests, translate_inputs

REFERENCES = DATA / "bundled_reference"
REPO = Path(__file__).parents[2]
WEIGHT_SUFFIXES = {".onnx", ".safetensors", ".pt", ".ts", ".pth", ".data"}  # .data: ONNX external
WEIGHT_BUDGET_BYTES = 100 * 1024 * 1024
UPDATE = os.environ.get("S2I_UPDATE_REFERENCES") == "1"


def manifest_of(name: str) -> Manifest:
    return Manifest.model_validate_json((BUNDLED_ROOT / name / MANIFEST_FILE).read_text())


def outputs(name: str, precision: Precision = "fp32") -> dict[str, np.ndarray]:
    """{"<input>[@<condition>]" or "seed<S>[@<class>]": (H, W, 3) uint8} for the model's fixed
    inputs (tests/bundled_inputs.py), from its model.onnx or (``int8``) its quantized copy."""
    manifest = manifest_of(name)
    spec = manifest.input
    backend = load_backend(
        BUNDLED_ROOT / name, manifest, prefer="onnx", device="cpu", intra_op_threads=1,
        precision=precision,
    )  # fmt: skip
    out = {}
    try:
        if manifest.task == "generate":
            for seed, class_name in generate_requests(manifest):
                y = backend.run(generate_latents(spec, 1, seed, class_name))[0]
                out[f"seed{seed}" + (f"@{class_name}" if class_name else "")] = to_uint8(y)
            return out
        conditions: list[str | None] = list(spec.condition_values) if spec.condition else [None]
        for path in translate_inputs(manifest):
            with Image.open(path) as img:
                rgb = img.convert("RGB")
            for cond in conditions:
                y = backend.run(model_input(rgb, spec, cond)[None])[0]
                out[path.stem + (f"@{cond}" if cond else "")] = to_uint8(y)
    finally:
        backend.close()
    return out


def to_uint8(y: np.ndarray) -> np.ndarray:
    return np.asarray(from_array(y))  # (3, H, W) in [-1, 1] -> (H, W, 3) uint8


def shipped_graphs() -> list[tuple[str, Precision]]:
    """(model, precision) of every ONNX file shipped: model.onnx, and the int8 copy if any."""
    return [
        (name, precision)
        for name in bundled_names()
        for precision in ("fp32", "int8")
        if precision == "fp32" or manifest_of(name).quantized is not None
    ]


def reference_stem(name: str, precision: Precision) -> str:
    return name if precision == "fp32" else f"{name}.{precision}"


@pytest.mark.parametrize(("name", "precision"), shipped_graphs())
def test_bundled_model_reproduces_its_reference_outputs(name: str, precision: Precision) -> None:
    got = outputs(name, precision)
    path = REFERENCES / f"{reference_stem(name, precision)}.npz"
    # 8-bit levels: float rounding across CPUs moves a few pixels by a level or two; int8
    # kernels differ more between CPUs (VNNI or not), still far from what a weight change does
    max_diff, mean_diff = (3, 0.05) if precision == "fp32" else (16, 0.5)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **got)
    with np.load(path, allow_pickle=False) as ref:
        assert sorted(ref.files) == sorted(got)
        for key, expected in got.items():
            diff = np.abs(ref[key].astype(np.int16) - expected.astype(np.int16))
            assert diff.max() <= max_diff, (name, key, int(diff.max()))
            assert diff.mean() < mean_diff, (name, key, float(diff.mean()))
            assert expected.std() > 10, (name, key)  # not blank


NOISY = [n for n in bundled_names() if manifest_of(n).input.noise_dim]


@pytest.mark.parametrize("name", NOISY)
def test_a_shipped_model_with_noise_gives_the_same_variations_for_a_seed_and_others_for_another(
    name: str,
) -> None:
    manifest = manifest_of(name)
    spec = manifest.input
    backend = load_backend(BUNDLED_ROOT / name, manifest, prefer="onnx", intra_op_threads=1)
    with Image.open(translate_inputs(manifest)[0]) as img:
        rgb = img.convert("RGB")

    def variations(seed: int) -> np.ndarray:
        x = np.stack(model_inputs(rgb, spec, None, noise_vectors(seed, 4, spec.noise_dim)))
        return np.stack([to_uint8(y) for y in backend.run(x)]).astype(np.float32)  # (4, H, W, 3)

    try:
        first, again, other = variations(7), variations(7), variations(8)
    finally:
        backend.close()
    np.testing.assert_array_equal(first, again)  # the same seed: the same images
    assert np.abs(first - other).mean() > 1.0  # another seed: other images (8-bit levels)
    spread = [np.abs(first[i] - first[j]).mean() for i in range(4) for j in range(i + 1, 4)]
    assert min(spread) > 1.0, spread  # the 4 variations differ from each other


def test_every_shipped_graph_has_a_reference() -> None:
    graphs = {reference_stem(name, precision) for name, precision in shipped_graphs()}
    assert graphs, "no bundled models"
    assert {p.name.removesuffix(".npz") for p in REFERENCES.glob("*.npz")} == graphs


def test_bundled_manifests_say_what_users_see_in_get_models() -> None:
    for name in bundled_names():
        manifest = json.loads((BUNDLED_ROOT / name / MANIFEST_FILE).read_text())
        assert manifest["name"] == name
        assert manifest["metrics"], name
        assert manifest["compute"].get("cpu_hours", 0) > 0, name
        assert manifest["dataset"], name


def test_all_weights_in_the_repository_fit_the_budget() -> None:
    tracked = [
        p
        for p in REPO.rglob("*")
        if p.suffix in WEIGHT_SUFFIXES
        and p.is_file()
        and not {".venv", "var", ".git", "node_modules"} & set(p.relative_to(REPO).parts)
    ]
    total = sum(p.stat().st_size for p in tracked)
    assert total <= WEIGHT_BUDGET_BYTES, f"{total / 2**20:.1f} MB in {len(tracked)} files"
