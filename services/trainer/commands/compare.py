"""Commands about trained models: ``compare`` (published models side by side on held-out
pairs), ``bundle`` (ship one in the package) and ``pack`` (a checkpoint as a weights file).

    python -m services.trainer compare --data ../shared/data/fs2k --direction sketch2photo \\
        --model identity --model paper-s2p --model sketch2photo --json var/eval/s2p.json

Prints a Markdown table (the one in MODELS.md) and, with ``--json``, writes every metric.
See ``services.trainer.evaluation.compare`` for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.trainer.commands.base import add_command, registry_of
from shared.settings import get_settings


def _configure_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="an FS2K folder (its val split) or side-by-side AB images (val/, else test/)",
    )
    p.add_argument("--direction", choices=["sketch2photo", "photo2sketch"], required=True)
    p.add_argument(
        "--input-half",
        choices=["left", "right"],
        help="AB images: the half the model takes (default: left for sketch2photo; facades' "
        "label maps are on the right)",
    )
    p.add_argument(
        "--model",
        dest="models",
        action="append",
        required=True,
        help="NAME[@VERSION][:int8] in the model volume (:int8: its quantized copy), or "
        "'identity' (the input unchanged); repeat",
    )
    p.add_argument("--samples", type=int, help="the first N held-out pairs (default: all)")
    p.add_argument("--json", type=Path, help="also write every metric to this file")
    p.add_argument("--grid", type=Path, help="also write a sample grid (JPEG) of 8 pairs")
    p.add_argument(
        "--variants",
        type=int,
        help="models with noise: outputs per pair from seeds, for variation_l1 and "
        "variation_fid (default: 4; under 2: not measured)",
    )
    p.add_argument(
        "--output-noise",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="add Gaussian noise (std SIGMA, images in [-1, 1]) to every output before "
        "scoring: how much a metric rewards grain alone (a check, not a score)",
    )
    p.add_argument(
        "--attribute-classifier",
        type=Path,
        metavar="FILE",
        help="FS2K attribute classifier to score with (saved by python -m "
        "services.trainer.evaluation.attributes --out FILE; --reads sketch for photo2sketch): "
        "a second judge of the attribute ratio (default: the committed one of photos or of "
        "sketches, what the direction makes)",
    )


@add_command(
    "compare",
    "score published models side by side on held-out pairs (FID, SSIM, PSNR, FSIM, …)",
    _configure_compare,
)
def _compare(args: argparse.Namespace) -> int:
    from services.trainer.evaluation.compare import compare, markdown_table, write_json

    registry = registry_of(args)
    try:
        results = compare(
            args.data, args.direction, args.models, samples=args.samples, registry=registry,
            grid=args.grid, variants=args.variants, input_half=args.input_half,
            output_noise=args.output_noise, attribute_classifier=args.attribute_classifier,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:  # a missing model or file, a wrong judge
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if args.json is not None:
        write_json(args.json, results)
    sys.stdout.write(markdown_table(results) + "\n")
    return 0


def _configure_bundle(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a published model name")
    p.add_argument("--version", type=int, help="default: the served version")
    p.add_argument("--checkpoint", type=Path, help="also keep this run's discriminator(s)")
    p.add_argument("--out-root", type=Path, help="default: the package's shared/bundled")
    p.add_argument(
        "--eval",
        type=Path,
        help="a `compare --json` file: ship its metrics for this model (key NAME or NAME@V)",
    )
    p.add_argument(
        "--as", dest="ship_as", help="ship it under this name (default: its published name)"
    )


@add_command(
    "bundle",
    "ship a published version in the package (fp16 ONNX + manifest; with --checkpoint, D too)",
    _configure_bundle,
)
def _bundle(args: argparse.Namespace) -> int:
    from services.trainer.evaluation.compare import NOT_CARD_FIGURES
    from services.trainer.publishing.bundle import bundle_version
    from shared.bundled import BUNDLED_ROOT

    registry = registry_of(args)
    evaluation = None
    if args.eval is not None:
        results = json.loads(args.eval.read_text())
        keys = [k for k in results if k == args.model or k.startswith(f"{args.model}@")]
        if not keys:
            sys.stderr.write(f"error: {args.eval} has no entry for {args.model}\n")
            return 2
        evaluation = results[keys[-1]]
        flags = [flag for key, flag in NOT_CARD_FIGURES.items() if evaluation.get(key)]
        if flags:
            sys.stderr.write(f"error: {args.eval} was scored with {flags[0]}: not card figures\n")
            return 2
    out = bundle_version(
        registry, args.model, args.version, out_root=args.out_root or BUNDLED_ROOT,
        checkpoint=args.checkpoint, evaluation=evaluation, ship_as=args.ship_as,
    )  # fmt: skip
    sys.stdout.write(f"{out}\n")
    return 0


def _configure_quantize(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a published image-to-image model")
    p.add_argument("--version", type=int, help="default: the served version")
    p.add_argument("--data", required=True, type=Path, help="its dataset (as for compare)")
    p.add_argument("--calibration", type=int, default=256, help="training inputs (default 256)")
    p.add_argument("--samples", type=int, help="held-out pairs to score (default: all)")
    p.add_argument("--input-half", choices=["left", "right"], help="AB images (as for compare)")
    p.add_argument(
        "--no-fid", action="store_true", help="score without FID (quicker; no FID bound)"
    )
    p.add_argument("--max-ssim-drop", type=float, help="default 0.01")
    p.add_argument("--max-fid-rise", type=float, help="relative; default 0.02 (2%%)")
    p.add_argument("--max-psnr-drop", type=float, help="dB; default 0.25")


@add_command(
    "quantize",
    "publish a version with an int8 copy of its ONNX graph, scored against fp32 on held-out "
    "pairs (served where it stays within the bound)",
    _configure_quantize,
)
def _quantize(args: argparse.Namespace) -> int:
    from services.trainer.evaluation.compare import markdown_table
    from services.trainer.publishing.quantize import Bound, quantize_version

    limits = {"max_ssim_drop": args.max_ssim_drop, "max_fid_rise": args.max_fid_rise,
              "max_psnr_drop": args.max_psnr_drop}  # fmt: skip
    bound = Bound(**{k: v for k, v in limits.items() if v is not None})
    manifest = quantize_version(
        registry_of(args), args.model, args.data, version=args.version,
        calibration=args.calibration, samples=args.samples, bound=bound,
        input_half=args.input_half, fid=not args.no_fid,
    )  # fmt: skip
    assert manifest.quantized is not None
    q = manifest.quantized
    verdict = "accepted" if q.accepted else "not accepted (served in fp32)"
    sys.stdout.write(f"{manifest.name} v{manifest.version}: int8 {verdict}; {q.bound}\n")
    sys.stdout.write(markdown_table({"fp32": q.fp32_metrics, "int8": q.metrics}) + "\n")
    return 0


def _configure_pack(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="the .safetensors file to write")


@add_command(
    "pack",
    "write a checkpoint's nets as an fp16 weights file for --init-from (kept in the repository)",
    _configure_pack,
)
def _pack(args: argparse.Namespace) -> int:
    from services.trainer.engine.checkpoint import load_checkpoint
    from services.trainer.engine.weights import pack_checkpoint

    try:
        state = load_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    pack_checkpoint(state, args.out, source=args.checkpoint.name)
    sys.stdout.write(f"{args.out}\n")
    return 0


def _configure_score_generators(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="class folders (train/ and test/)")
    p.add_argument(
        "--model", dest="models", action="append", default=[], help="NAME[@VERSION]; repeat"
    )
    p.add_argument("--n", type=int, default=2000, help="images per row (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write every metric to this file")
    p.add_argument("--grid", type=Path, help="also write a sample grid (JPEG), a row per row")


@add_command(
    "score-generators",
    "score published generate models (FID against the test images) between a floor and a ceiling",
    _configure_score_generators,
)
def _score_generators(args: argparse.Namespace) -> int:
    from services.trainer.evaluation.compare import write_json
    from services.trainer.evaluation.generation import markdown_table, score_generators

    results = score_generators(
        args.data, args.models, n=args.n, seed=args.seed, registry=registry_of(args),
        grid=args.grid, cache_dir=get_settings().cache_root,
    )  # fmt: skip
    if args.json is not None:
        write_json(args.json, results)
    sys.stdout.write(markdown_table(results) + "\n")
    return 0
