"""The U-Net's upsample="resize" decoder (bilinear 2x + 3x3 conv) and its noise inputs: shapes,
layers, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import Tensor, nn

from services.trainer.nets import UNetGenerator, build_serving_net
from services.trainer.nets.noise import NoiseInjection
from services.trainer.publishing.export import ONNX_FILE, TORCHSCRIPT_FILE, export_model

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:.*:UserWarning:torch.*"),
    pytest.mark.usefixtures("torch_one_thread"),  # tests/conftest.py
]


def _img(n: int, h: int, w: int, ch: int = 3, seed: int = 0) -> Tensor:
    return torch.rand(n, ch, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def count(net: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in net.modules())


@pytest.mark.parametrize(("h", "w"), [(32, 32), (32, 64)])
def test_resize_unet_keeps_the_input_shape(h: int, w: int) -> None:
    torch.manual_seed(0)
    net = UNetGenerator(ngf=4, num_downs=5, norm="instance", upsample="resize").eval()
    with torch.no_grad():
        out = net(_img(2, h, w))
    assert out.shape == (2, 3, h, w)
    assert float(out.abs().max()) <= 1.0
    assert float(out.std()) > 0


def test_resize_unet_has_no_transposed_convs_and_transpose_keeps_them() -> None:
    resize = UNetGenerator(ngf=4, num_downs=6, upsample="resize")
    transpose = UNetGenerator(ngf=4, num_downs=6, upsample="transpose")
    default = UNetGenerator(ngf=4, num_downs=6)
    assert count(resize, nn.ConvTranspose2d) == 0
    assert count(resize, nn.Upsample) == 6  # one per level
    ups = [m for m in resize.modules() if isinstance(m, nn.Upsample)]
    assert all(u.mode == "bilinear" and u.scale_factor == 2 for u in ups)
    assert count(transpose, nn.ConvTranspose2d) == 6
    assert count(transpose, nn.Upsample) == 0
    assert count(default, nn.ConvTranspose2d) == 6
    # resize adds 3x3 convs where transpose had its 4x4 transposed convs
    three = [m for m in resize.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(three) == 6


def test_resize_and_transpose_unets_take_the_same_input_with_the_same_skips() -> None:
    resize = UNetGenerator(in_channels=6, ngf=4, num_downs=5, upsample="resize")
    out = resize(_img(1, 32, 32, ch=6))
    assert out.shape == (1, 3, 32, 32)
    # the outermost decoder conv sees skip (ngf) + decoder (ngf) channels, as with transpose
    outer_up = resize.model.model[3]
    assert isinstance(outer_up, nn.Sequential)
    assert outer_up[1].in_channels == 8


def test_unknown_upsample_is_refused() -> None:
    with pytest.raises(ValueError, match="upsample"):
        UNetGenerator(ngf=4, num_downs=5, upsample="pixelshuffle")  # type: ignore[arg-type]


def test_resize_unet_exports_with_onnx_and_torchscript_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_serving_net("unet", ngf=4, num_downs=5, norm="instance", upsample="resize")
    result = export_model(net, (1, 3, 32, 32), tmp_path)
    assert set(result.files) == {ONNX_FILE, TORCHSCRIPT_FILE}
    assert max(result.max_abs_diff.values()) <= 1e-4

    x = _img(3, 32, 32, seed=7)
    with torch.no_grad():
        expected = net.eval()(x).numpy()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(result.files[ONNX_FILE]), opts, providers=["CPUExecutionProvider"]
    )
    (got,) = session.run(["output"], {"input": x.numpy()})
    assert got.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_noise_inputs_vary_in_training_and_are_fixed_when_served(tmp_path: Path) -> None:
    """``noise_levels``: fresh per-pixel noise at each training step; in eval mode one fixed
    map, the same in every build, so the export stays deterministic and matches."""
    kw: dict[str, object] = {"ngf": 4, "num_downs": 5, "norm": "instance", "upsample": "resize"}
    torch.manual_seed(0)
    net = UNetGenerator(noise_levels=3, **kw)  # type: ignore[arg-type]
    plain = UNetGenerator(**kw)  # type: ignore[arg-type]
    plain.load_state_dict(net.state_dict(), strict=False)  # the same convs, no noise scales
    x = _img(2, 32, 32)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), plain.eval()(x))  # zero scales at init: no noise yet
        for layer in net.modules():
            if isinstance(layer, NoiseInjection):
                layer.weight.fill_(0.5)  # (1, C, 1, 1), as if trained
        served = net.eval()(x)
        assert torch.equal(served, net(x))  # fixed noise when served
        assert not torch.equal(net.train()(x), net(x))  # fresh noise in training
        assert not torch.equal(served, plain(x))  # the noise does reach the output

    torch.manual_seed(1)
    rebuilt = UNetGenerator(noise_levels=3, **kw).eval()  # type: ignore[arg-type]
    rebuilt.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(x), served)  # the fixed map comes with the build

    serving = build_serving_net("unet", noise_levels=3, **kw)
    serving.netG.load_state_dict(net.state_dict())
    result = export_model(serving, (1, 3, 32, 32), tmp_path)
    assert max(result.max_abs_diff.values()) <= 1e-4
    session = ort.InferenceSession(str(tmp_path / ONNX_FILE), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(onnx_out, served.numpy(), atol=1e-4)


def test_noise_levels_are_bounded_by_the_decoder() -> None:
    with pytest.raises(ValueError, match="noise_levels"):
        UNetGenerator(ngf=4, num_downs=5, noise_levels=4)
