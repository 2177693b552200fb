"""Training commands of ``python -m services.trainer``: train, evaluate, export, publish.

    python -m services.trainer train --recipe pix2pix --data DATA [--config run.yaml]
        [--set batch_size=4 --set options.lambda_l1=50] [--resume CKPT] [--run-dir DIR]
        [--max-steps N] [--publish always|if-better|never]
    python -m services.trainer evaluate (--run-dir DIR | --checkpoint CKPT) [--data DATA]
    python -m services.trainer export --checkpoint CKPT --out DIR
    python -m services.trainer publish --checkpoint CKPT [--force] [--data DATA]

Under torchrun (``torchrun --nproc_per_node=N -m services.trainer train ...``) every rank runs
``train`` and rank 0 writes. SIGTERM / Ctrl-C stop a run at the next step with a checkpoint
(exit code 3); ``--resume`` continues it. A dataset whose layout is wrong, a bad config or an
unknown recipe end with a message and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from services.trainer.commands.base import EXIT_STOPPED, add_command, fail, registry_of
from services.trainer.config import TrainConfig, apply_override, load_file
from services.trainer.errors import DatasetLayoutError, InitFromError, InitFromNotFoundError
from shared.settings import get_settings
from shared.trainings import RECIPE_NAMES

log = logging.getLogger(__name__)


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--recipe",
        metavar="RECIPE",
        help=f"one of: {', '.join(RECIPE_NAMES)} (default: the resumed checkpoint's)",
    )
    p.add_argument("--data", help="dataset folder or synthetic://N")
    p.add_argument("--config", type=Path, help="YAML or JSON file of TrainConfig fields")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field (options.NAME for recipe options); repeatable",
    )
    p.add_argument("--resume", type=Path, help="checkpoint to continue from")
    p.add_argument(
        "--init-from",
        action="append",
        metavar="WEIGHTS",
        help="start from a weights file (see `pack`), a model folder, a bundled model, a "
        "published NAME[@VERSION] or an attribute classifier file (netC); repeatable: a later "
        "one's nets replace an earlier one's",
    )
    p.add_argument(
        "--init-skip",
        action="append",
        metavar="NET",
        help="with --init-from: leave this net (e.g. netD) freshly initialised; repeatable",
    )
    p.add_argument("--run-dir", type=Path, help="where logs, samples and checkpoints go")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument(
        "--as-default",
        action="store_true",
        help="publish under the name `model=auto` routes to for this direction "
        "(S2I_DEFAULT_SKETCH2PHOTO_MODEL / S2I_DEFAULT_PHOTO2SKETCH_MODEL)",
    )
    p.add_argument(
        "--publish",
        choices=["always", "if-better", "never"],
        help="when the new version becomes the served one (default if-better)",
    )


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Checkpoint's config (when resuming) < --config file < flags < --set overrides."""
    data: dict[str, Any] = {}
    if args.resume is not None:
        from services.trainer.engine.checkpoint import load_checkpoint

        data = dict(load_checkpoint(args.resume)["config"])
    if args.config is not None:
        data.update(load_file(args.config))
    fields = {
        "recipe": args.recipe,
        "data": args.data,
        "run_dir": args.run_dir,
        "max_steps": args.max_steps,
        "publish": args.publish,
        "init_from": args.init_from,
        "init_skip": args.init_skip,
    }
    data.update(
        {k: (str(v) if isinstance(v, Path) else v) for k, v in fields.items() if v is not None}
    )
    for item in args.overrides:
        apply_override(data, item)
    if args.as_default:
        settings = get_settings()
        direction = data.get("direction", "sketch2photo")
        data["model_name"] = (
            settings.default_photo2sketch_model
            if direction == "photo2sketch"
            else settings.default_sketch2photo_model
        )
    return TrainConfig.model_validate(data)


class _StopFlag:
    """Set by SIGTERM / SIGINT: the loop checkpoints and returns at the next step."""

    def __init__(self) -> None:
        self.stop = False
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        del frame
        log.warning("signal %d: stopping at the next step (with a checkpoint)", signum)
        self.stop = True

    def __call__(self) -> bool:
        return self.stop


