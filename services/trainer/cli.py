"""``python -m services.trainer``: the trainer's command line.

Registry commands (``bootstrap``, ``list``, ``rollback``) are here; training commands
register themselves through :func:`add_command`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from shared.registry import Registry, RegistryError
from shared.settings import get_settings

log = logging.getLogger(__name__)

DESCRIPTION = "Train, evaluate, export and publish sketch2image models."
EXAMPLES = """examples:
  python -m services.trainer train --config configs/faces-sketch2photo.yaml --data DATA
  python -m services.trainer train --recipe pix2pix --data DATA --set image_size=128
  python -m services.trainer train --config CONFIG --data DATA --as-default --publish always
  python -m services.trainer list
  python -m services.trainer rollback --model sketch2photo

Run `python -m services.trainer COMMAND --help` for a command's options."""

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], object], Handler]] = []


def add_command(
    name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], object]
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _COMMANDS.append((name, help_text, configure, handler))
        return handler

    return register


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(args.model_root or get_settings().model_root)


@add_command(
    "bootstrap",
    "publish the bundled models into the model volume where none is served (idempotent)",
    lambda p: (
        p.add_argument(
            "--synthetic",
            action="store_true",
            help="instead, train and publish the tiny synthetic-shapes demo models "
            "(shapes-sketch2photo, shapes-photo2sketch)",
        ),
        p.add_argument(
            "--budget-s",
            type=float,
            default=100.0,
            help="with --synthetic: training time per model (default 100)",
        ),
    ),
)
def _bootstrap(args: argparse.Namespace) -> int:
    if args.synthetic:
        from services.trainer.bootstrap import ensure_synthetic

        published = ensure_synthetic(_registry(args), budget_s=args.budget_s)
    else:
        from shared.bundled import publish_bundled

        published = publish_bundled(_registry(args))
    for m in published:
        log.info("published %s v%d", m.name, m.version)
    return 0


@add_command("list", "list models, versions and the served one", lambda p: None)
def _list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    rows = []
    for name in registry.models():
        current = registry.current(name)
        for version in registry.versions(name):
            m = registry.manifest(name, version)
            rows.append(
                {
                    "model": name,
                    "version": version,
                    "served": version == current,
                    "task": m.task,
                    "recipe": m.recipe,
                    "metrics": m.metrics,
                    "created_at": m.created_at,
                }
            )
    json.dump(rows, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


@add_command(
    "rollback",
    "serve another (older) version: rewrites CURRENT; workers hot-reload it",
    lambda p: (
        p.add_argument("--model", required=True),
        p.add_argument(
            "--version", type=int, help="version to serve (default: the one before the served one)"
        ),
    ),
)
def _rollback(args: argparse.Namespace) -> int:
    registry = _registry(args)
    version = args.version
    if version is None:
        current = registry.current(args.model)
        older = [v for v in registry.versions(args.model) if current is None or v < current]
        if not older:
            raise RegistryError(f"{args.model} has no version before v{current}")
        version = older[-1]
    registry.verify(args.model, version)
    registry.set_current(args.model, version)
    log.info("%s now serves v%d", args.model, version)
    return 0


def main(argv: list[str] | None = None) -> int:
    import services.trainer.service  # noqa: F401  (registers `serve`)
    from services.trainer import eval_cli, prepare_cli, train_cli  # noqa: F401  (commands)

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    parser = argparse.ArgumentParser(
        prog="python -m services.trainer",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-root", help="model volume (default: S2I_MODEL_ROOT)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, configure, handler in _COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        configure(p)
        p.set_defaults(handler=handler)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except RegistryError as exc:
        log.error("%s", exc)
        return 2
