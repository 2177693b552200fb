"""``quantize``: an int8 copy of a published ONNX graph, scored against fp32 and served only
where it keeps its quality (``S2I_PRECISION``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from services.trainer.evaluation.compare import open_model
from services.trainer.publishing.bundle import bundle_version, fp16_weights, fp32_weights
from services.trainer.publishing.quantize import Bound, quantize_onnx, quantize_version
from shared.backends import load_backend
from shared.backends import onnx as onnx_backend
from shared.backends.onnx import OnnxBackend
from shared.bundled import MANIFEST_FILE, publish_bundled, read_superseded
from shared.manifest import (
    INT8_ONNX_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    Manifest,
    Precision,
    Quantized,
)
from shared.registry import Registry
from tests.helpers import publish_tiny
from tests.trainer.tiny_runs import run_cli

SIZE = 16


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    backend = OnnxBackend(path, device="cpu", threads=1)
    try:
        return backend.run(x)
    finally:
        backend.close()


def _x(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, SIZE, SIZE)).astype(np.float32)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


def test_fp32_weights_undo_the_bundles_fp16_casts(registry: Registry, tmp_path: Path) -> None:
    manifest, _ = publish_tiny(registry, "tiny", tmp_path, seed=0, size=SIZE)
    source = registry.version_dir("tiny", manifest.version) / ONNX_FILE
    half, full = tmp_path / "half.onnx", tmp_path / "full.onnx"
    onnx.save(fp16_weights(onnx.load(str(source))), str(half))
    onnx.save(fp32_weights(onnx.load(str(half))), str(full))
    graph = onnx.load(str(full)).graph
    assert not [n for n in graph.node if n.op_type == "Cast"]
    assert {i.data_type for i in graph.initializer} == {onnx.TensorProto.FLOAT}
    np.testing.assert_array_equal(_run(full, _x()), _run(half, _x()))


def test_int8_graph_is_quantized_and_close_to_fp32(registry: Registry, tmp_path: Path) -> None:
    manifest, _ = publish_tiny(registry, "tiny", tmp_path, seed=0, size=SIZE)
    source = registry.version_dir("tiny", manifest.version) / ONNX_FILE
    int8 = tmp_path / INT8_ONNX_FILE
    quantize_onnx(source, int8, [_x(8, seed) for seed in range(4)])
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    fp32, quantized = _run(source, _x(seed=9)), _run(int8, _x(seed=9))
    assert quantized.shape == fp32.shape
    assert 0 < np.abs(quantized - fp32).mean() < 0.03  # in [-1, 1] units


def test_quantize_version_publishes_both_graphs_scored_and_judged(
    registry: Registry, fs2k: Path, tmp_path: Path
) -> None:
    publish_tiny(registry, "tiny", tmp_path, seed=0, size=SIZE)
    written = quantize_version(registry, "tiny", fs2k, fid=False)
    assert (written.version, written.parent_version) == (2, 1)
    assert registry.current("tiny") == 2
    # every file of v1 (ONNX and TorchScript), and the int8 graph
    assert set(registry.verify("tiny", 2).files) == {ONNX_FILE, TORCHSCRIPT_FILE, INT8_ONNX_FILE}
    q = written.quantized
    assert q is not None
    assert {"ssim", "psnr", "val_l1", "ms_per_image"} <= set(q.metrics) & set(q.fp32_metrics)
    assert q.metrics["ssim"] != q.fp32_metrics["ssim"]  # two graphs were scored, not one
    assert q.accepted == Bound().holds(q.fp32_metrics, q.metrics)
    assert q.calibration == "fs2k train, 1 inputs"  # all the fixture has
    assert q.bound == "SSIM drop <= 0.01, PSNR drop <= 0.25 dB"  # no FID measured: no FID limit
    strict = quantize_version(registry, "tiny", fs2k, fid=False, bound=Bound(max_ssim_drop=-1))
    assert strict.quantized is not None
    assert not strict.quantized.accepted


def test_bound_holds_only_within_every_limit() -> None:
    fp32 = {"ssim": 0.40, "psnr": 12.0, "fid": 200.0}
    bound = Bound()  # SSIM -0.01, FID +2%, PSNR -0.25 dB
    assert bound.holds(fp32, {"ssim": 0.391, "psnr": 11.8, "fid": 203.9})
    assert not bound.holds(fp32, {"ssim": 0.389, "psnr": 12.0, "fid": 200.0})
    assert not bound.holds(fp32, {"ssim": 0.40, "psnr": 12.0, "fid": 204.1})
    assert not bound.holds(fp32, {"ssim": 0.40, "psnr": 11.7, "fid": 200.0})
    assert bound.holds(fp32, {"ssim": 0.45, "psnr": 13.0, "fid": 150.0})  # better is fine
    assert not bound.holds({"psnr": 12.0}, {"psnr": 12.0})  # SSIM must have been measured
    assert bound.text(fp32, fp32) == "SSIM drop <= 0.01, FID rise <= 2%, PSNR drop <= 0.25 dB"


@pytest.mark.parametrize(
    ("precision", "accepted", "expected"),
    [("auto", True, ":int8"), ("auto", False, ""), ("fp32", True, ""), ("int8", False, ":int8")],
)
def test_precision_picks_the_graph_the_worker_runs(
    registry: Registry, tmp_path: Path, precision: Precision, accepted: bool, expected: str
) -> None:
    published = _published_with_int8(registry, tmp_path, accepted=accepted)
    backend = load_backend(
        registry.version_dir("tiny", published.version), published, device="cpu",
        precision=precision, spinning=False,
    )  # fmt: skip
    assert backend.name == f"onnx:CPUExecutionProvider{expected}"
    assert backend.run(_x()).shape == (4, 3, SIZE, SIZE)
    backend.close()


def _published_with_int8(
    registry: Registry, tmp_path: Path, *, accepted: bool, listed: bool = True
) -> Manifest:
    """tiny v1, then v2 with an int8 copy (``listed``: in the manifest's files, as a
    registry version always has it; else the file is removed after publishing)."""
    manifest, _ = publish_tiny(registry, "tiny", tmp_path, seed=0, size=SIZE)
    folder = registry.version_dir("tiny", manifest.version)
    quantize_onnx(folder / ONNX_FILE, tmp_path / INT8_ONNX_FILE, [_x(8)])
    q = Quantized(method="test", calibration="noise", accepted=accepted)
    files = {ONNX_FILE: folder / ONNX_FILE, INT8_ONNX_FILE: tmp_path / INT8_ONNX_FILE}
    published = registry.publish(manifest.model_copy(update={"quantized": q}), files)
    if not listed:
        (registry.version_dir("tiny", published.version) / INT8_ONNX_FILE).unlink()
    return published


def test_int8_falls_back_to_model_onnx_where_there_is_no_int8_graph(
    registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest, _ = publish_tiny(registry, "tiny", tmp_path, seed=0, size=SIZE)
    folder = registry.version_dir("tiny", manifest.version)
    for precision in ("auto", "int8"):
        backend = load_backend(folder, manifest, device="cpu", precision=precision)
        assert backend.name == "onnx:CPUExecutionProvider"
        backend.close()
    assert "has no int8 graph; running model.onnx" in caplog.text
    missing = _published_with_int8(registry, tmp_path, accepted=True, listed=False)
    backend = load_backend(registry.version_dir("tiny", missing.version), missing, device="cpu")
    assert backend.name == "onnx:CPUExecutionProvider"  # named but gone: fp32, with a warning
    backend.close()
    assert "names an int8 graph that is not there" in caplog.text


def test_a_gpu_provider_always_runs_model_onnx(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = _published_with_int8(registry, tmp_path, accepted=True)
    folder = registry.version_dir("tiny", published.version)
    monkeypatch.setattr(onnx_backend, "runs_on_gpu", lambda device: True)
    backend = load_backend(folder, published, device="cpu", precision="int8")
    assert not backend.name.endswith(":int8")
    backend.close()


def test_compare_names_an_int8_graph_with_a_suffix(registry: Registry, tmp_path: Path) -> None:
    published = _published_with_int8(registry, tmp_path, accepted=False)
    _, backend = open_model(f"tiny@{published.version}:int8", registry)
    assert backend.name.endswith(":int8")  # even where not accepted for serving
    backend.close()
    with pytest.raises(ValueError, match="has no int8 graph"):
        open_model("tiny@1:int8", registry)
    with pytest.raises(ValueError, match="precision must be fp32 or int8"):
        open_model("tiny:int4", registry)


def test_a_quantized_version_ships_and_publishes_with_its_int8_graph(
    registry: Registry, fs2k: Path, tmp_path: Path
) -> None:
    publish_tiny(registry, "tiny", tmp_path, seed=0, size=SIZE)
    quantize_version(registry, "tiny", fs2k, fid=False, bound=Bound(max_ssim_drop=1.0))
    folder = bundle_version(registry, "tiny", out_root=tmp_path / "bundled")
    assert {p.name for p in folder.iterdir()} == {ONNX_FILE, INT8_ONNX_FILE, MANIFEST_FILE}
    fresh = Registry(tmp_path / "fresh")
    (published,) = publish_bundled(fresh, root=tmp_path / "bundled")
    assert set(published.files) == {ONNX_FILE, INT8_ONNX_FILE}
    assert published.quantized is not None
    assert published.quantized.accepted
    backend = load_backend(fresh.version_dir("tiny", 1), published, device="cpu")
    assert backend.name.endswith(":int8")  # "auto" (the default) serves the accepted int8
    backend.close()


def test_a_new_bundle_of_a_model_replaces_the_copy_a_volume_serves(
    registry: Registry, fs2k: Path, tmp_path: Path
) -> None:
    """Release 1 ships fp32 only; release 2 adds the int8 graph: a volume that serves release 1
    takes release 2 on its next start, once."""
    publish_tiny(registry, "tiny", tmp_path, seed=0, size=SIZE)
    bundled = tmp_path / "bundled"
    bundle_version(registry, "tiny", out_root=bundled)
    volume = Registry(tmp_path / "volume")
    publish_bundled(volume, root=bundled)
    quantize_version(registry, "tiny", fs2k, fid=False, bound=Bound(max_ssim_drop=1.0))
    folder = bundle_version(registry, "tiny", out_root=bundled)

    assert len(read_superseded(folder)) == 1  # release 1, named by its model.onnx alone
    (published,) = publish_bundled(volume, root=bundled)
    assert (published.version, volume.current("tiny")) == (2, 2)
    assert set(published.files) == {ONNX_FILE, INT8_ONNX_FILE}
    assert publish_bundled(volume, root=bundled) == []


def test_the_quantize_command_reports_its_verdict_and_both_scores(
    registry: Registry, fs2k: Path, tmp_path: Path
) -> None:
    publish_tiny(registry, "tiny", tmp_path, seed=0, size=SIZE)
    args = ["--model-root", str(registry.root), "quantize", "--model", "tiny", "--data", str(fs2k)]
    code, out, err = run_cli(*args, "--no-fid", "--max-ssim-drop", "-1")
    assert code == 0, err
    assert out.startswith("tiny v2: int8 not accepted (served in fp32); SSIM drop <= -1, PSNR")
    assert re.search(r"^\| fp32 \|", out, re.M)
    assert re.search(r"^\| int8 \|", out, re.M)
    code, _, err = run_cli("--model-root", str(registry.root), "quantize", "--model", "nope",
                           "--data", str(fs2k), "--no-fid")  # fmt: skip
    assert code != 0
