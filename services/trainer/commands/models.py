"""Registry commands: ``bootstrap``, ``list``, ``rollback``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from services.trainer.commands.base import add_command, registry_of
from shared.registry import RegistryError

log = logging.getLogger(__name__)


@add_command(
    "bootstrap",
    "publish the bundled models where none is served or an earlier release's copy is (idempotent)",
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
        from services.trainer.publishing.bootstrap import ensure_synthetic

        published = ensure_synthetic(registry_of(args), budget_s=args.budget_s)
    else:
        from shared.bundled import publish_bundled

        published = publish_bundled(registry_of(args))
    for m in published:
        log.info("published %s v%d", m.name, m.version)
    return 0


@add_command("list", "list models, versions and the served one", lambda p: None)
def _list(args: argparse.Namespace) -> int:
    registry = registry_of(args)
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
    registry = registry_of(args)
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
