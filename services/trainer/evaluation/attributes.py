"""FS2K attribute accuracy: does a generated face keep the attributes of the real one?

A small CNN (``attribute_net.AttributeClassifier``) is trained on REAL FS2K photos (train
split) to predict hair, hair_color, gender, earring, smile and frontal_face ("style" describes
the sketch, not the face). At evaluation it runs on the generated photos and on the real
photos of the same held-out items (``attribute_report``: attr_acc_real, attr_acc_fake,
attr_acc_ratio = fake / real).

This module is the public face (everything re-exported) and the command that (re)trains the
committed classifier, ``fs2k_attributes.safetensors`` beside this file (the default ``--out``):

    python -m services.trainer.evaluation.attributes --data ../shared/data/fs2k

It logs the validation accuracy per attribute next to the majority-class baseline and the
balanced accuracy (mean per-class recall), and stores them in the file's metadata
(``val_report``): the headline attr_acc_* numbers average only over the attributes whose
balanced accuracy is clearly above chance (``AttributeClassifier.summary_names``); an
attribute the classifier cannot see would add the same constant to fake and real. The metadata
also holds what the fit cost (``compute``: CPU and wall hours, after the photos are loaded).

With ``--reads sketch`` it trains on the real sketches instead (each FS2K pair's labels are its
sketch's too): the judge of photo2sketch's outputs, committed as
``fs2k_sketch_attributes.safetensors`` beside this file (its default ``--out``).

The same command trains a pix2pix attribute critic netC to start a GAN run from
(``--init-from`` takes the file; ``recipes/attribute_critic.py``). Give it another seed than
the evaluation's classifier, which must never be a training signal:

    python -m services.trainer.evaluation.attributes --data ../shared/data/fs2k --seed 2 \\
        --out var/weights/fs2k-netC-s2.safetensors
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from services.trainer.engine.compute import Compute
from services.trainer.evaluation.attribute_net import (
    DEFAULT_WEIGHTS,
    JUDGE_WEIGHTS,
    AttributeClassifier,
    AttributeSpec,
    load_default_classifier,
)
from services.trainer.evaluation.attribute_report import (
    AttributeAccumulator,
    attribute_accuracy,
    attribute_report,
)
from services.trainer.evaluation.attribute_train import (
    fit_attribute_classifier,
    load_photos,
    majority_baseline,
    train_attribute_classifier,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "JUDGE_WEIGHTS",
    "AttributeAccumulator",
    "AttributeClassifier",
    "AttributeSpec",
    "attribute_accuracy",
    "attribute_report",
    "fit_attribute_classifier",
    "load_default_classifier",
    "load_photos",
    "majority_baseline",
    "train_attribute_classifier",
]

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    from services.trainer.data.fs2k import FS2KDataset

    p = argparse.ArgumentParser(description="Train an FS2K attribute classifier on real images.")
    p.add_argument("--data", type=Path, required=True, help="FS2K folder (anno_train.json, ...)")
    p.add_argument(
        "--out",
        type=Path,
        help="default: the evaluation's own classifier of what --reads names, beside this "
        "module (seed 0); give a netC for --init-from another seed and file",
    )
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="image loading processes")
    p.add_argument(
        "--reads",
        choices=["photo", "sketch"],
        default="photo",
        help="train on the real photos (the evaluation's judge of sketch2photo, netC) or on "
        "the real sketches (its judge of photo2sketch)",
    )
    args = p.parse_args(argv)
    out: Path = args.out or JUDGE_WEIGHTS[args.reads]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    t0 = time.perf_counter()
    spec, size = AttributeSpec.fs2k(), args.image_size
    direction = "sketch2photo" if args.reads == "photo" else "photo2sketch"  # B: what it reads
    train = FS2KDataset(args.data, "train", direction, image_size=size + size // 8, augment=False)
    val = FS2KDataset(args.data, "val", direction, image_size=size, augment=False)
    train_x, train_y = load_photos(train, spec, size + size // 8, args.workers)
    val_x, val_y = load_photos(val, spec, size, args.workers)
    log.info("loaded %d train and %d val images in %.0f s", len(train_x), len(val_x),
             time.perf_counter() - t0)  # fmt: skip
    fit_cost = Compute()  # the fit's CPU and wall seconds, measured as a GAN run's are
    fit_cost.start()
    net = fit_attribute_classifier(
        train_x, train_y, spec=spec, epochs=args.epochs, device=args.device, image_size=size,
        width=args.width, seed=args.seed, val=(val_x, val_y),
    ).cpu()  # fmt: skip
    net.reads = args.reads
    fit_cost.add(steps=0, images=0)  # its steps and images are not a generator's
    net.compute = {
        "cpu_hours": round(fit_cost.cpu_s / 3600, 6),
        "wall_hours": round(fit_cost.wall_s / 3600, 6),
    }
    acc = attribute_accuracy(net, val_x, val_y, label_rows=False)
    bal = attribute_accuracy(net, val_x, val_y, label_rows=False, balanced=True)
    base = majority_baseline(train_y, val_y, spec)
    net.val_report = {
        name: {"acc": acc[name], "balanced": bal[name], "majority": float(base[k])}
        for k, name in enumerate(spec.names)
    }
    log.info("%-13s %8s %8s %9s", "attribute", "val acc", "majority", "balanced")
    for k, name in enumerate(spec.names):
        log.info("%-13s %8.3f %8.3f %9.3f", name, acc[name], float(base[k]), bal[name])
    log.info("attr_acc_* average over: %s", ", ".join(net.summary_names))
    net.save(out)
    log.info("saved %s (%.0f s in all)", out, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
