"""The model volume: versioned, atomically published, sha256-verified model files.

Layout (docs/architecture.md, "The model volume")::

    <root>/<model>/versions/<NNNNNN>/{model.onnx, model.ts, manifest.json}
    <root>/<model>/CURRENT          text: the served version number

Publishing writes into a temporary folder inside ``versions/``, fsyncs it, and renames it to
the next free number (rename of a folder onto an existing non-empty one fails, so two
publishers never share a number). ``CURRENT`` is replaced with write-to-temp + ``os.replace``.
Readers therefore never see a half-written version, also on NFS-like volumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from shared.manifest import MODEL_NAME_RE, Manifest

log = logging.getLogger(__name__)

VERSION_DIGITS = 6
MANIFEST = "manifest.json"


class RegistryError(Exception):
    """A model or version that does not exist, or a bad name."""


class IntegrityError(RegistryError):
    """A version whose files do not match the sha256 in its manifest."""


def check_model_name(name: str) -> str:
    if not MODEL_NAME_RE.fullmatch(name):
        raise RegistryError(f"invalid model name {name!r}: must match {MODEL_NAME_RE.pattern}")
    return name


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or folder (a rename is durable once its folder is synced)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; when the block ends without an
    error it is fsynced and renamed over ``path`` and the folder synced, so a reader sees the
    old file or the whole new one, never a part. The temporary is removed whatever happens."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def parse_current(text: str | None) -> int | None:
    """The version a CURRENT file's text names; None for no file or no number."""
    return int(text) if text is not None and text.isdigit() else None


class Registry:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # --- reading -----------------------------------------------------------------------
    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if MODEL_NAME_RE.fullmatch(p.name) and p.is_dir()
        )

    def versions(self, name: str) -> list[int]:
        vdir = self.root / check_model_name(name) / "versions"
        if not vdir.is_dir():
            return []
        return sorted(
            int(p.name) for p in vdir.iterdir() if p.name.isdigit() and (p / MANIFEST).is_file()
        )

    def _version_path(self, name: str, version: int) -> Path:
        return self.root / check_model_name(name) / "versions" / f"{version:0{VERSION_DIGITS}d}"

    def has_version(self, name: str, version: int) -> bool:
        """Whether ``version`` is a complete version folder (one of ``versions(name)``)."""
        return (self._version_path(name, version) / MANIFEST).is_file()

    def current(self, name: str) -> int | None:
        """The served version, or None when the model has no (readable) CURRENT (yet)."""
        return parse_current(self.current_text(name))

    def current_text(self, name: str) -> str | None:
        """CURRENT's content as written (None when there is no CURRENT), to report bad ones."""
        path = self.root / check_model_name(name) / "CURRENT"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            return None

    def version_dir(self, name: str, version: int) -> Path:
        path = self._version_path(name, int(version))
        if not (path / MANIFEST).is_file():
            raise RegistryError(f"model {name!r} has no version {version}")
        return path

    def manifest(self, name: str, version: int | None = None) -> Manifest:
        if version is None:
            version = self.current(name)
            if version is None:
                raise RegistryError(f"model {name!r} has no served version")
        return Manifest.model_validate_json(
            (self.version_dir(name, version) / MANIFEST).read_text()
        )

    def verify(self, name: str, version: int) -> Manifest:
        """Check every file's sha256 against the manifest; raise IntegrityError otherwise."""
        manifest = self.manifest(name, version)
        vdir = self.version_dir(name, version)
        if not manifest.files:
            raise IntegrityError(f"{name} v{version}: manifest lists no files")
        for filename, expected in manifest.files.items():
            path = vdir / filename
            if Path(filename).name != filename or not path.is_file():
                raise IntegrityError(f"{name} v{version}: file {filename!r} is missing")
            actual = sha256_file(path)
            if actual != expected:
                raise IntegrityError(
                    f"{name} v{version}: sha256 of {filename} is {actual[:12]}…, "
                    f"manifest says {expected[:12]}…"
                )
        return manifest

    # --- writing -----------------------------------------------------------------------
    def publish(
        self,
        manifest: Manifest,
        files: Mapping[str, Path],
        *,
        make_current: bool = True,
    ) -> Manifest:
        """Copy ``files`` (name in the version folder -> source path) into a new version.

        Returns the manifest as written (with version number and sha256 of every file).
        """
        name = check_model_name(manifest.name)
        versions_dir = self.root / name / "versions"
        versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = versions_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            hashes: dict[str, str] = {}
            for filename, source in files.items():
                if Path(filename).name != filename or filename == MANIFEST:
                    raise RegistryError(f"invalid file name {filename!r}")
                target = tmp / filename
                shutil.copyfile(source, target)
                with target.open("rb") as fh:
                    os.fsync(fh.fileno())
                hashes[filename] = sha256_file(target)
            if manifest.parent_version is None:
                manifest = manifest.model_copy(update={"parent_version": self.current(name)})
            written = self._rename_to_next_version(tmp, versions_dir, manifest, hashes)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("published %s v%d (%s)", name, written.version, ", ".join(files))
        current = self.current(name)
        if make_current and (current is None or written.version > current):
            self.set_current(name, written.version)
        return written

    def _rename_to_next_version(
        self, tmp: Path, versions_dir: Path, manifest: Manifest, hashes: dict[str, str]
    ) -> Manifest:
        version = max(self.versions(manifest.name), default=0) + 1
        while True:
            written = manifest.model_copy(update={"version": version, "files": hashes})
            with atomic_write(tmp / MANIFEST) as manifest_tmp:  # also syncs tmp
                manifest_tmp.write_text(written.model_dump_json(indent=2))
            target = versions_dir / f"{version:0{VERSION_DIGITS}d}"
            try:
                if target.exists():
                    raise FileExistsError(target)
                os.rename(tmp, target)
            except OSError:  # another publisher took this number
                version += 1
                continue
            fsync_path(versions_dir)
            return written

    def set_current(self, name: str, version: int) -> None:
        """Serve ``version`` (publish, or rollback to an older one)."""
        self.version_dir(name, version)  # must exist
        with atomic_write(self.root / check_model_name(name) / "CURRENT") as tmp:
            tmp.write_text(f"{int(version)}\n")
        log.info("%s: CURRENT -> %d", name, version)

    def remove_stale_temporaries(self, name: str) -> None:
        """Remove ``.tmp-*`` folders left by a publisher that died (call when none runs)."""
        vdir = self.root / check_model_name(name) / "versions"
        for path in vdir.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                shutil.rmtree(path)
