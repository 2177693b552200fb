"""``python -m services.trainer …`` (see ``--help``)."""

from __future__ import annotations

import sys

from services.trainer.commands import main

if __name__ == "__main__":
    sys.exit(main())
