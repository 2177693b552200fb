"""``python -m shared.bundled [NAME ...]``: publish the bundled models (all by default) into
``S2I_MODEL_ROOT`` where none is served yet or an earlier release's copy is (see
``shared.bundled``). Exit 2 for an unknown name."""

from __future__ import annotations

import argparse
import logging
import sys

from shared.bundled import bundled_names, publish_bundled
from shared.registry import Registry
from shared.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.bundled", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"default: all of {', '.join(bundled_names())}")
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        published = publish_bundled(Registry(settings.model_root), args.names)
    except FileNotFoundError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    for m in published:
        logging.getLogger("shared.bundled").info("published %s v%d", m.name, m.version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
