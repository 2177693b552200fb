"""Errors the trainer's command line reports without importing torch."""

from __future__ import annotations


class DatasetLayoutError(ValueError):
    """A dataset folder does not have the layout a loader expects."""
