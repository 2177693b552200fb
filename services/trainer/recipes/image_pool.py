"""A history of generated images for the discriminators (Shrivastava et al. 2017).

As ``ImagePool`` in pytorch-CycleGAN-and-pix2pix: until the pool holds ``pool_size`` images
every generated image is stored and returned as is; after that, each image is, with
probability 1/2, swapped with a random stored one (the stored one is returned, the new one
takes its place), otherwise returned as is. ``pool_size=0`` disables the pool.

The coin flips come from the pool's own seeded ``torch.Generator`` (not Python's ``random``),
and ``state_dict()`` holds the stored images and that generator's state, so a resumed run
draws exactly what the uninterrupted one would have.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class ImagePool:
    def __init__(self, pool_size: int = 50, seed: int = 0) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        self.pool_size = pool_size
        self.images: list[Tensor] = []  # each (C, H, W), detached
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: Tensor) -> Tensor:
        """(N, C, H, W) generated images -> (N, C, H, W) for the discriminator, detached."""
        images = images.detach()
        if self.pool_size == 0:
            return images
        out: list[Tensor] = []
        for image in images:  # (C, H, W)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) > 0.5:
                idx = int(torch.randint(self.pool_size, (), generator=self.generator))
                out.append(self.images[idx].to(image))
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)  # (N, C, H, W)

    def state_dict(self) -> dict[str, Any]:
        """Tensors only (CPU, float32), so it loads with ``torch.load(weights_only=True)``."""
        stored = (
            torch.stack([im.float().cpu() for im in self.images]) if self.images else torch.empty(0)
        )
        return {"images": stored, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stored: Tensor = state["images"]
        if len(stored) > self.pool_size:
            raise ValueError(f"{len(stored)} stored images for a pool of {self.pool_size}")
        self.images = [im.clone() for im in stored]  # moved to the batch's device when drawn
        self.generator.set_state(state["rng"])
