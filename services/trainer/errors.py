"""Errors the trainer's command line reports without importing torch."""

from __future__ import annotations


class DatasetLayoutError(ValueError):
    """A dataset folder does not have the layout a loader expects."""


class InitFromError(ValueError):
    """``--init-from`` weights that cannot start this run (another recipe, no generator, a net
    whose shapes differ, an unknown ``--init-skip`` name)."""


class InitFromNotFoundError(FileNotFoundError):
    """``--init-from`` names no weights file, model folder, bundled model or served version."""
