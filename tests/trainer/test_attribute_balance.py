"""``options.attr_balance``: G's attribute term weighs each image by how rare its labels are in
the training set, read from the labels without loading an image."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from services.trainer.data import ATTRIBUTE_NAMES
from services.trainer.data.common import attribute_rows
from services.trainer.data.loading import open_run_data
from services.trainer.engine.distributed import DistContext
from services.trainer.engine.loop import train
from services.trainer.evaluation.attribute_net import AttributeSpec
from services.trainer.recipes.attribute_critic import (
    build_attribute_critic,
    generator_attribute_loss,
)
from services.trainer.recipes.pix2pix import Pix2PixRecipe
from tests.trainer.fs2k_folders import write_fs2k
from tests.trainer.tiny_runs import TINY_OPTIONS, tiny_config

TERM = {**TINY_OPTIONS, "lambda_attr": 5.0, "attr_size": 16}
SMILE = AttributeSpec.fs2k().names.index("smile")


def fs2k_rows(root: Path, split: str) -> list[list[int]]:
    """Each entry's 7 label values in ATTRIBUTE_NAMES order, as anno_<split>.json lists them."""
    entries = json.loads((root / f"anno_{split}.json").read_text())
    return [[int(e[n]) for n in ATTRIBUTE_NAMES] for e in entries]


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("val_split", [True, False])
def test_the_runs_training_labels_are_read_through_the_loops_wrappers(
    tmp_path: Path, cache_root: Path, cache: bool, val_split: bool
) -> None:
    data = tmp_path / "fs2k"
    write_fs2k(data, "train", 12, seed=1)
    if val_split:
        write_fs2k(data, "val", 4, seed=2)
    config = tiny_config(tmp_path / "run", data=str(data), cache=cache, image_size=16)
    cpu = DistContext(torch.device("cpu"))
    run_data = open_run_data(config, "paired", 16, 2, cpu)
    rows = attribute_rows(run_data.train)
    assert rows is not None
    expected = fs2k_rows(data, "train")
    if val_split:
        assert rows.tolist() == expected
    else:  # a held-out slice of the training entries: the rest, in the wrapper's order
        assert len(rows) == len(run_data.train) < len(expected)
        kept = run_data.train.dataset.indices  # type: ignore[attr-defined]
        assert rows.tolist() == [expected[i] for i in kept]
    assert cache_root.exists() == cache
    # synthetic pairs carry no labels
    synthetic = open_run_data(tiny_config(tmp_path / "s"), "paired", 32, 2, cpu)
    assert attribute_rows(synthetic.train) is None


def test_each_images_term_is_scaled_by_its_labels_weight() -> None:
    torch.manual_seed(0)
    netC = build_attribute_critic(16)
    fake_B = torch.rand(2, 3, 16, 16) * 2 - 1
    labels = torch.zeros(2, 6, dtype=torch.long)
    labels[1, SMILE] = 1
    ones = [torch.ones(c) for c in AttributeSpec.fs2k().num_classes]
    smile_rare = [w.clone() for w in ones]
    smile_rare[SMILE] = torch.tensor([0.5, 3.0])
    plain = generator_attribute_loss(netC, fake_B, labels)
    assert float(generator_attribute_loss(netC, fake_B, labels, ones)) == pytest.approx(
        float(plain)
    )
    # a batch of one: the weight scales that image's smile term (a mean over images, not a
    # mean weighted by the labels, which would cancel the weight of a lone image)
    for i, w in ((0, 0.5), (1, 3.0)):
        x, y = fake_B[i : i + 1], labels[i : i + 1]  # (1, 3, 16, 16), (1, 6)
        per_attr = [F.cross_entropy(lg, y[:, k]) for k, lg in enumerate(netC(x))]
        expected = (sum(per_attr) + (w - 1) * per_attr[SMILE]) / len(per_attr)
        weighted = generator_attribute_loss(netC, x, y, smile_rare)
        assert float(weighted) == pytest.approx(float(expected), rel=1e-5)
        assert float(weighted) != pytest.approx(float(generator_attribute_loss(netC, x, y)))


def test_a_run_weighs_the_term_by_its_training_sets_frequencies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "fs2k"
    write_fs2k(data, "train", 12, seed=1)  # smile: 4 of 12 (every third entry)
    write_fs2k(data, "val", 4, seed=2)
    options = {**TERM, "attr_balance": 0.5}
    config = tiny_config(tmp_path / "run", data=str(data), image_size=32, options=options,
                         max_steps=2)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="services.trainer.recipes.pix2pix"):
        progress = train(config)
    assert progress.step == 2
    (line,) = [r.getMessage() for r in caplog.records if "class weights" in r.getMessage()]
    weights = json.loads(line.split(": ", 1)[1])
    # frequency**-0.5, mean 1 over the classes present: 8 without a smile, 4 with one
    w_no, w_yes = 8**-0.5, 4**-0.5
    assert weights[SMILE] == pytest.approx([2 * w_no / (w_no + w_yes), 2 * w_yes / (w_no + w_yes)])
    hair = AttributeSpec.fs2k().names.index("hair")
    assert weights[hair] == pytest.approx([1.0, 0.0])  # nobody is bald here: that class is absent


def test_attr_balance_needs_the_term_and_labelled_training_data(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="attr_balance weights the classes"):
        Pix2PixRecipe(
            tiny_config(tmp_path, options={**TINY_OPTIONS, "attr_balance": 0.5}),
            torch.device("cpu"),
        )
    with pytest.raises(ValueError, match="attr_balance needs a training set with FS2K labels"):
        train(tiny_config(tmp_path / "run", options={**TERM, "attr_balance": 0.5}, max_steps=1))
