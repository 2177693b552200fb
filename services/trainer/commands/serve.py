"""``serve``: the trainer as a long-lived service (``services.trainer.service``)."""

from __future__ import annotations

import argparse
import threading

from services.trainer.commands.base import add_command
from shared.settings import get_settings


@add_command(
    "serve", "run as a service: take training runs from the training queue", lambda p: None
)
def _serve(args: argparse.Namespace) -> int:
    from services.trainer.service.app import heartbeat, worker_main

    settings = get_settings()
    stop = threading.Event()
    beat = threading.Thread(target=heartbeat, args=(settings, stop), daemon=True)
    beat.start()
    try:
        worker_main(settings)
    finally:
        stop.set()
        beat.join(5)
    return 0
