"""The sample grid written at every evaluation: one row per named image set, one column per
held-out item (e.g. real_A / fake_B / real_B), saved as ``samples/step_NNNNNN.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

PAD = 2  # white pixels between tiles


def grid_image(rows: dict[str, Tensor]) -> Image.Image:
    """Rows of (K, 3, H, W) images in [-1, 1] -> one RGB image; short rows are padded white.

    Rows of another size than the first are resized to it (nearest), so a recipe may show a
    64 px input beside a 128 px output.
    """
    if not rows:
        raise ValueError("no rows to draw")
    first = next(iter(rows.values()))
    h, w = first.shape[-2:]
    cols = max(len(r) for r in rows.values())
    canvas = torch.ones(3, len(rows) * (h + PAD) + PAD, cols * (w + PAD) + PAD)
    for i, row in enumerate(rows.values()):
        row = row.detach().float().cpu()
        if row.shape[1] == 1:
            row = row.expand(-1, 3, -1, -1)
        if tuple(row.shape[-2:]) != (h, w):
            row = torch.nn.functional.interpolate(row, size=(h, w), mode="nearest")
        for j, image in enumerate(row):  # image: (3, h, w)
            y, x = PAD + i * (h + PAD), PAD + j * (w + PAD)
            canvas[:, y : y + h, x : x + w] = (image.clamp(-1, 1) + 1) / 2
    pixels = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # (H, W, 3)
    return Image.fromarray(pixels, "RGB")


def save_grid(rows: dict[str, Tensor], folder: Path, step: int) -> Path:
    """Write ``folder/step_NNNNNN.png`` (rows ordered as given) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:06d}.png"
    tmp = path.with_name(f".{path.name}.tmp")
    grid_image(rows).save(tmp, format="PNG")
    tmp.replace(path)
    return path
