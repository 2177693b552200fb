"""The attribute classifier network: a small multi-head CNN, saved as safetensors.

Input (N, 3, H, W) in [-1, 1] at any size (resized to the net's ``image_size``); output one
logit vector per attribute. ``AttributeSpec`` says which attributes, how many classes each,
and where each one's label sits in a label row (FS2K items carry "attrs" (7,) in
``ATTRIBUTE_NAMES`` order; the classifier predicts all but "style", which describes the
sketch, not the face).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from services.trainer.data.fs2k import ATTRIBUTE_NAMES, ATTRIBUTES

log = logging.getLogger(__name__)

FORMAT = "sketch2image-attribute-classifier/1"
Reads = Literal["photo", "sketch"]
DEFAULT_WEIGHTS = Path(__file__).with_name("fs2k_attributes.safetensors")  # reads photos
# the committed judge of each kind of output: of photos (sketch2photo; a netC is the same
# network trained with another seed) and of sketches (photo2sketch; trained on FS2K's sketches)
JUDGE_WEIGHTS: dict[Reads, Path] = {
    "photo": DEFAULT_WEIGHTS,
    "sketch": Path(__file__).with_name("fs2k_sketch_attributes.safetensors"),
}
INFORMATIVE_MARGIN = 0.1  # balanced accuracy above chance for an attribute to count


def made_by(direction: str) -> Reads:
    """What a generator of ``direction`` makes, so what a classifier must read to judge it."""
    return "photo" if direction == "sketch2photo" else "sketch"


@dataclass(frozen=True)
class AttributeSpec:
    names: tuple[str, ...]  # attributes the classifier predicts
    num_classes: tuple[int, ...]  # classes of each
    columns: tuple[int, ...]  # column of each in a label row (N, K)

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.num_classes) == len(self.columns)) or not self.names:
            raise ValueError(f"inconsistent AttributeSpec {self}")

    @classmethod
    def fs2k(cls) -> AttributeSpec:
        """FS2K face attributes (no "style"), labels as in FS2KDataset items' "attrs"."""
        names = tuple(n for n in ATTRIBUTE_NAMES if n != "style")
        return cls(
            names=names,
            num_classes=tuple(ATTRIBUTES[n][0] for n in names),
            columns=tuple(ATTRIBUTE_NAMES.index(n) for n in names),
        )

    def labels(self, rows: Tensor) -> Tensor:
        """(N, K) label rows -> (N, len(names)) long, in this spec's order."""
        if rows.ndim != 2 or rows.shape[1] <= max(self.columns):
            raise ValueError(
                f"label rows must be (N, >{max(self.columns)}) for {self.names}, "
                f"got {tuple(rows.shape)}"
            )
        return rows[:, list(self.columns)].long()


