"""``compare``: published models scored side by side as the worker runs them, and the
variation of models with noise."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from services.trainer.config import TrainConfig
from services.trainer.data.common import to_tensor
from services.trainer.evaluation.attribute_net import JUDGE_WEIGHTS, AttributeClassifier
from services.trainer.evaluation.compare import (
    GRID_COLUMNS,
    IDENTITY,
    VARIANTS,
    compare,
    load_pairs,
    variation,
)
from services.trainer.evaluation.fid import FIDScorer
from services.trainer.evaluation.metrics import pairwise_l1
from services.trainer.publishing.publish import publish_recipe
from services.trainer.recipes import get_recipe
from shared.registry import Registry
from tests.helpers import publish_tiny, publish_tiny_sketchy
from tests.trainer.test_evaluation import TinyExtractor
from tests.trainer.tiny_runs import run_cli


def test_compare_scores_the_floor_and_a_styled_model_and_draws_a_grid(
    fs2k: Path, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "models")
    config = TrainConfig(
        recipe="pix2pix", data=str(fs2k), direction="photo2sketch", image_size=32,
        fit="letterbox", model_name="tiny", options={"ngf": 8, "ndf": 8, "condition": "style"},
    )  # fmt: skip
    torch.manual_seed(0)
    recipe = get_recipe("pix2pix")(config, torch.device("cpu"))
    publish_recipe(recipe, registry, metrics={}, steps=0, policy="always", metric="val_l1")
    grid = tmp_path / "grid.jpg"
    models = [IDENTITY, "tiny@1"]
    # FID's Inception costs half a minute of CPU here; tests/trainer/test_evaluation.py has it
    results = compare(fs2k, "photo2sketch", models, registry=registry, grid=grid, fid=False)
    assert list(results) == [IDENTITY, "tiny@1"]
    for metrics in results.values():
        assert metrics["n"] == 4
        assert {"val_l1", "psnr", "ssim", "fsim"} <= set(metrics)
        assert "fid" not in metrics
        assert all(math.isfinite(v) for v in metrics.values())
    assert results[IDENTITY]["val_l1"] != results["tiny@1"]["val_l1"]
    assert "ms_per_image" in results["tiny@1"]
    assert "ms_per_image" not in results[IDENTITY]
    with Image.open(grid) as image:  # input, the model, real (identity is the input); 128 px
        assert image.size[1] == 3 * (128 + 2) + 2
        assert image.size[0] == min(4, GRID_COLUMNS) * (128 + 2) + 2


def test_output_noise_degrades_the_pixel_metrics_the_same_way_every_run(fs2k: Path) -> None:
    """--output-noise: seeded grain on every output, so the input unchanged loses PSNR."""
    clean = compare(fs2k, "sketch2photo", [IDENTITY], fid=False)[IDENTITY]
    noisy = compare(fs2k, "sketch2photo", [IDENTITY], fid=False, output_noise=0.1)[IDENTITY]
    again = compare(fs2k, "sketch2photo", [IDENTITY], fid=False, output_noise=0.1)[IDENTITY]
    assert noisy["psnr"] < clean["psnr"]
    assert noisy["val_l1"] != clean["val_l1"]
    assert noisy == again
    assert noisy["output_noise"] == 0.1  # recorded: `bundle --eval` refuses such figures
    assert "output_noise" not in clean


def test_a_second_attribute_classifier_judges_the_same_photos(fs2k: Path, tmp_path: Path) -> None:
    """--attribute-classifier: the attribute figures come from the file given."""
    committed = compare(fs2k, "sketch2photo", [IDENTITY], fid=False)[IDENTITY]
    torch.manual_seed(1)
    other = tmp_path / "judge.safetensors"
    AttributeClassifier(image_size=32, width=8).save(other)  # untrained: another judge
    judged = compare(fs2k, "sketch2photo", [IDENTITY], fid=False, attribute_classifier=other)
    assert "attr_bacc_ratio" in committed
    assert "attr_bacc_ratio" in judged[IDENTITY]
    pixels = ("ssim", "psnr", "fsim", "val_l1")
    assert {k: judged[IDENTITY][k] for k in pixels} == {k: committed[k] for k in pixels}
    per_attribute = [k for k in committed if k.startswith("attr_")]
    assert any(judged[IDENTITY][k] != committed[k] for k in per_attribute)
    assert judged[IDENTITY]["other_attribute_classifier"] == 1.0  # bundle refuses these
    assert "other_attribute_classifier" not in committed


@pytest.mark.parametrize(
    ("marker", "flag"),
    [("output_noise", "--output-noise"), ("other_attribute_classifier", "--attribute-classifier")],
)
def test_bundle_refuses_figures_that_are_not_the_cards(
    tmp_path: Path, marker: str, flag: str
) -> None:
    scored = tmp_path / "eval.json"
    scored.write_text(json.dumps({"tiny": {"fid": 150.0, marker: 1.0}}))
    out_root = tmp_path / "bundled"
    code, _, err = run_cli("bundle", "--model", "tiny", "--eval", str(scored),
                           "--out-root", str(out_root))  # fmt: skip
    assert code == 2
    assert flag in err
    assert not out_root.exists()


def test_pairwise_l1_is_the_mean_l1_over_every_two_variants() -> None:
    base = torch.zeros(2, 3, 3, 4, 4)  # (N, k, 3, H, W)
    assert pairwise_l1(base).tolist() == [0.0, 0.0]  # a model that ignores its noise
    base[1, 2] = 1.0  # item 1: pairs (0, 1) 0, (0, 2) 1, (1, 2) 1
    assert pairwise_l1(base).tolist() == pytest.approx([0.0, 2 / 3])
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_l1(base[:, :1])


def test_compare_measures_the_variation_of_models_with_noise_only(
    fs2k: Path, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "models")
    publish_tiny_sketchy(registry, "noisy", tmp_path, size=16)
    publish_tiny(registry, "plain", tmp_path, seed=1, size=8)
    models = [IDENTITY, "noisy", "plain"]
    results = compare(fs2k, "sketch2photo", models, registry=registry, fid=False)
    variation_keys = {"variation_l1", "variation_fid"}
    assert not variation_keys & (set(results[IDENTITY]) | set(results["plain"]))
    noisy = results["noisy"]
    assert "variation_fid" not in noisy  # no FID asked for
    assert 0.0 < noisy["variation_l1"] < 2.0
    assert {"val_l1", "psnr", "ssim", "fsim"} <= set(noisy)
    fewer = compare(fs2k, "sketch2photo", ["noisy"], registry=registry, fid=False, variants=1)
    assert not variation_keys & set(fewer["noisy"])

    pairs = load_pairs(fs2k, "sketch2photo", None)
    fid = FIDScorer("cpu", extractor=TinyExtractor())
    fid.add_real(torch.stack([p.target for p in pairs]))
    fid.add_fake(torch.stack([p.target for p in pairs]))  # replaced by the variants
    scored = variation("noisy", pairs, registry, VARIANTS, fid)
    assert fid.fake_count == VARIANTS * len(pairs)
    assert scored["variation_fid"] > 0.0
    assert scored["variation_l1"] == noisy["variation_l1"]  # seeded: the same variants
    assert variation("plain", pairs, registry, VARIANTS, fid) == {}


def test_side_by_side_pairs_give_the_model_the_chosen_half(tmp_path: Path) -> None:
    root = tmp_path / "facades"
    (root / "test").mkdir(parents=True)  # no val/: test/ is the held-out split
    rng = np.random.default_rng(1)
    halves = []
    for i in range(3):
        photo, labels = (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2))
        Image.fromarray(np.concatenate([photo, labels], axis=1)).save(root / "test" / f"{i}.png")
        halves.append((photo, labels))

    pairs = load_pairs(root, "sketch2photo", None, input_half="right")  # labels -> photo

    assert len(pairs) == 3
    for pair, (photo, labels) in zip(pairs, halves, strict=True):  # 0.png, 1.png, 2.png
        np.testing.assert_array_equal(np.asarray(pair.source), labels)
        expected = Image.fromarray(photo).resize((256, 256), Image.Resampling.BICUBIC)
        np.testing.assert_allclose(pair.target.numpy(), to_tensor(expected).numpy(), atol=1e-6)
    results = compare(root, "sketch2photo", [IDENTITY], fid=False, input_half="right")
    assert results[IDENTITY]["n"] == 3
    assert "attr_acc_ratio" not in results[IDENTITY]  # face attributes only on FS2K photos


def test_photo2sketch_is_judged_on_attributes_only_by_a_classifier_of_sketches(
    fs2k: Path, tmp_path: Path
) -> None:
    """photo2sketch's attribute figures come from the committed classifier of sketches, or one
    given (attributes.py --reads sketch, flagged as another judge's); a photo one is refused."""
    plain = compare(fs2k, "photo2sketch", [IDENTITY], fid=False)[IDENTITY]
    assert {"attr_acc_ratio", "attr_bacc_ratio"} <= set(plain)
    assert "other_attribute_classifier" not in plain  # the card's judge
    named = compare(
        fs2k, "photo2sketch", [IDENTITY], fid=False, attribute_classifier=JUDGE_WEIGHTS["sketch"]
    )[IDENTITY]
    assert named.pop("other_attribute_classifier") == 1.0
    assert named == plain  # the default is the committed judge of sketches
    sketches = tmp_path / "sketch-judge.safetensors"
    torch.manual_seed(1)
    judge = AttributeClassifier(image_size=32, width=8)
    judge.reads = "sketch"
    judge.save(sketches)
    judged = compare(fs2k, "photo2sketch", [IDENTITY], fid=False, attribute_classifier=sketches)
    assert {"attr_acc_ratio", "attr_bacc_ratio"} <= set(judged[IDENTITY])
    assert judged[IDENTITY]["other_attribute_classifier"] == 1.0
    with pytest.raises(ValueError, match="judges sketch outputs and sketch2photo makes a photo"):
        compare(fs2k, "sketch2photo", [IDENTITY], fid=False, attribute_classifier=sketches)
    photos = tmp_path / "photo-judge.safetensors"
    AttributeClassifier(image_size=32, width=8).save(photos)
    code, _, err = run_cli("compare", "--data", str(fs2k), "--direction", "photo2sketch",
                           "--model", IDENTITY, "--attribute-classifier", str(photos))  # fmt: skip
    assert code == 2
    assert "--reads sketch" in err
