"""Behaviour of the generator/discriminator architectures and their export wrappers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from services.trainer.nets import (
    ARCHITECTURES,
    MRU,
    CombinedModel,
    ConvVAE,
    DCGANGenerator,
    NLayerDiscriminator,
    ResnetCGANDiscriminator,
    ResnetCGANGenerator,
    ResnetGenerator,
    SiameseDiscriminator,
    SketchyDiscriminator,
    SketchyGenerator,
    UNetGenerator,
    build_serving_net,
    frozen,
    init_weights,
)
from services.trainer.nets.resnet_cgan import AddResidualBlock
from tests.helpers import TINY_ARCHS

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _img(n: int, size: int, ch: int = 3) -> torch.Tensor:
    return torch.rand(n, ch, size, size) * 2 - 1


def _in_range(t: torch.Tensor) -> bool:
    return bool(t.min() >= -1.0) and bool(t.max() <= 1.0)


# --- generators and discriminators: shapes and ranges ---------------------------------------


@pytest.mark.parametrize(
    ("net", "size"),
    [
        (UNetGenerator(ngf=4, num_downs=5), 32),
        (UNetGenerator(ngf=4, num_downs=6, norm="instance"), 64),
        (ResnetGenerator(ngf=4, n_blocks=2), 20),
        (ResnetCGANGenerator(ngf=4, n_blocks=2), 16),
    ],
)
def test_translation_generators_keep_shape_and_range(net: nn.Module, size: int) -> None:
    out = net(_img(2, size))
    assert out.shape == (2, 3, size, size)
    assert _in_range(out)
    assert out.std() > 0


def test_patchgan_70x70_gives_30x30_logit_map_with_negative_values() -> None:
    netD = init_weights(NLayerDiscriminator(in_channels=6, ndf=4, n_layers=3))
    out = netD(_img(2, 256, ch=6))
    assert out.shape == (2, 1, 30, 30)
    assert out.min() < 0 < out.max()  # raw logits, no sigmoid


def test_init_weights_draws_conv_weights_with_std_0_02() -> None:
    net = init_weights(ResnetGenerator(ngf=16, n_blocks=1), gain=0.02)
    w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, nn.Conv2d)])
    assert abs(float(w.std()) - 0.02) < 0.002
    assert abs(float(w.mean())) < 0.002


def test_unet_outermost_decoder_receives_first_encoder_features() -> None:
    netG = UNetGenerator(ngf=4, num_downs=5).eval()
    outer = netG.model.model  # [downconv, submodule, uprelu, upconv, tanh]
    seen: dict[str, torch.Tensor] = {}
    outer[0].register_forward_hook(lambda m, i, o: seen.__setitem__("down", o))
    outer[3].register_forward_pre_hook(lambda m, i: seen.__setitem__("up_in", i[0]))
    netG(_img(1, 32))
    assert seen["up_in"].shape[1] == 2 * 4  # skip (ngf) + decoder (ngf)
    torch.testing.assert_close(seen["up_in"][:, :4], F.relu(seen["down"]))


def test_unet_rejects_too_few_downsamplings() -> None:
    with pytest.raises(ValueError, match="num_downs"):
        UNetGenerator(num_downs=4)


# --- ResNet cGAN (brief section A) ------------------------------------------------------------


def test_resnet_cgan_generator_layers_match_the_brief() -> None:
    netG = ResnetCGANGenerator()
    expected = [(netG.conv1, 32, 7, 1), (netG.conv2, 64, 3, 2), (netG.conv3, 128, 3, 2)]
    for stage, filters, k, s in expected:
        conv, bn, act = stage
        assert (conv.out_channels, conv.kernel_size, conv.stride) == (filters, (k, k), (s, s))
        assert isinstance(bn, nn.BatchNorm2d)
        assert isinstance(act, nn.ReLU)
    assert len(netG.res_blocks) == 6
    for block in netG.res_blocks:
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 2
        assert sum(isinstance(m, nn.BatchNorm2d) for m in block.modules()) == 2
    deconvs = [m for m in netG.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(d.out_channels, d.stride) for d in deconvs] == [(64, (2, 2)), (32, (2, 2))]
    assert (netG.conv_out.out_channels, netG.conv_out.kernel_size) == (3, (3, 3))
    out = netG.eval()(_img(1, 32))
    assert out.shape == (1, 3, 32, 32)
    assert _in_range(out)


def test_resnet_cgan_residual_adds_first_conv_output_to_second() -> None:
    block = AddResidualBlock(8).eval()
    x = torch.randn(2, 8, 6, 6)
    a = block.stage1(x)
    torch.testing.assert_close(block(x), a + block.stage2(a))


def test_resnet_cgan_discriminator_logit_is_dense_plus_sigmoid() -> None:
    netD = ResnetCGANDiscriminator(image_size=128, ndf=4)
    assert any(isinstance(m, nn.LeakyReLU) for m in netD.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in netD.modules()) >= 2
    assert netD.dense.out_features == 1
    logit = netD(_img(3, 128))
    assert logit.shape == (3, 1)
    target = torch.ones_like(logit)
    torch.testing.assert_close(
        F.binary_cross_entropy_with_logits(logit, target),
        F.binary_cross_entropy(torch.sigmoid(logit), target),
    )
    with pytest.raises(ValueError, match="divisible"):
        ResnetCGANDiscriminator(image_size=100)


def test_combined_model_with_frozen_discriminator_trains_only_generator() -> None:
    netG = ResnetCGANGenerator(ngf=4, n_blocks=1)
    netD = ResnetCGANDiscriminator(image_size=16, ndf=4)
    combined = CombinedModel(netG, netD)
    with frozen(netD):
        fake_B, verdict = combined(_img(2, 16))
        F.binary_cross_entropy_with_logits(verdict, torch.ones_like(verdict)).backward()
    assert fake_B.shape == (2, 3, 16, 16)
    assert verdict.shape == (2, 1)
    assert all(p.grad is None for p in netD.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in netG.parameters())
    assert all(p.requires_grad for p in netD.parameters())  # restored after the block


def test_combined_model_upsamples_64_to_128_for_the_discriminator() -> None:
    netG = ResnetCGANGenerator(ngf=4, n_blocks=1)
    netD = ResnetCGANDiscriminator(image_size=128, ndf=4)
    shapes: list[torch.Size] = []
    netD.register_forward_pre_hook(lambda m, i: shapes.append(i[0].shape))
    fake_B, verdict = CombinedModel(netG, netD, upsample_to=128)(_img(2, 64))
    assert shapes == [torch.Size([2, 3, 128, 128])]
    assert fake_B.shape == (2, 3, 128, 128)
    assert verdict.shape == (2, 1)
    torch.testing.assert_close(fake_B[:, :, ::2, ::2], fake_B[:, :, 1::2, 1::2])  # nearest


# --- SketchyGAN -------------------------------------------------------------------------------


@pytest.mark.parametrize("resample", ["none", "down", "up"])
def test_mru_follows_the_formula(resample: str) -> None:
    mru = MRU(4, 6, sketch_ch=3, resample=resample).eval()
    x = torch.randn(2, 4, 8, 8)
    xs = F.interpolate(x, scale_factor=2.0) if resample == "up" else x
    sketch = torch.randn(2, 3, *xs.shape[-2:])
    xi = torch.cat([xs, sketch], 1)
    m = torch.sigmoid(mru.conv_m(xi))
    n = torch.sigmoid(mru.conv_n(xi))
    z = F.relu(mru.norm(mru.conv_z(torch.cat([m * xs, sketch], 1))))
    y = mru(x, sketch)
    torch.testing.assert_close(y, (1 - n) * mru.conv_x(xs) + n * z)
    side = {"none": 8, "down": 4, "up": 16}[resample]
    assert y.shape == (2, 6, side, side)
    assert mru.conv_n.bias is not None
    with torch.no_grad():  # gate n forced shut: y = conv(x)
        mru.conv_n.weight.zero_()
        mru.conv_n.bias.fill_(-100.0)
    torch.testing.assert_close(mru(x, sketch), mru.conv_x(xs))


def test_sketchy_generator_feeds_every_mru_the_sketch_at_its_scale() -> None:
    netG = SketchyGenerator(ngf=4, noise_dim=8, num_levels=3).eval()
    pairs: list[tuple[int, int]] = []
    for mru in [*netG.encoder, netG.bottleneck, *netG.decoder]:
        mru.register_forward_pre_hook(
            lambda m, i: pairs.append(
                (i[0].shape[-1] * (2 if m.resample == "up" else 1), i[1].shape[-1])
            )
        )
    netG(_img(1, 32), torch.randn(1, 8))
    assert len(pairs) == 7
    assert all(x_side == s_side for x_side, s_side in pairs)
    assert {s for _, s in pairs} == {32, 16, 8, 4}


def test_sketchy_generator_noise_changes_the_image() -> None:
    netG = SketchyGenerator(ngf=4, noise_dim=8, num_levels=3).eval()
    sketch = _img(2, 32)
    z1, z2 = torch.randn(2, 8), torch.randn(2, 8)
    out1, out2 = netG(sketch, z1), netG(sketch, z2)
    assert out1.shape == (2, 3, 32, 32)
    assert _in_range(out1)
    assert (out1 - out2).abs().mean() > 1e-4
    torch.testing.assert_close(netG(sketch, z1), out1)


def test_sketchy_discriminator_heads() -> None:
    image, sketch = _img(2, 32), _img(2, 32)
    adv, cls = SketchyDiscriminator(ndf=4, num_levels=3, num_classes=5)(image, sketch)
    assert adv.shape == (2, 1, 4, 4)
    assert cls is not None
    assert cls.shape == (2, 5)
    adv0, cls0 = SketchyDiscriminator(ndf=4, num_levels=3)(image, sketch)
    assert adv0.shape == (2, 1, 4, 4)
    assert cls0 is None


# --- DCGAN, Siamese discriminator, VAE --------------------------------------------------------


def test_dcgan_generator_with_classes() -> None:
    netG = DCGANGenerator(z_dim=16, ngf=8, num_classes=2).eval()
    z = torch.randn(3, 16)
    cats = netG(z, torch.zeros(3, dtype=torch.long))
    dogs = netG(z, torch.ones(3, dtype=torch.long))
    assert cats.shape == (3, 3, 32, 32)
    assert _in_range(cats)
    assert (cats - dogs).abs().max() > 1e-4
    with pytest.raises(ValueError, match="labels"):
        netG(z)
    assert DCGANGenerator(z_dim=16, ngf=8)(z).shape == (3, 3, 32, 32)


def test_siamese_discriminator_scores_pairs_symmetrically() -> None:
    netD = SiameseDiscriminator(ndf=8, embed_dim=16).eval()
    a, b = _img(4, 32), _img(4, 32)
    assert netD.embed(a).shape == (4, 16)
    s_ab = netD(a, b)
    assert s_ab.shape == (4,)
    torch.testing.assert_close(s_ab, netD(b, a))
    same = netD(a, a)  # |e(a) - e(a)| = 0: every identical pair scores the head's bias
    torch.testing.assert_close(same, netD.head.bias.expand(4))


def test_conv_vae_shapes_and_eval_is_deterministic() -> None:
    vae = ConvVAE(z_dim=8, nf=8)
    x = _img(3, 32)
    recon, mu, logvar = vae(x)
    assert recon.shape == (3, 3, 32, 32)
    assert mu.shape == logvar.shape == (3, 8)
    assert _in_range(recon)
    assert vae.decode(torch.randn(5, 8)).shape == (5, 3, 32, 32)
    vae.eval()
    torch.testing.assert_close(vae(x)[0], vae(x)[0])


# --- registry and export ---------------------------------------------------------------------


def test_registry_covers_the_architectures() -> None:
    assert set(ARCHITECTURES) == set(TINY_ARCHS)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_serving_net("nope")


def _serving_net(name: str) -> nn.Module:
    kwargs, _ = TINY_ARCHS[name]
    net = init_weights(build_serving_net(name, **kwargs))
    for m in net.modules():  # non-trivial running statistics, so eval mode matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = torch.empty(m.num_features).uniform_(-0.1, 0.1)
            m.running_var = torch.empty(m.num_features).uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize("name", sorted(TINY_ARCHS))
def test_serving_net_traces_and_exports_to_onnx(name: str, tmp_path: Path) -> None:
    net = _serving_net(name)
    shape = TINY_ARCHS[name][1]
    with torch.no_grad():
        traced = torch.jit.trace(net, torch.randn(2, *shape), check_trace=False)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        net,
        (torch.randn(2, *shape),),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        opset_version=17,
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for batch in (1, 8):
        x = torch.rand(batch, *shape) * 2 - 1
        with torch.no_grad():
            eager = net(x)
            by_trace = traced(x)
        (by_onnx,) = session.run(["output"], {"input": x.numpy()})
        assert eager.shape[0] == batch
        assert eager.shape[1:] == ((3, 32, 32) if len(shape) == 1 else (3, *shape[1:]))
        assert _in_range(eager)
        assert (by_trace - eager).abs().max() <= 1e-4
        assert np.abs(by_onnx - eager.numpy()).max() <= 1e-4