def _block(cin: int, cout: int) -> nn.Sequential:
    """conv 3x3 + BN + ReLU, then 2x2 max pool: (N, cin, H, W) -> (N, cout, H/2, W/2)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class AttributeClassifier(nn.Module):
    """A stride-2 stem and three conv + pool stages (widths w, 2w, 4w, 8w; S -> S/16), global
    average pool, dropout, one linear head per attribute.

    image_size 64, width 32: ~0.39 M parameters (< 1 MB in fp16), ~58 M MACs per image.
    """

    def __init__(
        self, spec: AttributeSpec | None = None, *, image_size: int = 64, width: int = 32
    ) -> None:
        super().__init__()
        self.spec = spec or AttributeSpec.fs2k()
        self.image_size, self.width = image_size, width
        # what it was trained on, and so can judge: FS2K's "photo"s or its "sketch"es
        self.reads: Reads = "photo"
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False),  # (N, w, S/2, S/2)
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            _block(w, 2 * w),  # (N, 2w, S/4, S/4)
            _block(2 * w, 4 * w),  # (N, 4w, S/8, S/8)
            _block(4 * w, 8 * w),  # (N, 8w, S/16, S/16)
        )
        self.dropout = nn.Dropout(0.3)
        self.heads = nn.ModuleList(nn.Linear(8 * w, c) for c in self.spec.num_classes)
        # name -> {"acc", "balanced", "majority"} on a validation split (set by the trainer CLI)
        self.val_report: dict[str, dict[str, float]] = {}
        # what training it cost, {"cpu_hours", "wall_hours"} (set by the trainer CLI), which a
        # GAN run that starts its netC from this file adds to its own (engine.weights)
        self.compute: dict[str, float] = {}

    @property
    def summary_names(self) -> tuple[str, ...]:
        """Attributes the headline attr_acc_* average over: those the classifier demonstrably
        predicts (validation balanced accuracy >= chance + INFORMATIVE_MARGIN); all of them
        when no validation report is stored. The others would only add a constant."""
        if not self.val_report:
            return self.spec.names
        return (
            tuple(
                name
                for name, c in zip(self.spec.names, self.spec.num_classes, strict=True)
                if self.val_report.get(name, {}).get("balanced", 0.0) >= 1 / c + INFORMATIVE_MARGIN
            )
            or self.spec.names
        )

    def prepare(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 3, S, S) at the net's image_size (antialiased)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) images, got {tuple(images.shape)}")
        x = images.float()
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return x

    def forward(self, images: Tensor) -> list[Tensor]:
        # images: (N, 3, H, W) in [-1, 1] -> one (N, C_k) logit tensor per attribute
        h = self.features(self.prepare(images))  # (N, 8w, S/16, S/16)
        h = self.dropout(h.mean(dim=(2, 3)))  # (N, 8w)
        return [head(h) for head in self.heads]

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 64) -> Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, len(spec.names)) long predicted classes (eval mode)."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = []
        for chunk in images.split(batch_size):
            logits = self(chunk.to(device))
            out.append(torch.stack([lg.argmax(1) for lg in logits], 1).cpu())  # (n, K)
        self.train(was_training)
        return torch.cat(out)

    def save(self, path: Path | str) -> None:
        """fp16 safetensors with the spec and sizes in the metadata."""
        tensors = {
            k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in self.state_dict().items()
        }
        meta = {
            "format": FORMAT,
            "spec": json.dumps(asdict(self.spec)),
            "image_size": str(self.image_size),
            "width": str(self.width),
            "val_report": json.dumps(self.val_report),
            "compute": json.dumps(self.compute),
            "reads": self.reads,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: Path | str, device: torch.device | str = "cpu") -> AttributeClassifier:
        """A classifier saved by ``save``, in eval mode on `device`."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not an attribute classifier ({FORMAT})")
        raw = json.loads(meta["spec"])
        spec = AttributeSpec(**{k: tuple(v) for k, v in raw.items()})
        net = cls(spec, image_size=int(meta["image_size"]), width=int(meta["width"]))
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(path).items()}
        net.load_state_dict(state)
        net.val_report = json.loads(meta.get("val_report", "{}"))
        net.compute = json.loads(meta.get("compute", "{}"))
        reads = meta.get("reads", "photo")  # files from before "reads" was stored: photos
        if reads not in ("photo", "sketch"):
            raise ValueError(f"{path} reads {reads!r}; expected 'photo' or 'sketch'")
        net.reads = "photo" if reads == "photo" else "sketch"
        return net.to(device).eval()


def load_default_classifier(
    device: torch.device | str = "cpu", reads: Reads = "photo"
) -> AttributeClassifier | None:
    """The FS2K classifier of ``reads`` committed beside this module, or None when it is not
    there."""
    path = JUDGE_WEIGHTS[reads]
    if not path.is_file():
        log.info("no FS2K attribute classifier at %s; attribute metrics skipped", path)
        return None
    net = AttributeClassifier.load(path, device)
    if net.reads != reads:
        raise ValueError(f"{path} reads {net.reads}, expected {reads}")
    return net
