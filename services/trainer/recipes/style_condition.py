"""FS2K's drawing style (1-3) as a condition: one-hot planes after an image's channels.

pix2pix's ``condition="style"`` feeds them to G and D; the exported graph then takes
3 + NUM_STYLES input channels and its manifest names the condition.
"""

from __future__ import annotations

import torch
from torch import Tensor

from services.trainer.data.fs2k import ATTRIBUTE_NAMES, ATTRIBUTES

STYLE = ATTRIBUTE_NAMES.index("style")  # the style's column in an FS2K label row
NUM_STYLES = ATTRIBUTES["style"][0]


def style_planes(style: Tensor, num_styles: int, like: Tensor) -> Tensor:
    """(N,) class indices -> (N, K, H, W) one-hot planes shaped and typed like ``like``."""
    onehot = torch.nn.functional.one_hot(style, num_styles).to(like.dtype)  # (N, K)
    return onehot[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])
