"""Decode once, train many times: a paired split held in memory as uint8 tensors.

Decoding and resizing JPEGs costs more CPU per item than a small generator's step, so a
paired dataset is decoded once at the load size (no augmentation) into

    A, B: (N, 3, L, L) uint8      attrs: (N, K) int64 (when the items carry "attrs")

saved as one safetensors file under ``<S2I_CACHE_ROOT>/<key>.safetensors``; the key hashes
everything that changes the pixels (dataset folder, split, direction, size, fit, and the
folder's file list with sizes and mtimes), so a changed dataset is cached anew. Training
items are then a random crop to ``image_size`` and a random flip (shared by A and B, drawn
from torch's global generator like ``PairedTransform``) of the cached tensors.

    train = cached_pairs(lambda size: open_dataset(root, "train", image_size=size,
                         augment=False), key_parts, image_size=128, load_size=143, augment=True)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from services.trainer.data.common import ItemDataset

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the file's content changes meaning


def folder_fingerprint(root: Path) -> str:
    """A hash of every file's relative path, size and mtime under ``root`` (not its bytes)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            st = path.stat()
            digest.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cache_key(parts: Sequence[Any]) -> str:
    text = json.dumps([CACHE_FORMAT, *map(str, parts)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def to_uint8(x: Tensor) -> Tensor:
    """(…) float in [-1, 1] -> uint8 in [0, 255] (exact for images that came from uint8)."""
    return ((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def build_cache(source: ItemDataset, file: Path) -> dict[str, Tensor]:
    """Decode every item of ``source`` and save A, B (and attrs) as uint8 to ``file``."""
    start = time.monotonic()
    A, B, attrs = [], [], []
    for i in range(len(source)):
        item = source[i]
        A.append(to_uint8(item["A"]))
        B.append(to_uint8(item["B"]))
        if "attrs" in item:
            attrs.append(item["attrs"])
    tensors = {"A": torch.stack(A), "B": torch.stack(B)}  # (N, 3, L, L) uint8 each
    if attrs:
        tensors["attrs"] = torch.stack(attrs).long()  # (N, K)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(file)
    log.info(
        "cached %d pairs at %dpx in %.0f s: %s",
        len(A), tensors["A"].shape[-1], time.monotonic() - start, file,
    )  # fmt: skip
    return tensors


class CachedPairs(ItemDataset):
    """Items {"A", "B": (3, S, S) float in [-1, 1]} (+ "attrs") from cached uint8 tensors.

    augment: a random S-crop of the L-sized cache and a random horizontal flip; otherwise the
    cache must already be S-sized and items are returned as they are.
    """

    def __init__(self, tensors: dict[str, Tensor], image_size: int, augment: bool) -> None:
        self.A, self.B = tensors["A"], tensors["B"]  # (N, 3, L, L) uint8
        self.attrs = tensors.get("attrs")
        self.image_size, self.augment = image_size, augment
        self.unmatched: list[str] = []
        side = self.A.shape[-1]
        if side < image_size or (not augment and side != image_size):
            raise ValueError(f"cache holds {side}px images; {image_size}px items asked for")

    def __len__(self) -> int:
        return int(self.A.shape[0])

    def attribute_labels(self) -> Tensor | None:
        return self.attrs

    def __getitem__(self, i: int) -> dict[str, Any]:
        A, B = self.A[i], self.B[i]  # (3, L, L) uint8
        if self.augment:
            s, L = self.image_size, A.shape[-1]
            x = int(torch.randint(0, L - s + 1, ()).item())
            y = int(torch.randint(0, L - s + 1, ()).item())
            A, B = A[:, y : y + s, x : x + s], B[:, y : y + s, x : x + s]
            if bool(torch.rand(()) < 0.5):
                A, B = A.flip(-1), B.flip(-1)
        item: dict[str, Any] = {
            "A": A.float().div_(127.5).sub_(1.0),  # (3, S, S) in [-1, 1]
            "B": B.float().div_(127.5).sub_(1.0),
        }
        if self.attrs is not None:
            item["attrs"] = self.attrs[i]
        return item


def cached_pairs(
    open_source: Callable[[int], ItemDataset],
    key_parts: Sequence[Any],
    *,
    cache_root: Path,
    image_size: int,
    load_size: int,
    augment: bool,
) -> CachedPairs:
    """The cached form of ``open_source(side)`` (side: load_size when augmenting, else
    image_size), built on first use. ``key_parts`` name the source (see the module doc)."""
    side = load_size if augment else image_size
    file = cache_root / f"{cache_key([*key_parts, side])}.safetensors"
    if file.is_file():
        tensors = load_file(str(file))
        log.info("loaded %d cached pairs at %dpx: %s", tensors["A"].shape[0], side, file)
    else:
        tensors = build_cache(open_source(side), file)
    return CachedPairs(tensors, image_size, augment)
