"""``publish_bundled``: what a start publishes from the package into a model volume that may
already serve something (a fresh volume, an earlier release's copy, the user's own version)."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from shared.bundled import (
    BUNDLED_ROOT,
    MANIFEST_FILE,
    ONNX_FILE,
    SUPERSEDED_FILE,
    bundled_copy,
    bundled_key,
    bundled_names,
    carry_superseded,
    publish_bundled,
    read_superseded,
    write_superseded,
)
from shared.registry import Registry, sha256_file
from tests.helpers import make_manifest, write_files

NAME = "sketch2photo"


class Package:
    """A bundled folder that successive releases overwrite, as ``bundle`` does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / NAME

    def release(self, graph: bytes) -> None:
        staging = self.root / ".staging"
        manifest = make_manifest(NAME, description=f"release with {graph!r}")
        write_files(staging, {ONNX_FILE: graph})
        (staging / MANIFEST_FILE).write_text(manifest.model_dump_json())
        carry_superseded(self.folder, staging)
        shutil.rmtree(self.folder, ignore_errors=True)
        staging.rename(self.folder)

    def start(self, registry: Registry) -> list[int]:
        """What ``make run`` does first; returns the versions it published."""
        return [m.version for m in publish_bundled(registry, root=self.root)]


@pytest.fixture
def package(tmp_path: Path) -> Package:
    return Package(tmp_path / "bundled")


@pytest.fixture
def volume(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


def served_graph(registry: Registry) -> bytes:
    version = registry.current(NAME)
    assert version is not None
    return (registry.version_dir(NAME, version) / ONNX_FILE).read_bytes()


def test_a_fresh_volume_gets_the_bundled_copy_once(package: Package, volume: Registry) -> None:
    package.release(b"graph-1")
    assert package.start(volume) == [1]
    assert package.start(volume) == []
    assert volume.versions(NAME) == [1]
    assert served_graph(volume) == b"graph-1"


def test_a_volume_serving_an_earlier_release_is_upgraded_and_keeps_it_for_rollback(
    package: Package, volume: Registry
) -> None:
    package.release(b"graph-1")
    package.start(volume)
    package.release(b"graph-2")  # a `git pull` or a new image

    assert package.start(volume) == [2]
    assert served_graph(volume) == b"graph-2"
    assert volume.manifest(NAME).parent_version == 1
    assert package.start(volume) == []  # the next start: nothing new

    package.release(b"graph-3")  # two releases later, the list still names graph-1 and 2
    assert package.start(volume) == [3]
    assert served_graph(volume) == b"graph-3"


def test_the_users_own_version_is_never_replaced(package: Package, volume: Registry) -> None:
    package.release(b"graph-1")
    package.start(volume)
    sources = write_files(volume.root.parent / "trained", {ONNX_FILE: b"my-own-training"})
    volume.publish(make_manifest(NAME), sources)  # v2, by the trainer
    package.release(b"graph-2")

    assert package.start(volume) == []
    assert volume.current(NAME) == 2
    assert served_graph(volume) == b"my-own-training"


def test_a_rollback_to_an_earlier_bundled_copy_stays(package: Package, volume: Registry) -> None:
    package.release(b"graph-1")
    package.start(volume)
    package.release(b"graph-2")
    package.start(volume)
    volume.set_current(NAME, 1)  # the user prefers the old default

    assert package.start(volume) == []
    assert volume.current(NAME) == 1


def test_a_volume_it_cannot_read_is_left_alone(package: Package, volume: Registry) -> None:
    package.release(b"graph-1")
    package.start(volume)
    package.release(b"graph-2")
    (volume.version_dir(NAME, 1) / "manifest.json").write_text("{not json")

    assert package.start(volume) == []
    assert volume.current(NAME) == 1


def test_the_list_of_earlier_copies_reads_comments_and_pairs(tmp_path: Path) -> None:
    write_superseded(tmp_path, [("a" * 64,), ("b" * 64, "c" * 64), ("a" * 64,)])
    text = (tmp_path / SUPERSEDED_FILE).read_text()
    assert text.startswith("#")
    assert read_superseded(tmp_path) == {("a" * 64,), ("b" * 64, "c" * 64)}
    write_superseded(tmp_path, [])
    assert not (tmp_path / SUPERSEDED_FILE).exists()
    assert read_superseded(tmp_path) == set()


@pytest.mark.parametrize("name", bundled_names())
def test_no_shipped_folder_lists_its_own_copy_as_superseded(name: str) -> None:
    """Else a start would take the shipped copy for an old one, and its own list is hashes."""
    folder = BUNDLED_ROOT / name
    manifest, files = bundled_copy(folder)
    assert manifest.name == name
    assert bundled_key(files) not in read_superseded(folder)
    assert bundled_key(files)[0] == sha256_file(folder / ONNX_FILE)
    for key in read_superseded(folder):
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in key), key


def test_every_bundled_file_is_package_data() -> None:
    """A Docker image installs the package (not the checkout): a bundled file the wheel leaves
    out is missing there."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["*"]
    files = [p for p in BUNDLED_ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    left_out = [
        p.name for p in files if p.suffix != ".py" and not any(p.match(g) for g in patterns)
    ]
    assert not left_out
    assert any(p.name == SUPERSEDED_FILE for p in files)
