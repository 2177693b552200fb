"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random, differentiable augmentation is applied to every image the discriminator
sees, real and generated, in the D step and in the G step (gradients flow through it to G).
On ~1k-image sets this keeps D from memorising the training set. Ported from the authors'
``DiffAugment_pytorch.py`` (colour, translation 1/8, cutout 1/2), with one change for
conditional GANs: the input is the channel-concatenated (condition, image) pair, so the
spatial transforms move both together and colour changes only the image's channels.

    x = diff_augment(torch.cat([real_A, fake_B], 1), "color,translation,cutout", color_from=3)

``augment_alike`` gives several pairs the same draws (feature matching compares like with like).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

POLICIES = ("color", "translation", "cutout")


def _brightness(x: Tensor) -> Tensor:
    return x + (torch.rand(x.size(0), 1, 1, 1, device=x.device) - 0.5)


def _saturation(x: Tensor) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device) * 2) + mean


def _contrast(x: Tensor) -> Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device) + 0.5) + mean


def _translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    n, _, h, w = x.shape
    sx, sy = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sx, sx + 1, size=[n, 1, 1], device=x.device)
    ty = torch.randint(-sy, sy + 1, size=[n, 1, 1], device=x.device)
    gb, gx, gy = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])  # zero border = mid-grey in [-1, 1]
    return padded.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)


def _cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), size=[n, 1, 1], device=x.device)
    oy = torch.randint(0, w + (1 - cw % 2), size=[n, 1, 1], device=x.device)
    gb, gx, gy = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(ch, device=x.device),
        torch.arange(cw, device=x.device),
        indexing="ij",
    )
    gx = torch.clamp(gx + ox - ch // 2, min=0, max=h - 1)
    gy = torch.clamp(gy + oy - cw // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


SPATIAL: dict[str, Callable[[Tensor], Tensor]] = {"translation": _translation, "cutout": _cutout}
COLOR = (_brightness, _saturation, _contrast)


def parse_policy(policy: str) -> tuple[str, ...]:
    """ "color,translation" -> ("color", "translation"); "" -> () (no augmentation)."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; choose from {POLICIES}")
    return names


def diff_augment(x: Tensor, policy: str, *, color_from: int = 0) -> Tensor:
    """x: (N, C, H, W) -> (N, C, H, W), augmented per example; colour on channels
    ``color_from:`` (the image of a (condition, image) pair), the rest moves as a whole."""
    for name in parse_policy(policy):
        if name == "color":
            head, image = x[:, :color_from], x[:, color_from:]
            for fn in COLOR:
                image = fn(image)
            x = torch.cat([head, image], 1) if color_from else image
        else:
            x = SPATIAL[name](x)
    return x.contiguous()


def augment_alike(policy: str, color_from: int, *pairs: Tensor) -> list[Tensor]:
    """Each of ``pairs`` DiffAugmented with the same random draws (so feature matching compares
    like with like); unchanged when the policy is empty."""
    if not policy:
        return list(pairs)
    device = pairs[0].device
    state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    out = []
    for pair in pairs:
        torch.set_rng_state(state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, device)
        out.append(diff_augment(pair, policy, color_from=color_from))
    return out
