"""The run's data: training and held-out sets, and a resumable, seeded epoch loader.

- The training set is ``services.trainer.data.open_dataset(config.data, "train", ...)``; the
  layout follows the recipe's ``data_kind`` (an unpaired recipe breaks the pairs of a paired
  layout). The held-out set is the dataset's val split (or test), else a fixed seeded slice
  of the training files (``HOLDOUT_FRACTION``, at least one item), left out of training.
- Epoch ``e``'s order is ``DistributedSampler(seed=config.seed)`` at ``set_epoch(e)``, a pure
  function of (seed, epoch, rank); item ``i``'s crops and flips use a generator seeded by
  ``item_seed(seed, e, i)``. Resuming mid-epoch rebuilds that order and skips the batches
  already trained on, without loading them, so the rest of the epoch is the same data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from services.trainer.config import TrainConfig
from services.trainer.data import DatasetLayoutError, ItemDataset, open_dataset
from services.trainer.data.cache import cached_pairs, folder_fingerprint
from services.trainer.engine.distributed import DistContext
from services.trainer.engine.seeding import item_seed, seed_worker
from services.trainer.recipes.base import DataKind
from shared.settings import get_settings

log = logging.getLogger(__name__)

HOLDOUT_FRACTION = 0.1


class SeededItems(Dataset[dict[str, Any]]):
    """Item ``i`` of ``epoch`` drawn with torch's CPU generator seeded by (seed, epoch, i).

    The caller's generator state is restored afterwards, so loading data never moves the
    training RNG stream (with ``num_workers=0`` items load in the training process).
    """

    def __init__(self, dataset: Dataset[dict[str, Any]], seed: int, base: Any = None) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.base = base if base is not None else dataset  # what has set_epoch (unpaired)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __getitem__(self, i: int) -> dict[str, Any]:
        gen = torch.random.default_generator
        saved = gen.get_state()
        gen.manual_seed(item_seed(self.seed, self.epoch, i))
        try:
            return self.dataset[i]
        finally:
            gen.set_state(saved)


def _layout(config: TrainConfig, kind: DataKind) -> str:
    if kind == "unpaired" and config.layout == "auto":
        return "unpaired"  # also breaks the pairs of a paired layout
    return config.layout


def data_direction(config: TrainConfig) -> str:
    """The direction the loaders take: the task, or for side-by-side data with ``input_half``
    set, "AtoB" (input on the left) or "BtoA"."""
    if config.input_half is None:
        return config.direction
    return "AtoB" if config.input_half == "left" else "BtoA"


@dataclass
class RunData:
    train: SeededItems
    heldout: Dataset[dict[str, Any]]
    batch_size: int
    num_workers: int
    seed: int
    rank: int = 0
    world_size: int = 1
    pin_memory: bool = False

    def sampler(self, epoch: int) -> DistributedSampler[Any]:
        sampler: DistributedSampler[Any] = DistributedSampler(
            self.train,
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=True,
            seed=self.seed,
        )
        sampler.set_epoch(epoch)
        return sampler

    @property
    def drop_last(self) -> bool:
        return len(self.sampler(0)) >= self.batch_size

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.sampler(0))
        return n // self.batch_size if self.drop_last else 1

    def loader(self, epoch: int, skip_batches: int = 0) -> DataLoader[dict[str, Any]]:
        """Epoch ``epoch``'s batches, starting after the first ``skip_batches``."""
        self.train.set_epoch(epoch)
        indices = list(self.sampler(epoch))[skip_batches * self.batch_size :]
        return DataLoader(
            self.train,
            batch_size=self.batch_size,
            sampler=indices,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(item_seed(self.seed, epoch, self.rank)),
            pin_memory=self.pin_memory,
        )


def open_run_data(
    config: TrainConfig, kind: DataKind, image_size: int, batch_size: int, ctx: DistContext
) -> RunData:
    """Open the training and held-out sets (DatasetLayoutError for a wrong layout)."""
    common: dict[str, Any] = {"direction": data_direction(config), "image_size": image_size}
    if config.load_size is not None:
        common["load_size"] = config.load_size
    if config.fit != "resize":
        common["fit"] = config.fit
    layout = _layout(config, kind)
    cache = config.cache and kind == "paired" and not str(config.data).startswith("synthetic:")
    fingerprint = folder_fingerprint(Path(str(config.data))) if cache else ""

    def open_split(split: str, split_layout: str, **kw: Any) -> Dataset[dict[str, Any]]:
        if not cache:
            return open_dataset(config.data, split, layout=split_layout, **common, **kw)
        return _cached(config, split, split_layout, image_size, common, fingerprint, **kw)

    train = open_split("train", layout)
    base: Any = train
    try:  # held-out pairs where the layout has them, also for an unpaired recipe
        heldout: Dataset[dict[str, Any]] = open_split("val", config.layout)
    except DatasetLayoutError as exc:
        n = len(train)  # type: ignore[arg-type]
        if n < 2:
            raise DatasetLayoutError(
                f"{config.data}: no val/ or test/ split, and {n} training item(s) are too few "
                "to hold some out for evaluation"
            ) from exc
        k = max(1, int(n * HOLDOUT_FRACTION))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed)).tolist()
        plain = open_split("train", layout, augment=False)
        heldout = Subset(plain, sorted(order[:k]))
        train_idx = sorted(order[k:])
        log.info("%s has no val split: holding out %d of %d training items", config.data, k, n)
        train = Subset(train, train_idx)
    seeded = SeededItems(train, config.seed, base=base)
    return RunData(
        seeded,
        heldout,
        batch_size,
        0 if cache else config.num_workers,  # cached items are a crop of a tensor
        config.seed,
        ctx.rank,
        ctx.world_size,
        pin_memory=ctx.device.type == "cuda",
    )


def _cached(
    config: TrainConfig,
    split: str,
    layout: str,
    image_size: int,
    common: dict[str, Any],
    fingerprint: str,
    augment: bool | None = None,
) -> Dataset[dict[str, Any]]:
    """``split`` decoded once into memory (``data.cache``); augmenting for "train".
    ``fingerprint``: the dataset folder's ``folder_fingerprint``, part of the cache key."""
    augment = split == "train" if augment is None else augment
    load_size = config.load_size or round(image_size * 286 / 256)
    root = Path(str(config.data)).resolve()
    parts = [root, split, layout, data_direction(config), config.fit, fingerprint]

    def open_source(side: int) -> ItemDataset:
        kw = {**common, "image_size": side, "augment": False}
        kw.pop("load_size", None)
        return open_dataset(config.data, split, layout=layout, **kw)

    return cached_pairs(
        open_source, parts, cache_root=get_settings().cache_root, image_size=image_size,
        load_size=load_size, augment=augment,
    )  # fmt: skip


def to_device(
    batch: dict[str, Any], device: torch.device, channels_last: bool = False
) -> dict[str, Tensor]:
    """The batch's tensors on ``device`` (images channels_last if asked); strings dropped."""
    out: dict[str, Tensor] = {}
    for key, value in batch.items():
        if not isinstance(value, Tensor):
            continue
        value = value.to(device, non_blocking=True)
        if channels_last and value.dim() == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out
