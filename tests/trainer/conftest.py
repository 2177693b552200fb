"""Trainer tests run tiny nets: one intra-op thread is fastest, and fair to the rest of the
suite on a 2-core machine (``torch_one_thread`` in tests/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared.settings import get_settings


@pytest.fixture(autouse=True, scope="module")
def _one_thread(torch_one_thread: None) -> None:
    del torch_one_thread


def _entry(name: str, style: int) -> dict[str, object]:
    attrs = {"hair": 0, "hair_color": 1, "gender": 1, "earring": 1, "smile": 0}
    return {"image_name": name, **attrs, "frontal_face": 0, "style": style}


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The data cache (``S2I_CACHE_ROOT``) in this test's own folder."""
    root = tmp_path / "cache"
    monkeypatch.setenv("S2I_CACHE_ROOT", str(root))
    get_settings.cache_clear()
    assert get_settings().cache_root == root
    yield root
    get_settings.cache_clear()


@pytest.fixture
def fs2k(tmp_path: Path) -> Path:
    """Four validation pairs of noise images, of two sizes and aspects; the first is also
    the one training pair."""
    root = tmp_path / "fs2k"
    rng = np.random.default_rng(0)
    entries = []
    for i, size in enumerate([(40, 40), (50, 36), (40, 40), (36, 50)], start=1):
        for kind, prefix in (("photo", "image"), ("sketch", "sketch")):
            path = root / kind / f"{kind}1" / f"{prefix}{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
        entries.append(_entry(f"photo1/image{i:04d}", i % 3))
    (root / "anno_train.json").write_text(json.dumps(entries[:1]))
    (root / "anno_val.json").write_text(json.dumps(entries))
    return root
