"""The models a fresh install serves, shipped inside the package, published with no torch.

Each folder ``shared/bundled/<name>/`` holds ``model.onnx`` (fp16 weights, fp32 compute; made
by ``python -m services.trainer bundle``), ``manifest.json`` and, where the manifest names
one (``quantized``), its int8 copy ``model.int8.onnx``. ``superseded.sha256`` lists the graphs
earlier releases shipped in that folder (``bundle`` appends the one it replaces).

``publish_bundled`` copies a bundled model into the model volume (sha256 computed there, as
for any publish) when the model has no served version yet, and also when the served version
is a copy an earlier release bundled (its graphs are in ``superseded.sha256``) and this
release's graphs were never published: so a checkout that pulls, or a deployment that takes a
new image, serves the new default on its next start. A version of the user's own (trained,
or one they rolled back to) is never replaced. ``python -m shared.bundled [NAME ...]`` does it
from the command line (all of them by default), and ``make run``, the compose file and the
k8s init container call it on start. Neither needs torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from shared.manifest import INT8_ONNX_FILE, ONNX_FILE, Manifest
from shared.registry import Registry, RegistryError, sha256_file

log = logging.getLogger(__name__)

BUNDLED_ROOT = Path(__file__).parent
MANIFEST_FILE = "manifest.json"
SUPERSEDED_FILE = "superseded.sha256"
GRAPH_FILES = (ONNX_FILE, INT8_ONNX_FILE)  # what tells one bundled copy from another

# one shipped copy: the sha256 of its model.onnx and, where it has one, its model.int8.onnx
GraphKey = tuple[str, ...]

__all__ = [
    "BUNDLED_ROOT",
    "MANIFEST_FILE",
    "ONNX_FILE",
    "SUPERSEDED_FILE",
    "bundled_copy",
    "bundled_key",
    "bundled_names",
    "carry_superseded",
    "publish_bundled",
    "read_superseded",
    "write_superseded",
]


def bundled_names(root: Path = BUNDLED_ROOT) -> list[str]:
    """Names of the bundled models (folders with a manifest and an ONNX file)."""
    return sorted(
        p.name
        for p in root.iterdir()
        if (p / MANIFEST_FILE).is_file() and (p / ONNX_FILE).is_file()
    )


def graph_key(files: Mapping[str, str]) -> GraphKey:
    """The key of a version from its manifest's ``files`` (file name -> sha256)."""
    return tuple(files[f] for f in GRAPH_FILES if f in files)


def bundled_copy(folder: Path) -> tuple[Manifest, dict[str, Path]]:
    """A bundled folder's manifest and the files a publish copies (name -> path)."""
    manifest = Manifest.model_validate(json.loads((folder / MANIFEST_FILE).read_text()))
    files = {ONNX_FILE: folder / ONNX_FILE}
    if manifest.quantized is not None:  # the int8 copy beside it (bundle --quantized)
        files[INT8_ONNX_FILE] = folder / INT8_ONNX_FILE
    return manifest, files


def bundled_key(files: Mapping[str, Path]) -> GraphKey:
    """The key of a bundled copy, hashed from the files a publish copies."""
    return tuple(sha256_file(files[f]) for f in GRAPH_FILES if f in files)


def folder_key(folder: Path) -> GraphKey | None:
    """The key of the copy a bundled folder holds (None: the folder holds none)."""
    if not ((folder / MANIFEST_FILE).is_file() and (folder / ONNX_FILE).is_file()):
        return None
    return bundled_key(bundled_copy(folder)[1])


def carry_superseded(old: Path, new: Path) -> tuple[GraphKey | None, GraphKey]:
    """Write ``new``'s list of earlier copies as a release replacing ``old`` must: ``old``'s
    list and ``old``'s own copy, less ``new``'s copy. Returns both copies' keys."""
    old_key, new_key = folder_key(old), folder_key(new)
    if new_key is None:
        raise FileNotFoundError(f"{new} holds no bundled copy")
    keys = read_superseded(old) | ({old_key} if old_key is not None else set())
    write_superseded(new, keys - {new_key})
    return old_key, new_key


def read_superseded(folder: Path) -> set[GraphKey]:
    """The keys of earlier releases' copies: one line each, sha256s separated by spaces."""
    path = folder / SUPERSEDED_FILE
    if not path.is_file():
        return set()
    lines = (line.split("#", 1)[0].split() for line in path.read_text().splitlines())
    return {tuple(words) for words in lines if words}


def _reason_to_keep(
    registry: Registry, name: str, folder: Path, files: Mapping[str, Path]
) -> str | None:
    """Why the served version stays (None: publish the bundled copy)."""
    current = registry.current(name)
    if current is None:
        return None
    try:
        served = {v: graph_key(registry.manifest(name, v).files) for v in registry.versions(name)}
    except (RegistryError, ValueError) as exc:  # an unreadable manifest: touch nothing
        return f"its versions could not be read ({exc})"
    key = bundled_key(files)
    published_as = [v for v, k in served.items() if k == key]
    if published_as:
        return f"this bundled copy is v{published_as[-1]}; v{current} is served"
    if served.get(current) not in read_superseded(folder):
        return f"v{current} is not a bundled copy"
    log.info("%s v%d is an earlier release's bundled copy: publishing this one", name, current)
    return None


def publish_bundled(
    registry: Registry, names: Iterable[str] | None = None, *, root: Path = BUNDLED_ROOT
) -> list[Manifest]:
    """Publish each bundled model (all, or ``names``) where nothing is served yet or where
    what is served is an earlier release's bundled copy (see the module doc)."""
    wanted = list(names) if names else bundled_names(root)
    published = []
    for name in wanted:
        folder = root / name
        if not (folder / MANIFEST_FILE).is_file():
            raise FileNotFoundError(f"no bundled model {name!r}; bundled: {bundled_names(root)}")
        manifest, files = bundled_copy(folder)
        reason = _reason_to_keep(registry, name, folder, files)
        if reason is not None:
            log.info("%s: bundled copy not published: %s", name, reason)
            continue
        published.append(registry.publish(manifest, files))
    return published


def write_superseded(folder: Path, keys: Iterable[GraphKey]) -> None:
    """Write ``folder``'s list of earlier copies (no file when there are none)."""
    lines = sorted({" ".join(key) for key in keys})
    path = folder / SUPERSEDED_FILE
    if not lines:
        path.unlink(missing_ok=True)
        return
    header = f"# {' [+ '.join(GRAPH_FILES)}]: sha256 of the copies earlier releases shipped\n"
    path.write_text(header + "".join(f"{line}\n" for line in lines))
