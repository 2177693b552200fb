"""The command table of ``python -m services.trainer`` and what every command shares.

Each module of ``services.trainer.commands`` registers its commands with :func:`add_command`;
``services.trainer.commands.main`` imports them all and builds the parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from shared.registry import Registry
from shared.settings import get_settings

EXIT_USAGE = 2  # wrong data layout, bad config, unknown recipe, a registry error
EXIT_STOPPED = 3  # stopped by a signal; resumable from the checkpoint

Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], object]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Configure
    handler: Handler


COMMANDS: list[Command] = []


def add_command(name: str, help_text: str, configure: Configure) -> Callable[[Handler], Handler]:
    """Register ``handler`` as ``python -m services.trainer NAME``."""

    def register(handler: Handler) -> Handler:
        COMMANDS.append(Command(name, help_text, configure, handler))
        return handler

    return register


def registry_of(args: argparse.Namespace) -> Registry:
    """The model volume: ``--model-root`` or ``S2I_MODEL_ROOT``."""
    return Registry(args.model_root or get_settings().model_root)


def fail(message: str) -> int:
    """One line on stderr and the usage exit code."""
    sys.stderr.write(f"error: {message}\n")
    return EXIT_USAGE
