"""``s2i``: the sketch2image API from the command line (on :mod:`shared.client`).

    s2i translate drawing.png                   # writes drawing-out.png
    s2i translate photo.jpg --model photo2sketch --style 2 -o sketch.png
    s2i translate drawing.png --model faces-sketchygan -n 4 --seed 7   # 4 variations, one grid
    s2i generate catdog -n 4 --seed 1 -o grid.png
    s2i jobs 0123abcd...            s2i jobs 0123abcd... --cancel
    s2i models

The API's address comes from ``--url`` (or ``S2I_URL``), its key from ``--api-key``
(or ``S2I_API_KEY``). Errors print one line to stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from shared.client import DEFAULT_URL, S2IError, Sketch2ImageClient, TranslateResult

log = logging.getLogger("s2i")
FORMATS = ("png", "jpeg", "webp")
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2i",
        description="Translate sketches to photos (and back) with a sketch2image API.",
        epilog="Exit status: 0 done, 1 the API or a file failed, 2 bad usage.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("S2I_URL", DEFAULT_URL),
        help=f"the API's base URL (default: $S2I_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("S2I_API_KEY"), help="API key (default: $S2I_API_KEY)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for an answer (default: 60)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("translate", help="translate one image file")
    t.add_argument("input", type=Path, metavar="INPUT", help="the sketch or photo file")
    t.add_argument("-o", "--output", type=Path, help="output file (default: INPUT-out.FORMAT)")
    t.add_argument("--model", default="auto", help="model name, or auto (default)")
    t.add_argument("--model-version", type=int, help="pin a model version")
    t.add_argument("--format", choices=FORMATS, default="png", help="output format (png)")
    t.add_argument("--style", type=int, help="drawing style, for models that take one")
    t.add_argument("--keep-aspect", action="store_true", help="keep the input's aspect ratio")
    t.add_argument("-n", type=int, help="variations (1-8), as one grid, for models with noise")
    t.add_argument("--seed", type=int, help="same seed, same variations (models with noise)")
    t.add_argument(
        "--output-size",
        choices=["model", "input"],
        help="model: the model's size (default); input: the input's width and height",
    )

    g = sub.add_parser("generate", help="generate images with a generate model")
    g.add_argument("model", metavar="MODEL")
    g.add_argument("-n", type=int, default=1, help="number of images, as one grid (default 1)")
    g.add_argument("--seed", type=int, help="same seed, same images")
    g.add_argument("--class-name", help="class, for class-conditional models")
    g.add_argument("--format", choices=FORMATS, help="output format (default: from OUT)")
    g.add_argument("-o", "--output", type=Path, required=True, help="output file")

    j = sub.add_parser("jobs", help="show a job's status as JSON, or cancel it")
    j.add_argument("job_id", metavar="ID")
    j.add_argument("--cancel", action="store_true", help="cancel the job if it is still queued")

    sub.add_parser("models", help="list the served models")
    return parser


def _summary(out: Path, result: TranslateResult, elapsed_s: float) -> str:
    version = f" v{result.version}" if result.version is not None else ""
    seed = f"seed {result.seed}" if result.seed is not None else None
    parts = [f"{result.model}{version}", result.routed_by, seed, f"{elapsed_s * 1000:.0f} ms"]
    return f"wrote {out} ({', '.join(p for p in parts if p)})\n"


def _models_table(models: list[dict[str, object]]) -> str:
    rows = [("NAME", "TASK", "VERSION", "INPUT")]
    for m in models:
        spec = m.get("input")
        spec = spec if isinstance(spec, dict) else {}
        if spec.get("kind", "image") == "image":
            size = f"{spec.get('width', '?')}x{spec.get('height', '?')}"
        else:
            size = f"{spec.get('kind')} {spec.get('z_dim', '?')}"
        rows.append((str(m.get("name")), str(m.get("task")), str(m.get("version")), size))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in rows
    )


def run(args: argparse.Namespace, client: Sketch2ImageClient) -> None:
    """Run one parsed command; its output goes to stdout."""
    if args.command == "translate":
        out = args.output or args.input.with_name(f"{args.input.stem}-out.{args.format}")
        start = time.perf_counter()
        result = client.translate(
            args.input,
            model=args.model,
            version=args.model_version,
            format=args.format,
            keep_aspect=args.keep_aspect,
            output_size=args.output_size,
            style=args.style,
            n=args.n,
            seed=args.seed,
        )
        out.write_bytes(result.image)
        sys.stdout.write(_summary(out, result, time.perf_counter() - start))
    elif args.command == "generate":
        fmt = args.format or SUFFIX_FORMATS.get(args.output.suffix.lower(), "png")
        start = time.perf_counter()
        result = client.generate(
            args.model, n=args.n, seed=args.seed, class_name=args.class_name, format=fmt
        )
        args.output.write_bytes(result.image)
        sys.stdout.write(_summary(args.output, result, time.perf_counter() - start))
    elif args.command == "jobs":
        status = client.cancel(args.job_id) if args.cancel else client.job(args.job_id)
        sys.stdout.write(json.dumps(status.raw, indent=2) + "\n")
    elif args.command == "models":
        sys.stdout.write(_models_table(client.models()))


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)  # the stderr of this call (tests swap it)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("s2i", "httpx"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("httpx").setLevel(logging.INFO if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on usage errors
    _setup_logging(args.verbose)
    try:
        with Sketch2ImageClient(args.url, api_key=args.api_key, timeout=args.timeout) as client:
            run(args, client)
    except S2IError as exc:  # ApiError: "415 title: detail"; ConnectionFailed names the URL
        log.error("error: %s", exc)
        return 1
    except OSError as exc:  # the input could not be read or the output written
        log.error("error: %s: %s", exc.filename or "file", exc.strerror or exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