@add_command("train", "train a recipe on a dataset, evaluate and publish", _configure_train)
def _train(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
        from services.trainer.recipes import get_recipe

        get_recipe(config.recipe)
    except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
        return fail(str(exc))
    from services.trainer.engine.loop import train

    quiet_bar = not sys.stderr.isatty()  # no tqdm bar: a log line per log_every steps

    def report(p: Any) -> None:
        if p.state == "running" and quiet_bar:
            losses = " ".join(f"{k} {v:.3g}" for k, v in p.losses.items())
            eta = f"{p.eta_s / 60:.1f} min" if p.eta_s is not None else "?"
            log.info(
                "step %d/%d (epoch %d/%d) %s | %.1f img/s, ETA %s",
                p.step, p.total_steps, p.epoch, p.total_epochs, losses, p.images_per_s, eta,
            )  # fmt: skip
        elif p.state != "running":
            log.info("%s at step %d/%d %s", p.state, p.step, p.total_steps, p.metrics or "")

    try:
        final = train(
            config,
            registry=registry_of(args),
            on_progress=report,
            should_stop=_StopFlag(),
            resume=args.resume,
        )
    except DatasetLayoutError as exc:
        return fail(f"wrong dataset layout: {exc}")
    except (InitFromError, InitFromNotFoundError) as exc:  # --init-from cannot start this run
        return fail(str(exc))
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the run
        sys.stdout.write(final.model_dump_json(indent=2) + "\n")
    return EXIT_STOPPED if final.state == "canceled" else 0


def _checkpoint_arg(args: argparse.Namespace) -> Path:
    if args.checkpoint is not None:
        return Path(args.checkpoint)
    return Path(args.run_dir) / "checkpoints" / "latest.pt"


def _evaluate_recipe(recipe: Any, samples: int | None = None) -> dict[str, float]:
    """Metrics of a (checkpoint's) recipe on its config's held-out data."""
    from services.trainer.data.loading import open_run_data
    from services.trainer.engine.distributed import DistContext
    from services.trainer.engine.seeding import isolated_rng
    from services.trainer.evaluation.validation import Evaluator

    config = recipe.config
    ctx = DistContext(recipe.device)
    run_data = open_run_data(config, recipe.data_kind, recipe.image_size, 1, ctx)
    metric = config.publish_metric or recipe.default_publish_metric
    evaluator = Evaluator(
        run_data.heldout,
        device=recipe.device,
        max_samples=samples or config.eval_samples,
        fid=metric == "fid",
    )
    with isolated_rng(config.seed):
        return evaluator(recipe, photos_out=config.direction == "sketch2photo").metrics


def _load(path: Path, data: str | None = None) -> tuple[Any, dict[str, Any]]:
    import torch

    from services.trainer.engine.checkpoint import recipe_from_checkpoint

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return recipe_from_checkpoint(path, device, data=data)


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", help="a run folder (its checkpoints/latest.pt)")
    p.add_argument("--checkpoint", help="a checkpoint file")
    p.add_argument("--data", help="dataset (default: the one the run trained on)")
    p.add_argument("--samples", type=int, help="held-out items to use")


@add_command(
    "evaluate", "metrics of a checkpoint on the held-out data (JSON on stdout)", _configure_evaluate
)
def _evaluate(args: argparse.Namespace) -> int:
    if (args.run_dir is None) == (args.checkpoint is None):
        return fail("give exactly one of --run-dir and --checkpoint")
    try:
        recipe, _ = _load(_checkpoint_arg(args), args.data)
        metrics = _evaluate_recipe(recipe, args.samples)
    except (DatasetLayoutError, FileNotFoundError) as exc:
        return fail(str(exc))
    sys.stdout.write(json.dumps(metrics, indent=2) + "\n")
    return 0


def _configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, type=Path, help="one folder per model inside")


@add_command(
    "export",
    "export a checkpoint's serving models (TorchScript + ONNX, parity-checked)",
    _configure_export,
)
def _export(args: argparse.Namespace) -> int:
    from services.trainer.publishing.export import export_model

    try:
        recipe, state = _load(Path(args.checkpoint))
    except FileNotFoundError as exc:
        return fail(str(exc))
    written: dict[str, list[str]] = {}
    for spec in recipe.exports():
        folder = args.out / spec.model_name
        result = export_model(spec.net, spec.input.shape(1), folder)
        info = {
            "name": spec.model_name,
            "task": spec.task,
            "architecture": spec.architecture,
            "arch_kwargs": spec.arch_kwargs,
            "recipe": recipe.name,
            "input": spec.input.model_dump(),
            "output": spec.output.model_dump(),
            "metrics": state["metrics"],
            "steps": state["step"],
        }
        (folder / "export.json").write_text(json.dumps(info, indent=2))
        written[spec.model_name] = sorted(str(p) for p in result.files.values())
    sys.stdout.write(json.dumps(written, indent=2) + "\n")
    return 0


def _configure_publish(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--force", action="store_true", help="serve it even if it is worse")
    p.add_argument("--data", help="evaluate on this dataset (default: the run's)")


@add_command(
    "publish",
    "publish a checkpoint's models to the model volume (CURRENT moves if not worse)",
    _configure_publish,
)
def _publish(args: argparse.Namespace) -> int:
    from services.trainer.publishing.publish import publish_recipe

    try:
        recipe, state = _load(Path(args.checkpoint), args.data)
    except FileNotFoundError as exc:
        return fail(str(exc))
    try:
        metrics = _evaluate_recipe(recipe)
    except (DatasetLayoutError, OSError) as exc:
        log.warning("evaluation failed (%s); publishing the checkpoint's metrics", exc)
        metrics = dict(state["metrics"])
    config = recipe.config
    published = publish_recipe(
        recipe,
        registry_of(args),
        metrics=metrics,
        steps=int(state["step"]),
        policy="always" if args.force else "if-better",
        metric=config.publish_metric or recipe.default_publish_metric,
        dataset=str(config.data),
        compute=dict(state.get("compute", {}).get("totals", {})),  # as the run would have
    )
    sys.stdout.write(json.dumps([p.model_dump() for p in published], indent=2) + "\n")
    return 0
