"""``python -m services.trainer prepare KIND SRC DST``: a downloaded public dataset into the
layout the trainer reads (the work is in ``services.trainer.data.prepare``; this module only
registers the command, so ``--help`` stays fast and torch-free)."""

from __future__ import annotations

import argparse
import logging
import sys
import tarfile
from pathlib import Path

from services.trainer.commands.base import add_command
from services.trainer.errors import DatasetLayoutError

log = logging.getLogger(__name__)

KINDS = ("fs2k", "pix2pix", "cifar10")


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=KINDS, metavar="KIND", help=f"one of: {', '.join(KINDS)}")
    p.add_argument("src", type=Path, metavar="SRC", help="the downloaded dataset (extracted)")
    p.add_argument("dst", type=Path, metavar="DST", help="output folder (new or empty)")
    p.add_argument("--limit", type=int, help="pix2pix: first N per split; cifar10: per class")
    p.add_argument("--classes", help="cifar10: comma-separated class names (default cat,dog)")
    p.add_argument("--link", action="store_true", help="hard-link instead of copying")


@add_command(
    "prepare",
    "convert a downloaded public dataset (fs2k, pix2pix, cifar10) into the trainer's layout",
    _configure,
)
def _prepare(args: argparse.Namespace) -> int:
    from services.trainer.data.prepare import (
        EXPECTED,
        prepare_cifar10,
        prepare_fs2k,
        prepare_pix2pix,
    )

    src, dst, kind = Path(args.src), Path(args.dst), str(args.kind)
    if {"fs2k": args.limit, "cifar10": args.link}.get(kind) or (args.classes and kind != "cifar10"):
        log.warning("options that do not apply to %s are ignored (see --help)", kind)
    try:
        if args.limit is not None and args.limit < 1:
            raise DatasetLayoutError(f"--limit must be at least 1, got {args.limit}")
        if not src.exists():
            raise DatasetLayoutError(f"SRC {src} does not exist: expected {EXPECTED[kind]}")
        if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
            raise DatasetLayoutError(f"DST {dst} is not an empty folder: expected a new one")
        if kind == "fs2k":
            summary = prepare_fs2k(src, dst, args.link)
        elif kind == "pix2pix":
            summary = prepare_pix2pix(src, dst, args.limit, args.link)
        else:
            classes = [c.strip() for c in (args.classes or "cat,dog").split(",") if c.strip()]
            summary = prepare_cifar10(src, dst, list(dict.fromkeys(classes)), args.limit)
    except (DatasetLayoutError, OSError, tarfile.TarError) as exc:
        sys.stderr.write("error: " + " ".join(str(exc).split()) + "\n")
        return 2
    sys.stdout.write(summary + "\n")
    return 0
