"""``--init-from`` with several sources: layered nets, summed compute, a netC of its own.

A run may start from a generator and discriminators of one source and an attribute critic
netC of another (``evaluation/attributes.py`` trains one alone on the real photos); every
source must supply a net the run loads, so no cost is counted twice, and the evaluation's own
classifier is never a netC.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import pytest
import torch
from torch import Tensor

from services.trainer.commands.train import _configure_train, build_config
from services.trainer.engine.loop import train
from services.trainer.engine.weights import init_from, pack_checkpoint
from services.trainer.errors import InitFromError
from services.trainer.evaluation.attribute_net import (
    DEFAULT_WEIGHTS,
    JUDGE_WEIGHTS,
    AttributeClassifier,
)
from services.trainer.recipes.attribute_critic import CRITIC_WIDTH
from tests.trainer.tiny_runs import TINY_OPTIONS, load_state, one_thread, tiny_config
from tests.trainer.weights_runs import FirstRun, assert_same, fp16, fresh_recipe, make_first_run

# exporting tiny nets warns, on purpose (as in tests/shared/test_export.py)
pytestmark = pytest.mark.filterwarnings(
    "ignore::torch.jit.TracerWarning", "ignore:.*:UserWarning:torch.*"
)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    return make_first_run(tmp_path_factory.mktemp("first"))


def critic_file(
    path: Path, seed: int, cpu_hours: float, width: int = CRITIC_WIDTH
) -> tuple[Path, dict[str, Tensor]]:
    """An attribute classifier file (what evaluation/attributes.py writes), of netC's layout."""
    torch.manual_seed(seed)
    critic = AttributeClassifier(image_size=64, width=width)
    critic.compute = {"cpu_hours": cpu_hours, "wall_hours": 2 * cpu_hours}
    critic.save(path)
    return path, fp16(critic.state_dict())


def other_discriminator(first_run: FirstRun, path: Path) -> tuple[Path, dict[str, Tensor]]:
    """A weights file holding only a netD (another run's: its own compute totals)."""
    netD = {
        k: v + 1 if v.is_floating_point() else v for k, v in first_run.state["nets"]["netD"].items()
    }
    totals = {"steps": 5, "images_seen": 20, "cpu_hours": 0.1, "wall_hours": 0.2}
    state = {**first_run.state, "nets": {"netD": netD}, "compute": {"totals": totals}}
    return pack_checkpoint(state, path), netD


def test_init_from_several_sources_layers_their_nets_and_adds_their_compute(
    first_run: FirstRun, tmp_path: Path
) -> None:
    """G and D from a run, then another D, then a netC trained alone: a later source's net
    replaces an earlier one's, and what every source cost is counted."""
    only_D, other_D = other_discriminator(first_run, tmp_path / "d.safetensors")
    critic, critic_weights = critic_file(tmp_path / "netC.safetensors", 7, cpu_hours=0.25)
    recipe = fresh_recipe(tmp_path, lambda_attr=1.0)
    specs = [str(first_run.weights), str(only_D), str(critic)]

    totals = init_from(recipe, specs, None)

    assert_same(recipe.nets["netG"].state_dict(), fp16(first_run.state["nets"]["netG"]))
    assert_same(recipe.nets["netD"].state_dict(), fp16(other_D))
    assert_same(recipe.nets["netC"].state_dict(), critic_weights)
    first = first_run.state["compute"]["totals"]
    assert totals["steps"] == first["steps"] + 5
    assert totals["images_seen"] == first["images_seen"] + 20
    assert totals["cpu_hours"] == pytest.approx(first["cpu_hours"] + 0.1 + 0.25)
    assert totals["wall_hours"] == pytest.approx(first["wall_hours"] + 0.2 + 0.5)

    with one_thread():  # through the loop: the run's compute starts from the sum
        config = tiny_config(
            tmp_path / "run", init_from=specs, options={**TINY_OPTIONS, "lambda_attr": 1.0}
        )
        stopped = train(config, should_stop=lambda: True)
    checkpoint = Path(stopped.checkpoint or "")
    start = load_state(checkpoint)
    assert_same(start["nets"]["netC"], critic_weights)
    assert start["compute"]["base"]["cpu_hours"] == pytest.approx(totals["cpu_hours"])

    critic.unlink()  # a resume restores nets and compute from its checkpoint, not the sources
    with one_thread():
        resumed = train(config, should_stop=lambda: True, resume=checkpoint)
    again = load_state(Path(resumed.checkpoint or ""))
    assert_same(again["nets"]["netC"], critic_weights)
    assert again["compute"]["base"] == pytest.approx(start["compute"]["base"])


