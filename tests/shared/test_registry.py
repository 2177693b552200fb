"""The model volume: atomic, numbered, sha256-verified publishes; CURRENT; rollback."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from shared.manifest import Manifest
from shared.registry import IntegrityError, Registry, RegistryError
from tests.helpers import make_manifest, write_files

FILES = {"model.onnx": b"onnx-bytes", "model.ts": b"torchscript-bytes"}


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    return write_files(tmp_path / "src", FILES)


def _leftovers(registry: Registry, name: str) -> list[str]:
    """Temporary files or folders a publish or CURRENT update left behind."""
    model_dir = registry.root / name
    return sorted(p.name for p in model_dir.rglob(".*tmp*"))


def test_publish_writes_first_version_with_manifest_and_current(
    registry: Registry, sources: dict[str, Path]
) -> None:
    written = registry.publish(make_manifest("edges"), sources)

    vdir = registry.root / "edges" / "versions" / "000001"
    assert written.version == 1
    assert sorted(p.name for p in vdir.iterdir()) == ["manifest.json", "model.onnx", "model.ts"]
    on_disk = json.loads((vdir / "manifest.json").read_text())
    assert on_disk["version"] == 1
    assert on_disk["parent_version"] is None
    assert on_disk["files"] == {n: hashlib.sha256(b).hexdigest() for n, b in FILES.items()}
    assert (vdir / "model.onnx").read_bytes() == FILES["model.onnx"]
    assert (registry.root / "edges" / "CURRENT").read_text().strip() == "1"
    assert registry.current("edges") == 1
    assert registry.models() == ["edges"]
    assert registry.manifest("edges") == written
    assert _leftovers(registry, "edges") == []


def test_second_publish_is_version_2_with_parent_1(
    registry: Registry, sources: dict[str, Path]
) -> None:
    registry.publish(make_manifest("edges"), sources)
    second = registry.publish(make_manifest("edges", steps=20), sources)

    assert second.version == 2
    assert second.parent_version == 1
    assert registry.versions("edges") == [1, 2]
    assert registry.current("edges") == 2
    assert registry.manifest("edges", 2).steps == 20
    assert registry.manifest("edges", 1).steps == 0


def test_publish_without_make_current_leaves_current(
    registry: Registry, sources: dict[str, Path]
) -> None:
    registry.publish(make_manifest("edges"), sources)
    staged = registry.publish(make_manifest("edges"), sources, make_current=False)

    assert staged.version == 2
    assert registry.current("edges") == 1
    assert registry.manifest("edges").version == 1


def test_first_publish_without_make_current_has_no_served_version(
    registry: Registry, sources: dict[str, Path]
) -> None:
    registry.publish(make_manifest("edges"), sources, make_current=False)
    assert registry.current("edges") is None
    with pytest.raises(RegistryError, match="no served version"):
        registry.manifest("edges")


def test_set_current_serves_and_rolls_back(registry: Registry, sources: dict[str, Path]) -> None:
    for _ in range(3):
        registry.publish(make_manifest("edges"), sources)
    assert registry.current("edges") == 3

    registry.set_current("edges", 1)  # rollback
    assert registry.current("edges") == 1
    assert registry.manifest("edges").version == 1
    registry.set_current("edges", 3)
    assert registry.current("edges") == 3
    assert _leftovers(registry, "edges") == []  # no .CURRENT.tmp-* left


def test_set_current_to_missing_version_fails_and_keeps_current(
    registry: Registry, sources: dict[str, Path]
) -> None:
    registry.publish(make_manifest("edges"), sources)
    with pytest.raises(RegistryError, match="no version 7"):
        registry.set_current("edges", 7)
    assert registry.current("edges") == 1


def test_verify_accepts_an_intact_version(registry: Registry, sources: dict[str, Path]) -> None:
    written = registry.publish(make_manifest("edges"), sources)
    assert registry.verify("edges", 1) == written


def test_verify_detects_a_tampered_file(registry: Registry, sources: dict[str, Path]) -> None:
    registry.publish(make_manifest("edges"), sources)
    (registry.version_dir("edges", 1) / "model.onnx").write_bytes(b"evil-bytes")
    with pytest.raises(IntegrityError, match=r"sha256 of model\.onnx"):
        registry.verify("edges", 1)


def test_verify_detects_a_missing_file(registry: Registry, sources: dict[str, Path]) -> None:
    registry.publish(make_manifest("edges"), sources)
    (registry.version_dir("edges", 1) / "model.ts").unlink()
    with pytest.raises(IntegrityError, match=r"model\.ts.*missing"):
        registry.verify("edges", 1)


def test_verify_rejects_a_manifest_listing_no_files(registry: Registry, tmp_path: Path) -> None:
    registry.publish(make_manifest("edges"), {})
    with pytest.raises(IntegrityError, match="no files"):
        registry.verify("edges", 1)


@pytest.mark.parametrize("bad", ["Edges", "../x", "a" * 65, "-lead", "", "a/b", "a b", "é"])
def test_invalid_model_names_are_rejected(
    registry: Registry, sources: dict[str, Path], bad: str
) -> None:
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.current(bad)
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.versions(bad)
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.publish(make_manifest(bad), sources)
    assert not registry.root.exists() or list(registry.root.iterdir()) == []


def test_longest_valid_model_name_is_accepted(registry: Registry, sources: dict[str, Path]) -> None:
    name = "a" * 64
    assert registry.publish(make_manifest(name), sources).version == 1


@pytest.mark.parametrize("bad", ["sub/model.onnx", "../model.onnx", "manifest.json"])
def test_file_names_with_a_path_are_rejected(
    registry: Registry, sources: dict[str, Path], bad: str
) -> None:
    with pytest.raises(RegistryError, match="invalid file name"):
        registry.publish(make_manifest("edges"), {bad: sources["model.onnx"]})
    assert registry.versions("edges") == []
    assert registry.current("edges") is None
    assert _leftovers(registry, "edges") == []
    assert not (registry.root / "model.onnx").exists()


def test_failed_publish_leaves_no_version_and_no_temporary(
    registry: Registry, sources: dict[str, Path], tmp_path: Path
) -> None:
    registry.publish(make_manifest("edges"), sources)
    broken = {**sources, "extra.bin": tmp_path / "does-not-exist"}
    with pytest.raises(FileNotFoundError):
        registry.publish(make_manifest("edges"), broken)

    assert registry.versions("edges") == [1]
    assert registry.current("edges") == 1
    assert sorted(p.name for p in (registry.root / "edges" / "versions").iterdir()) == ["000001"]
    assert registry.publish(make_manifest("edges"), sources).version == 2  # number not burnt


def test_concurrent_publishers_get_distinct_consecutive_versions(
    registry: Registry, sources: dict[str, Path]
) -> None:
    barrier = threading.Barrier(8)
    written: list[Manifest] = []
    errors: list[BaseException] = []

    def publisher(i: int) -> None:
        try:
            barrier.wait()
            written.append(registry.publish(make_manifest("edges", steps=i), sources))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert errors == []
    assert sorted(m.version for m in written) == list(range(1, 9))
    assert registry.versions("edges") == list(range(1, 9))
    # every folder holds the manifest of the publisher that got its number
    by_steps = {m.steps: m.version for m in written}
    for steps, version in by_steps.items():
        on_disk = registry.verify("edges", version)
        assert (on_disk.version, on_disk.steps) == (version, steps)
    assert registry.current("edges") in range(1, 9)
    assert _leftovers(registry, "edges") == []


def test_readers_ignore_temporary_folders(registry: Registry, sources: dict[str, Path]) -> None:
    registry.publish(make_manifest("edges"), sources)
    stray = registry.root / "edges" / "versions" / ".tmp-deadbeef"
    stray.mkdir()
    (stray / "model.onnx").write_bytes(b"half")

    assert registry.versions("edges") == [1]
    assert registry.publish(make_manifest("edges"), sources).version == 2
    registry.remove_stale_temporaries("edges")
    assert not stray.exists()
    assert registry.versions("edges") == [1, 2]


def test_versions_lists_only_folders_with_a_manifest(
    registry: Registry, sources: dict[str, Path]
) -> None:
    registry.publish(make_manifest("edges"), sources)
    incomplete = registry.root / "edges" / "versions" / "000002"
    incomplete.mkdir()
    (incomplete / "model.onnx").write_bytes(b"half-copied")

    assert registry.versions("edges") == [1]


def test_unknown_version_and_model_raise_registry_error(
    registry: Registry, sources: dict[str, Path]
) -> None:
    assert registry.models() == []
    assert registry.versions("nothing") == []
    assert registry.current("nothing") is None
    registry.publish(make_manifest("edges"), sources)
    with pytest.raises(RegistryError, match="no version 2"):
        registry.manifest("edges", 2)
    with pytest.raises(RegistryError):
        registry.verify("edges", 2)


def test_models_lists_only_valid_model_folders(
    registry: Registry, sources: dict[str, Path]
) -> None:
    registry.publish(make_manifest("b-model"), sources)
    registry.publish(make_manifest("a-model"), sources)
    (registry.root / "Not-A-Model").mkdir()
    (registry.root / "stray-file").write_text("x")
    assert registry.models() == ["a-model", "b-model"]


def test_garbage_in_current_reads_as_no_served_version(
    registry: Registry, sources: dict[str, Path]
) -> None:
    registry.publish(make_manifest("edges"), sources)
    (registry.root / "edges" / "CURRENT").write_text("not-a-number\n")
    assert registry.current("edges") is None
