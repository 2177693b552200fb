"""``python -m services.trainer prepare``: fs2k / pix2pix / cifar10 sources -> trainer layouts."""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import services.trainer.commands.prepare  # noqa: F401  (registers `prepare`)
from services.trainer.commands import main
from services.trainer.data import detect_layout, open_dataset

CIFAR_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["prepare", *argv])
    return code, out.getvalue(), err.getvalue()


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def _image(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


# --- FS2K ----------------------------------------------------------------------------------


def _entry(name: str, style: int) -> dict:
    attrs = {"hair": 0, "hair_color": 1, "gender": 1, "earring": 1, "smile": 0}
    return {"image_name": name, "skin_color": [1, 2], **attrs, "frontal_face": 0, "style": style}


@pytest.fixture
def fs2k_src(tmp_path: Path) -> Path:
    """A 3-pair FS2K release one folder down (SRC/FS2K/...), plus a sketch without a photo."""
    root = tmp_path / "download" / "FS2K"
    for sub, n in (("1", "0001"), ("1", "0002"), ("2", "0003")):
        _image(root / "photo" / f"photo{sub}" / f"image{n}.jpg", (10, 12), (200, 30, 30))
        _image(root / "sketch" / f"sketch{sub}" / f"sketch{n}.jpg", (10, 12), (250, 250, 250))
    _image(root / "sketch" / "sketch2" / "sketch0099.jpg", (10, 12), (0, 0, 0))  # orphan
    train = [_entry("photo1/image0001", 0), _entry("photo1/image0002", 0)]
    (root / "anno_train.json").write_text(json.dumps(train))
    (root / "anno_test.json").write_text(json.dumps([_entry("photo2/image0003", 1)]))
    return tmp_path / "download"


def test_fs2k_copies_a_loadable_dataset(fs2k_src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "fs2k"
    code, out, err = run("fs2k", str(fs2k_src), str(dst))
    assert code == 0, err
    assert out.count("\n") == 1
    assert "2 train + 1 test pairs, 1 unmatched" in out
    assert detect_layout(dst) == "fs2k"
    train, val = open_dataset(dst, "train", image_size=8), open_dataset(dst, "val", image_size=8)
    assert (len(train), len(val)) == (2, 1)  # val falls back to anno_test.json
    item = val[0]
    assert item["name"] == "photo2/image0003"
    assert item["attrs"].tolist() == [0, 1, 1, 1, 0, 0, 1]
    assert item["B"].shape == (3, 8, 8)
    assert not (dst / "photo" / "photo1" / "image0001.jpg").is_symlink()


def test_fs2k_link(fs2k_src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "linked"
    code, out, err = run("fs2k", str(fs2k_src), str(dst), "--link")
    assert code == 0, err
    assert "(linked)" in out
    a = fs2k_src / "FS2K" / "photo" / "photo1" / "image0001.jpg"
    b = dst / "photo" / "photo1" / "image0001.jpg"
    assert os.path.samefile(a, b)
    assert len(open_dataset(dst, "train")) == 2


def test_fs2k_bad_attributes_exit_2(fs2k_src: Path, tmp_path: Path) -> None:
    (fs2k_src / "FS2K" / "anno_test.json").write_text(
        json.dumps([{"image_name": "photo2/image0003"}])
    )
    code, _, err = run("fs2k", str(fs2k_src), str(tmp_path / "out"))
    assert code == 2
    assert "expected a JSON list of entries with image_name, hair" in errors(err)[0]
    assert not (tmp_path / "out").exists()


# --- pix2pix -------------------------------------------------------------------------------


@pytest.fixture
def ab_src(tmp_path: Path) -> Path:
    """facades-like: train/ of 3 side-by-side AB images (A red | B blue), test/ of 1."""
    root = tmp_path / "download" / "facades"
    for i, name in enumerate(["1.jpg", "2.png", "3.png", "notes.txt"]):
        path = root / "train" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            path.write_text("not an image")
            continue
        im = Image.new("RGB", (16, 8), (i * 50, 0, 0))
        im.paste((0, 0, 255), (8, 0, 16, 8))
        im.save(path)
    _image(root / "test" / "9.png", (20, 10), (0, 255, 0))
    return tmp_path / "download"


def test_pix2pix_limit_and_aligned_layout(ab_src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "ab"
    code, out, err = run("pix2pix", str(ab_src), str(dst), "--limit", "2")
    assert code == 0, err
    assert "train 2, test 1 AB images (1 non-image entries skipped)" in out
    assert sorted(p.name for p in (dst / "train").iterdir()) == ["1.jpg", "2.png"]
    assert detect_layout(dst) == "aligned"
    data = open_dataset(dst, "train", image_size=8)
    assert len(data) == 2
    src_png = ab_src / "facades" / "train" / "2.png"
    assert (dst / "train" / "2.png").read_bytes() == src_png.read_bytes()
    item = open_dataset(dst, "val", image_size=8)[0]  # val falls back to test/
    assert item["A"].shape == (3, 8, 8)


def test_pix2pix_rejects_images_that_are_not_ab(ab_src: Path, tmp_path: Path) -> None:
    _image(ab_src / "facades" / "train" / "0.png", (10, 10), (1, 2, 3))
    code, _, err = run("pix2pix", str(ab_src), str(tmp_path / "out"))
    assert code == 2
    assert errors(err) == [
        "error: train/0.png is 10x10, not twice as wide as tall: expected an extracted pix2pix "
        "dataset (train/, val/, test/ of side-by-side AB images)"
    ]
    assert not (tmp_path / "out").exists()


# --- CIFAR-10 binary -----------------------------------------------------------------------

LABELS = [3, 5, 0, 5, 3, 3]  # cat, dog, airplane, dog, cat, cat


def _cifar_images(n: int, seed: int) -> np.ndarray:
    images = np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    images[0, 0, 0] = (255, 0, 0)  # top-left red
    images[0, 2, 30] = (0, 255, 0)  # row 2, column 30 green
    images[0, 31, 1] = (0, 0, 255)  # bottom row, column 1 blue
    return images


def _records(labels: list[int], images: np.ndarray) -> bytes:
    """label byte, then the R plane, G plane, B plane, each 32 rows of 32 bytes."""
    return b"".join(
        bytes([label]) + im[:, :, 0].tobytes() + im[:, :, 1].tobytes() + im[:, :, 2].tobytes()
        for label, im in zip(labels, images, strict=True)
    )


def _cifar_files() -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    train, test = _cifar_images(len(LABELS), 0), _cifar_images(2, 1)
    files = {
        "data_batch_1.bin": _records(LABELS, train),
        "test_batch.bin": _records([5, 3], test),
        "batches.meta.txt": ("\n".join(CIFAR_NAMES) + "\n\n").encode(),
    }
    return files, train, test


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (32, 32))
        return np.asarray(im)


def _check_cifar(dst: Path, train: np.ndarray, test: np.ndarray) -> None:
    assert detect_layout(dst) == "class-folders"
    data = open_dataset(dst, "train")
    assert data.classes == ["cat", "dog"]  # type: ignore[attr-defined]
    assert len(data) == 5
    assert sorted(p.name for p in (dst / "train" / "cat").iterdir()) == [
        "00000.png",
        "00004.png",
        "00005.png",
    ]
    assert sorted(p.name for p in (dst / "train" / "dog").iterdir()) == ["00001.png", "00003.png"]
    cat = _png(dst / "train" / "cat" / "00000.png")
    assert tuple(cat[0, 0]) == (255, 0, 0)
    assert tuple(cat[2, 30]) == (0, 255, 0)
    assert tuple(cat[31, 1]) == (0, 0, 255)
    np.testing.assert_array_equal(cat, train[0])
    np.testing.assert_array_equal(_png(dst / "train" / "dog" / "00003.png"), train[3])
    np.testing.assert_array_equal(_png(dst / "test" / "dog" / "00000.png"), test[0])
    np.testing.assert_array_equal(_png(dst / "test" / "cat" / "00001.png"), test[1])


def test_cifar_folder(tmp_path: Path) -> None:
    files, train, test = _cifar_files()
    src = tmp_path / "download" / "cifar-10-batches-bin"
    src.mkdir(parents=True)
    for name, data in files.items():
        (src / name).write_bytes(data)
    dst = tmp_path / "cifar"
    code, out, err = run("cifar10", str(src.parent), str(dst))  # found one folder down
    assert code == 0, err
    assert out.startswith("cifar10: train cat 3, dog 2; test cat 1, dog 1 -> ")
    _check_cifar(dst, train, test)


def test_cifar_tar_gz_read_safely(tmp_path: Path) -> None:
    files, train, test = _cifar_files()
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in [*files.items(), ("../escape.bin", b"x")]:
            info = tarfile.TarInfo(
                name if name.startswith("..") else f"cifar-10-batches-bin/{name}"
            )
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("cifar-10-batches-bin/data_batch_2.bin")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    dst = tmp_path / "out" / "cifar"
    code, _, err = run("cifar10", str(archive), str(dst))
    assert code == 0, err
    _check_cifar(dst, train, test)
    assert not (tmp_path / "out" / "escape.bin").exists()
    assert not (tmp_path / "escape.bin").exists()
    assert not (tmp_path / "cifar-10-batches-bin").exists()  # nothing extracted


def test_cifar_classes_and_limit(tmp_path: Path) -> None:
    files, train, _ = _cifar_files()
    src = tmp_path / "cifar-10-batches-bin"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    dst = tmp_path / "out"
    code, out, err = run("cifar10", str(src), str(dst), "--classes", "airplane,cat", "--limit", "1")
    assert code == 0, err
    assert "train airplane 1, cat 1; test airplane 0, cat 1" in out
    assert [p.name for p in (dst / "train" / "cat").iterdir()] == ["00000.png"]
    np.testing.assert_array_equal(_png(dst / "train" / "airplane" / "00002.png"), train[2])
    assert open_dataset(dst, "train").classes == ["airplane", "cat"]  # type: ignore[attr-defined]

    code, _, err = run("cifar10", str(src), str(tmp_path / "x"), "--classes", "cat,unicorn")
    assert code == 2
    assert errors(err)[0].startswith("error: --classes cat,unicorn: expected names from batches")


class _Touch:
    """Unpickling this creates `path`: proof that nothing was unpickled if it never appears."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("packed", [False, True])
def test_cifar_python_version_is_refused(tmp_path: Path, packed: bool) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Touch(marker))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (folder / name).write_bytes(payload)
    src = folder
    if packed:
        src = tmp_path / "cifar-10-python.tar.gz"
        with tarfile.open(src, "w:gz") as tar:
            tar.add(folder, arcname="cifar-10-batches-py")
    code, _, err = run("cifar10", str(src), str(tmp_path / "out"))
    assert code == 2
    assert errors(err) == [
        "error: SRC is the python (pickle) version of CIFAR-10, which is never unpickled here: "
        "expected the CIFAR-10 binary version (cifar-10-binary.tar.gz or its folder "
        "cifar-10-batches-bin/: data_batch_1.bin ... data_batch_5.bin, test_batch.bin, "
        "batches.meta.txt)"
    ]
    assert not marker.exists()


def test_cifar_truncated_batch_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "cifar-10-batches-bin"
    src.mkdir()
    (src / "data_batch_1.bin").write_bytes(b"\x03" * 3000)
    (src / "batches.meta.txt").write_text("\n".join(CIFAR_NAMES))
    code, _, err = run("cifar10", str(src), str(tmp_path / "out"))
    assert code == 2
    assert "not a multiple of 3073" in errors(err)[0]


# --- wrong input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            "fs2k",
            "SRC has no anno_train.json: expected the extracted FS2K release "
            "(photo/, sketch/, anno_train.json, anno_test.json)",
        ),
        (
            "pix2pix",
            "SRC has no train/, val/ or test/ folder: expected an extracted pix2pix dataset "
            "(train/, val/, test/ of side-by-side AB images)",
        ),
        ("cifar10", "SRC has no data_batch_1.bin: expected the CIFAR-10 binary version"),
    ],
)
def test_wrong_src_exit_2_with_one_line(tmp_path: Path, kind: str, message: str) -> None:
    src = tmp_path / "src"
    _image(src / "holiday" / "beach.jpg", (8, 8), (1, 2, 3))
    code, out, err = run(kind, str(src), str(tmp_path / "dst"))
    assert code == 2
    assert out == ""
    [line] = errors(err)
    assert line.startswith(f"error: {message}")
    assert not (tmp_path / "dst").exists()


def test_missing_src_full_dst_and_bad_limit(tmp_path: Path) -> None:
    code, _, err = run("pix2pix", str(tmp_path / "nope"), str(tmp_path / "dst"))
    assert code == 2
    assert "does not exist" in errors(err)[0]
    full = tmp_path / "full"
    _image(full / "x.png", (2, 1), (0, 0, 0))
    code, _, err = run("pix2pix", str(full), str(full))
    assert (code, errors(err)) == (
        2,
        [f"error: DST {full} is not an empty folder: expected a new one"],
    )
    code, _, err = run("pix2pix", str(full), str(tmp_path / "d"), "--limit", "0")
    assert code == 2
    assert "--limit must be at least 1" in errors(err)[0]