def test_a_source_that_supplies_no_loaded_net_is_refused_so_no_cost_counts_twice(
    first_run: FirstRun, tmp_path: Path
) -> None:
    only_D, _ = other_discriminator(first_run, tmp_path / "d.safetensors")
    critic, _ = critic_file(tmp_path / "netC.safetensors", 7, cpu_hours=0.25)
    weights = str(first_run.weights)
    recipe = fresh_recipe(tmp_path, lambda_attr=1.0)
    before = {k: v.clone() for k, v in recipe.nets["netG"].state_dict().items()}
    cases: list[tuple[list[str], tuple[str, ...], str]] = [  # sources, skip, the one refused
        ([weights, weights], (), weights),  # given twice
        ([str(only_D), weights], (), str(only_D)),  # its netD replaced by a later source
        ([weights, str(critic)], ("netC",), str(critic)),  # its netC skipped
    ]
    for specs, skip, refused in cases:
        with pytest.raises(InitFromError, match=f"{re.escape(refused)} supplies no net"):
            init_from(recipe, specs, None, skip=skip)
        assert_same(recipe.nets["netG"].state_dict(), before)  # nothing loaded
    with pytest.raises(InitFromError, match="no generator"):  # a critic alone is no start
        init_from(recipe, str(critic), None)
    with pytest.raises(InitFromError, match="supplies no net"):  # a netC for a run without one
        init_from(fresh_recipe(tmp_path), [weights, str(critic)], None)


def test_a_critic_of_another_width_is_refused_naming_its_file(
    first_run: FirstRun, tmp_path: Path
) -> None:
    narrow, _ = critic_file(tmp_path / "narrow.safetensors", 7, cpu_hours=0.1, width=8)
    with pytest.raises(InitFromError, match=r"narrow.safetensors's netC does not fit .* width"):
        init_from(
            fresh_recipe(tmp_path, lambda_attr=1.0), [str(first_run.weights), str(narrow)], None
        )


def test_a_critic_trained_on_sketches_is_refused_for_a_run_that_makes_photos(
    first_run: FirstRun, tmp_path: Path
) -> None:
    path, _ = critic_file(tmp_path / "sketches.safetensors", 7, cpu_hours=0.1)
    critic = AttributeClassifier.load(path)
    critic.reads = "sketch"  # what attributes.py --reads sketch writes
    critic.save(path)
    recipe = fresh_recipe(tmp_path, lambda_attr=1.0)
    assert recipe.config.direction == "sketch2photo"
    with pytest.raises(InitFromError, match=r"trained on sketch images.* --reads photo"):
        init_from(recipe, [str(first_run.weights), str(path)], None)


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no committed FS2K classifier")
def test_netc_never_starts_as_the_evaluations_classifier_from_any_source(
    first_run: FirstRun, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.safetensors"
    shutil.copy(DEFAULT_WEIGHTS, copy)
    judge = AttributeClassifier.load(DEFAULT_WEIGHTS).state_dict()
    nets = {**first_run.state["nets"], "netC": judge}
    packed = pack_checkpoint({**first_run.state, "nets": nets}, tmp_path / "packed.safetensors")
    recipe = fresh_recipe(tmp_path, lambda_attr=1.0)
    before = {k: v.clone() for k, v in recipe.nets["netC"].state_dict().items()}
    for specs in ([str(first_run.weights), str(copy)], [str(packed)]):
        with pytest.raises(InitFromError, match="evaluation's attribute classifier"):
            init_from(recipe, specs, None)
        assert_same(recipe.nets["netC"].state_dict(), before)  # nothing loaded


def test_netc_never_starts_as_the_evaluations_classifier_of_sketches(
    first_run: FirstRun, tmp_path: Path
) -> None:
    if not JUDGE_WEIGHTS["sketch"].is_file():
        pytest.skip("no committed classifier of sketches")
    judge = AttributeClassifier.load(JUDGE_WEIGHTS["sketch"]).state_dict()
    nets = {**first_run.state["nets"], "netC": judge}
    packed = pack_checkpoint({**first_run.state, "nets": nets}, tmp_path / "packed.safetensors")
    with pytest.raises(InitFromError, match=r"attribute classifier \(fs2k_sketch_attributes"):
        init_from(fresh_recipe(tmp_path, lambda_attr=1.0), [str(packed)], None)


def test_init_from_and_init_skip_repeat_on_the_command_line(tmp_path: Path) -> None:
    p = argparse.ArgumentParser()
    _configure_train(p)
    args = p.parse_args(
        ["--recipe", "pix2pix", "--data", "synthetic://4", "--init-from", "a.safetensors",
         "--init-from", "netC.safetensors", "--init-skip", "netD", "--init-skip", "netD_1"]
    )  # fmt: skip
    config = build_config(args)
    assert config.init_from == ("a.safetensors", "netC.safetensors")
    assert config.init_skip == ("netD", "netD_1")
    # one string, as a config file or --set gives it, is one source
    assert tiny_config(tmp_path, init_from="a.safetensors").init_from == ("a.safetensors",)
    assert tiny_config(tmp_path, init_skip="netD", init_from=None).init_skip == ("netD",)
    assert tiny_config(tmp_path, init_from=None).init_from == ()
