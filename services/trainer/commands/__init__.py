"""``python -m services.trainer``: the trainer's command line.

One module per group of commands, each registering with ``base.add_command``: ``models``
(bootstrap, list, rollback), ``train`` (train, evaluate, export, publish), ``compare``
(compare, bundle, pack), ``prepare`` and ``serve``.
"""

from __future__ import annotations

import argparse
import logging

from services.trainer.commands import compare, models, prepare, serve, train
from services.trainer.commands.base import COMMANDS, EXIT_USAGE
from shared.registry import RegistryError
from shared.settings import get_settings

log = logging.getLogger(__name__)

GROUPS = (
    models,
    train,
    compare,
    prepare,
    serve,
)  # imported for their commands, listed in this order

DESCRIPTION = "Train, evaluate, export and publish sketch2image models."
EXAMPLES = """examples:
  python -m services.trainer train --config configs/faces-sketch2photo.yaml --data DATA
  python -m services.trainer train --recipe pix2pix --data DATA --set image_size=128
  python -m services.trainer train --config CONFIG --data DATA --as-default --publish always
  python -m services.trainer list
  python -m services.trainer rollback --model sketch2photo

Run `python -m services.trainer COMMAND --help` for a command's options."""


def main(argv: list[str] | None = None) -> int:
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
    order = [g.__name__ for g in GROUPS]
    for command in sorted(COMMANDS, key=lambda c: order.index(c.handler.__module__)):
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(p)
        p.set_defaults(handler=command.handler)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except RegistryError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
