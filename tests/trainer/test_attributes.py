from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.trainer.data import ATTRIBUTE_NAMES, FS2KDataset
from services.trainer.evaluation import (
    JUDGE_WEIGHTS,
    AttributeAccumulator,
    AttributeClassifier,
    AttributeSpec,
    attribute_accuracy,
    attribute_report,
    load_default_classifier,
    train_attribute_classifier,
)
from services.trainer.evaluation.attribute_net import Reads
from services.trainer.evaluation.attributes import load_photos, main
from tests.trainer.fs2k_folders import write_fs2k

REAL_FS2K = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fs2k"

# two made-up attributes read off the colour: which of red/blue dominates, and brightness
SPEC = AttributeSpec(names=("reddish", "brightness"), num_classes=(2, 3), columns=(0, 1))


def colour_items(n: int, seed: int, size: int = 20) -> list[dict[str, torch.Tensor]]:
    """Items {"B": (3, size, size) in [-1, 1], "attrs": (2,)}: textured images whose colour
    says the labels."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        red, level = (
            int(torch.randint(0, 2, (), generator=g)),
            int(torch.randint(0, 3, (), generator=g)),
        )
        base = -0.6 + 0.6 * level  # brightness: -0.6, 0, 0.6
        colour = torch.tensor([0.35, 0.0, -0.35] if red else [-0.35, 0.0, 0.35])
        img = base + colour[:, None, None] + 0.15 * torch.randn(3, size, size, generator=g)
        items.append({"B": img.clamp(-1, 1), "attrs": torch.tensor([red, level])})
    return items


def stack(items: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([it["B"] for it in items]), torch.stack([it["attrs"] for it in items])


@pytest.fixture(scope="module")
def trained() -> AttributeClassifier:
    return train_attribute_classifier(
        colour_items(96, seed=0), epochs=6, spec=SPEC, image_size=16, width=8, batch_size=16
    )


def test_classifier_learns_colour_labels_well_above_chance(trained) -> None:
    images, attrs = stack(colour_items(60, seed=1))  # held out
    acc = attribute_accuracy(trained, images, attrs)
    assert set(acc) == {"reddish", "brightness"}
    assert acc["reddish"] > 0.9  # chance 0.5
    assert acc["brightness"] > 0.8  # chance 0.33
    balanced = attribute_accuracy(trained, images, attrs, balanced=True)
    assert balanced["brightness"] > 0.8


def test_any_input_size_is_resized(trained) -> None:
    images, _ = stack(colour_items(3, seed=2, size=48))
    assert trained.predict(images).shape == (3, 2)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        trained.predict(images[:, :1])


def test_save_load_round_trip(trained, tmp_path) -> None:
    path = tmp_path / "attrs.safetensors"
    trained.val_report = {"reddish": {"acc": 1.0, "balanced": 1.0, "majority": 0.5}}
    trained.compute = {"cpu_hours": 0.01, "wall_hours": 0.02}
    trained.save(path)
    assert path.stat().st_size < 2_000_000
    loaded = AttributeClassifier.load(path)
    assert loaded.spec == SPEC
    assert not loaded.training
    assert loaded.val_report == trained.val_report
    assert loaded.compute == trained.compute
    images, _ = stack(colour_items(20, seed=3))
    with torch.no_grad():
        for a, b in zip(trained.eval()(images), loaded(images), strict=True):
            torch.testing.assert_close(a, b, atol=0.05, rtol=0.01)  # weights stored in fp16
    assert torch.equal(trained.predict(images), loaded.predict(images))

    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="not an attribute classifier"):
        AttributeClassifier.load(other)


def test_report_compares_fake_with_real(trained) -> None:
    real, attrs = stack(colour_items(40, seed=4))
    same = attribute_report(trained, real.clone(), real, attrs)
    assert {"attr_acc_real", "attr_acc_fake", "attr_acc_ratio"} <= set(same)
    assert {"attr_acc_real/reddish", "attr_acc_fake/brightness"} <= set(same)
    assert same["attr_acc_ratio"] == pytest.approx(1.0)

    lost = attribute_report(trained, real.flip(1), real, attrs)  # red <-> blue swapped
    assert lost["attr_acc_real"] == pytest.approx(same["attr_acc_real"])
    assert lost["attr_acc_fake/reddish"] < 0.2
    assert lost["attr_acc_ratio"] < 0.8
    assert lost["attr_acc_ratio"] == pytest.approx(lost["attr_acc_fake"] / lost["attr_acc_real"])


def test_balanced_ratio_scores_outputs_that_all_look_alike_at_chance(trained) -> None:
    # a generator that returns the same image whatever it is given (mode collapse): plain
    # accuracy credits it with the share of that image's class, balanced accuracy with chance
    real, attrs = stack(colour_items(40, seed=7))
    blue = int((attrs[:, 0] == 0).nonzero()[0])
    collapsed = real[blue].expand_as(real).clone()
    report = attribute_report(trained, collapsed, real, attrs)
    share_blue = float((attrs[:, 0] == 0).double().mean())
    assert report["attr_acc_fake/reddish"] == pytest.approx(share_blue)
    assert report["attr_bacc_fake/reddish"] == pytest.approx(0.5)
    assert report["attr_bacc_fake/brightness"] == pytest.approx(1 / 3)  # chance: 3 classes
    same = attribute_report(trained, real.clone(), real, attrs)
    assert same["attr_bacc_ratio"] == pytest.approx(1.0)
    balanced = attribute_accuracy(trained, real, attrs, balanced=True)
    summary = [balanced[name] for name in trained.summary_names]
    assert same["attr_bacc_real"] == pytest.approx(sum(summary) / len(summary))


def test_accumulator_equals_one_shot(trained) -> None:
    real, attrs = stack(colour_items(30, seed=5))
    fake = real + 0.4 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))
    acc = AttributeAccumulator(trained)
    for sl in (slice(0, 7), slice(7, 30)):
        acc.update(fake[sl], real[sl], attrs[sl])
    assert acc.count == 30
    assert acc.compute() == pytest.approx(attribute_report(trained, fake, real, attrs))
    with pytest.raises(ValueError, match="same items"):
        acc.update(fake[:3], real[:4], attrs[:4])
    acc.reset()
    assert acc.compute() == {}


def test_summary_skips_attributes_the_classifier_cannot_tell(trained) -> None:
    real, attrs = stack(colour_items(20, seed=6))
    trained.val_report = {
        "reddish": {"acc": 0.95, "balanced": 0.95, "majority": 0.5},
        "brightness": {"acc": 0.4, "balanced": 0.36, "majority": 0.4},  # ~ chance (1/3)
    }
    try:
        assert trained.summary_names == ("reddish",)
        report = attribute_report(trained, real, real, attrs)
        assert report["attr_acc_real"] == pytest.approx(report["attr_acc_real/reddish"])
    finally:
        trained.val_report = {}
    assert trained.summary_names == ("reddish", "brightness")


def test_fs2k_spec_reads_dataset_label_rows() -> None:
    spec = AttributeSpec.fs2k()
    assert "style" not in spec.names
    assert len(spec.names) == len(ATTRIBUTE_NAMES) - 1
    rows = torch.arange(7).repeat(2, 1)  # (2, 7): column index as the value
    assert spec.labels(rows)[0].tolist() == [ATTRIBUTE_NAMES.index(n) for n in spec.names]
    with pytest.raises(ValueError, match="label rows"):
        spec.labels(torch.zeros(2, 3, dtype=torch.long))


def test_cli_trains_and_saves_a_loadable_classifier(tmp_path) -> None:
    data = tmp_path / "fs2k"
    write_fs2k(data, "train", 24, seed=1)
    write_fs2k(data, "val", 8, seed=2)
    out = tmp_path / "out.safetensors"
    main(["--data", str(data), "--out", str(out), "--epochs", "2", "--image-size", "16",
          "--width", "8", "--workers", "0"])  # fmt: skip
    net = AttributeClassifier.load(out)
    assert net.spec == AttributeSpec.fs2k()
    assert net.image_size == 16
    assert set(net.val_report) == set(net.spec.names)
    assert net.val_report["gender"]["majority"] == pytest.approx(0.5)
    # what the fit cost, for a GAN run that starts its netC from this file to count
    assert set(net.compute) == {"cpu_hours", "wall_hours"}
    assert 0 < net.compute["cpu_hours"] < 0.1
    assert net.reads == "photo"


def test_cli_trains_a_judge_of_sketches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "fs2k"
    write_fs2k(data, "train", 16, seed=1)
    write_fs2k(data, "val", 8, seed=2)
    out = tmp_path / "sketches.safetensors"
    main(["--data", str(data), "--out", str(out), "--epochs", "1", "--image-size", "16",
          "--width", "8", "--workers", "0", "--reads", "sketch"])  # fmt: skip
    net = AttributeClassifier.load(out)
    assert net.reads == "sketch"  # compare takes it for photo2sketch only
    assert set(net.val_report) == set(net.spec.names)
    # with no --out it replaces the committed judge of sketches, never the one of photos
    judges = {"photo": tmp_path / "photos.safetensors", "sketch": tmp_path / "sketch.safetensors"}
    for reads, path in judges.items():
        monkeypatch.setitem(JUDGE_WEIGHTS, reads, path)
    main(["--data", str(data), "--reads", "sketch", "--epochs", "1", "--image-size", "16",
          "--width", "8", "--workers", "0"])  # fmt: skip
    assert AttributeClassifier.load(judges["sketch"]).reads == "sketch"
    assert not judges["photo"].exists()


@pytest.mark.parametrize("reads", ["photo", "sketch"])
def test_the_committed_fs2k_judges_load_and_read_what_they_say(reads: Reads) -> None:
    if not JUDGE_WEIGHTS[reads].is_file():
        pytest.skip("no committed FS2K classifier")
    net = load_default_classifier(reads=reads)
    assert net is not None
    assert net.reads == reads
    assert net.spec == AttributeSpec.fs2k()
    assert {"gender", "hair", "hair_color"} <= set(net.summary_names)
    assert net.predict(torch.zeros(2, 3, 256, 256)).shape == (2, len(net.spec.names))


@pytest.mark.skipif(not REAL_FS2K.is_dir(), reason="real FS2K data not present")
def test_real_fs2k_photos_load_for_the_classifier() -> None:
    val = FS2KDataset(REAL_FS2K, "val", image_size=64, augment=False)
    subset = torch.utils.data.Subset(val, range(4))
    images, labels = load_photos(subset, AttributeSpec.fs2k(), 64)
    assert images.shape == (4, 3, 64, 64)
    assert labels.shape == (4, 6)
    assert images.min() >= -1
    assert images.max() <= 1
    net = load_default_classifier()
    if net is not None:
        assert set(attribute_accuracy(net, images, labels, label_rows=False)) == set(net.spec.names)
