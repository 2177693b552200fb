"""Export to TorchScript and ONNX: files, dynamic batch axis, parity, and refusal to diverge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from services.trainer.nets import ARCHITECTURES, build_serving_net
from services.trainer.publishing.export import (
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    ExportError,
    export_model,
)
from tests.helpers import TINY_ARCHS

# tracing nets that are built to trace badly warns, on purpose
pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:.*:UserWarning:torch.*"),
    pytest.mark.usefixtures("torch_one_thread"),  # tests/conftest.py
]


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _randomized_tiny(name: str) -> nn.Module:
    """The tiny serving net with non-trivial batch-norm statistics, so eval mode matters."""
    torch.manual_seed(0)
    net = build_serving_net(name, **TINY_ARCHS[name][0])
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = torch.empty(m.num_features).uniform_(-0.1, 0.1)
            m.running_var = torch.empty(m.num_features).uniform_(0.5, 1.5)
    return net.train()  # export_model must put it in eval mode itself


def test_tiny_table_covers_every_architecture() -> None:
    assert set(TINY_ARCHS) == set(ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(TINY_ARCHS))
def test_every_architecture_exports_with_parity_at_batch_1_and_8(name: str, tmp_path: Path) -> None:
    net = _randomized_tiny(name)
    shape = TINY_ARCHS[name][1]
    result = export_model(net, (1, *shape), tmp_path)

    assert set(result.files) == {ONNX_FILE, TORCHSCRIPT_FILE}
    assert all(p.is_file() and p.parent == tmp_path for p in result.files.values())
    assert set(result.max_abs_diff) == {
        "onnx@1",
        "onnx@8",
        "torchscript@1",
        "torchscript@8",
    }
    assert max(result.max_abs_diff.values()) <= 1e-4

    # independent check: eager vs ONNX Runtime at a batch size the export never saw
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(7)) * 2 - 1
    with torch.no_grad():
        expected = net.eval()(x).numpy()
    (got,) = _session(result.files[ONNX_FILE]).run(["output"], {"input": x.numpy()})
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)
    ts = torch.jit.load(str(result.files[TORCHSCRIPT_FILE]))
    np.testing.assert_allclose(ts(x).numpy(), expected, atol=1e-4)


def test_sketchy_exports_read_the_noise_from_the_last_plane(tmp_path: Path) -> None:
    """ONNX and TorchScript take z from the noise plane: a nonzero z changes the image, the
    values past noise_dim do not, and both exports match eager PyTorch netG(sketch, z)."""
    net = _randomized_tiny("sketchy").eval()
    kwargs, shape = TINY_ARCHS["sketchy"]
    noise_dim = kwargs["noise_dim"]
    result = export_model(net, (1, *shape), tmp_path)
    gen = torch.Generator().manual_seed(3)
    sketch = torch.rand(2, 3, *shape[1:], generator=gen) * 2 - 1  # (2, 3, H, W)
    z = torch.randn(2, noise_dim, generator=gen)  # (2, noise_dim)
    plane = torch.zeros(2, shape[1] * shape[2])  # (2, H * W)
    plane[:, :noise_dim] = z
    with_z = torch.cat([sketch, plane.view(2, 1, *shape[1:])], dim=1)  # (2, 4, H, W)
    at_zero = torch.cat([sketch, torch.zeros(2, 1, *shape[1:])], dim=1)
    past_z = at_zero.clone()
    past_z[:, -1].view(2, -1)[:, noise_dim:] = 5.0  # beyond z: ignored
    with torch.no_grad():
        expected = net.netG(sketch, z).clamp(-1, 1).numpy()
        expected_zero = net.netG(sketch, torch.zeros(2, noise_dim)).clamp(-1, 1).numpy()
    session = _session(result.files[ONNX_FILE])
    ts = torch.jit.load(str(result.files[TORCHSCRIPT_FILE]))
    for x, want in ((with_z, expected), (at_zero, expected_zero), (past_z, expected_zero)):
        (got,) = session.run(["output"], {"input": x.numpy()})
        np.testing.assert_allclose(got, want, atol=1e-4)
        np.testing.assert_allclose(ts(x).numpy(), want, atol=1e-4)
    assert np.abs(expected - expected_zero).mean() > 1e-4  # as test_nets: z changes the image


def test_onnx_graph_declares_a_dynamic_batch_axis(tmp_path: Path) -> None:
    kwargs, shape = TINY_ARCHS["unet"]
    result = export_model(build_serving_net("unet", **kwargs), (1, *shape), tmp_path)

    graph = onnx.load(str(result.files[ONNX_FILE])).graph
    for value in (graph.input[0], graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
        assert not dims[0].HasField("dim_value")
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == list(shape)

    x = np.random.default_rng(0).uniform(-1, 1, (3, *shape)).astype(np.float32)
    (out,) = _session(result.files[ONNX_FILE]).run(["output"], {"input": x})
    assert out.shape == (3, *shape)


def test_only_the_asked_format_is_written(tmp_path: Path) -> None:
    kwargs, shape = TINY_ARCHS["vae"]
    result = export_model(
        build_serving_net("vae", **kwargs), (1, *shape), tmp_path, formats=("onnx",)
    )
    assert set(result.files) == {ONNX_FILE}
    assert not (tmp_path / TORCHSCRIPT_FILE).exists()
    assert set(result.max_abs_diff) == {"onnx@1", "onnx@8"}


def test_unknown_format_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown export formats"):
        export_model(nn.Identity(), (1, 3, 4, 4), tmp_path / "out", formats=("onnx", "tflite"))
    assert not (tmp_path / "out").exists()


class CallCounter(nn.Module):
    """Adds how often it has been called: Python-side state the trace freezes as a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x + float(self.calls)


class AlwaysDropout(nn.Module):
    """Dropout that ignores eval mode: the export is random, as eager is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, p=0.5, training=True)


class BatchTwoBranch(nn.Module):
    """Python control flow on the batch size: tracing at batch 2 keeps only one branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 2:
            return x * 2.0
        return x - 1.0


@pytest.mark.parametrize("net_cls", [CallCounter, AlwaysDropout, BatchTwoBranch])
def test_export_that_diverges_from_eager_raises(net_cls: type[nn.Module], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="differs from eager"):
        export_model(net_cls(), (1, 3, 4, 4), tmp_path)


def test_atol_is_the_parity_bound(tmp_path: Path) -> None:
    # BatchTwoBranch's exports give x*2 where eager gives x-1: |x+1| <= 2 on inputs in [-1, 1]
    result = export_model(BatchTwoBranch(), (1, 3, 4, 4), tmp_path, atol=2.0)
    assert 0 < max(result.max_abs_diff.values()) <= 2.0


class BakedBatch(nn.Module):
    """``int(x.shape[0])`` is a constant 2 in the trace, so the export always returns 2 rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x.shape[0])
        return x.sum(0, keepdim=True).expand(n, *x.shape[1:])  # (N, ...) eager, (2, ...) export


@pytest.mark.parametrize("check_batches", [(1,), (1, 8)])
def test_export_with_a_baked_in_batch_size_raises_export_error(
    check_batches: tuple[int, ...], tmp_path: Path
) -> None:
    with pytest.raises(ExportError):
        export_model(BakedBatch(), (1, 3, 4, 4), tmp_path, check_batches=check_batches)


def test_net_that_cannot_be_traced_raises_export_error(tmp_path: Path) -> None:
    class DictOut(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"image": x, "other": {"nested": x}}  # type: ignore[dict-item]

    with pytest.raises(ExportError, match="export failed"):
        export_model(DictOut(), (1, 3, 4, 4), tmp_path, formats=("torchscript",))
