"""The models a fresh install serves, shipped inside the package, published with no torch.

Each folder ``shared/bundled/<name>/`` holds ``model.onnx`` (fp16 weights, fp32 compute; made
by ``python -m services.trainer bundle``), ``manifest.json`` and, where the manifest names
one (``quantized``), its int8 copy ``model.int8.onnx``. ``publish_bundled`` copies
every one whose model has no served version yet into the model volume (sha256 computed
there, as for any publish); ``python -m shared.bundled [NAME ...]`` does it from the command
line (all of them by default), and ``make run``, the compose file and the k8s init container
call it on start. Neither needs torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from shared.manifest import INT8_ONNX_FILE, ONNX_FILE, Manifest
from shared.registry import Registry

log = logging.getLogger(__name__)

BUNDLED_ROOT = Path(__file__).parent
MANIFEST_FILE = "manifest.json"

__all__ = ["BUNDLED_ROOT", "MANIFEST_FILE", "ONNX_FILE", "bundled_names", "publish_bundled"]


def bundled_names(root: Path = BUNDLED_ROOT) -> list[str]:
    """Names of the bundled models (folders with a manifest and an ONNX file)."""
    return sorted(
        p.name
        for p in root.iterdir()
        if (p / MANIFEST_FILE).is_file() and (p / ONNX_FILE).is_file()
    )


def publish_bundled(
    registry: Registry, names: Iterable[str] | None = None, *, root: Path = BUNDLED_ROOT
) -> list[Manifest]:
    """Publish each bundled model (all, or ``names``) that has no served version yet."""
    wanted = list(names) if names else bundled_names(root)
    published = []
    for name in wanted:
        folder = root / name
        if not (folder / MANIFEST_FILE).is_file():
            raise FileNotFoundError(f"no bundled model {name!r}; bundled: {bundled_names(root)}")
        current = registry.current(name)
        if current is not None:
            log.info("%s already served (v%d); bundled copy not published", name, current)
            continue
        manifest = Manifest.model_validate(json.loads((folder / MANIFEST_FILE).read_text()))
        files = {ONNX_FILE: folder / ONNX_FILE}
        if manifest.quantized is not None:  # the int8 copy beside it (bundle --quantized)
            files[INT8_ONNX_FILE] = folder / INT8_ONNX_FILE
        published.append(registry.publish(manifest, files))
    return published
