"""The training loop: schedule, AMP, channels_last, logs, sample grids, stop, publish gating."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from PIL import Image

from services.trainer.config import TrainConfig
from services.trainer.data.loading import open_run_data
from services.trainer.data.synthetic import write_paired_folders
from services.trainer.engine.checkpoint import recipe_from_checkpoint
from services.trainer.engine.distributed import DistContext
from services.trainer.engine.loop import run_dir_for, train
from services.trainer.engine.progress import Progress
from services.trainer.engine.schedules import LinearDecay, PacedDecay
from services.trainer.publishing.publish import publish_recipe, should_serve
from shared.registry import Registry
from tests.helpers import make_manifest, write_files
from tests.trainer.tiny_runs import load_state, one_thread, tiny_config

LR = 2e-4


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_linear_decay_is_constant_then_linear_to_zero() -> None:
    rule = LinearDecay(epochs=2, epochs_decay=3)
    assert [rule(e) for e in range(6)] == pytest.approx([1, 1, 0.75, 0.5, 0.25, 0])


def test_paced_decay_is_constant_then_linear_to_zero_over_the_progress() -> None:
    rule = PacedDecay(epochs=2, epochs_decay=2)
    got = []
    for progress in (0.0, 0.5, 0.75, 1.0, 1.2):
        rule.progress = progress
        got.append(rule(0))
    assert got == pytest.approx([1, 1, 0.5, 0, 0])
    never = PacedDecay(epochs=3, epochs_decay=0)
    never.progress = 1.5
    assert never(0) == 1


def lrs_by_step(run_dir: Path) -> list[float]:
    records = [r for r in read_log(run_dir) if r["event"] == "train"]
    assert [r["step"] for r in records] == list(range(1, len(records) + 1))
    return [r["lr"]["G"] for r in records]


def test_budget_schedule_ends_a_run_cut_short_by_max_steps_at_a_low_rate(tmp_path: Path) -> None:
    """9 of the 15 planned steps: the epochs schedule stops at 2/3 of the rate, the budget one
    decays over the 9 steps (constant for the first third, then down by 1/6 a step)."""
    by_epochs = train(tiny_config(tmp_path / "epochs", max_steps=9))
    paced = train(tiny_config(tmp_path / "paced", max_steps=9, schedule="budget"))
    assert (by_epochs.step, paced.step) == (9, 9)
    assert lrs_by_step(tmp_path / "epochs") == pytest.approx([LR] * 5 + [LR * 2 / 3] * 4)
    fifths = [LR * k / 6 for k in (5, 4, 3, 2, 1)]
    assert lrs_by_step(tmp_path / "paced") == pytest.approx([LR] * 4 + fifths)


def test_budget_schedule_decays_within_the_cpu_budget(tmp_path: Path) -> None:
    """A run its CPU budget stops long before its 250 planned steps still ends its decay."""
    fields = {"epochs": 25, "epochs_decay": 25, "cpu_budget_s": 1.0, "eval_every": 0}
    progress: list[Progress] = []
    with one_thread():
        config = tiny_config(tmp_path / "paced", schedule="budget", **fields)
        final = train(config, on_progress=progress.append)
        by_epochs = train(tiny_config(tmp_path / "epochs", **fields))
    assert 0 < final.step < 250
    # the ETA counts down to the end of the budget, not of the 250 steps (several seconds)
    last = [p for p in progress if p.state == "running"][-1]
    assert last.eta_s is not None
    assert last.eta_s < 1.0
    assert 0 < by_epochs.step < 250
    paced = lrs_by_step(tmp_path / "paced")
    assert paced[0] == LR
    assert all(later <= earlier for earlier, later in pairwise(paced))
    assert paced[-1] < LR / 2
    assert lrs_by_step(tmp_path / "epochs")[-1] == LR  # still in the constant half


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path: Path) -> None:
    """Two trainings launched together (one per core) must not write into one folder."""
    config = tiny_config(tmp_path, model_name="faces-a").model_copy(update={"run_dir": None})
    first, second = run_dir_for(config, None), run_dir_for(config, None)
    assert first != second
    assert first.parent == second.parent
    assert first.name.startswith("faces-a-")
    assert second.name.startswith("faces-a-")
    explicit = tiny_config(tmp_path / "mine")
    assert run_dir_for(explicit, None) == tmp_path / "mine"


def test_run_logs_jsonl_tensorboard_and_sample_grids_with_decaying_lr(tmp_path: Path) -> None:
    """3 epochs of 5 steps: lr constant in epoch 1, then 2/3 and 1/3 of it (stepped per epoch)."""
    run_dir = tmp_path / "run"
    progress: list[Progress] = []
    final = train(tiny_config(run_dir), on_progress=progress.append)

    assert final.state == "finished"
    assert (final.step, final.total_steps) == (15, 15)
    assert (final.epoch, final.total_epochs) == (3, 3)
    records = read_log(run_dir)
    lr_by_step = {r["step"]: r["lr"]["G"] for r in records if r["event"] == "train"}
    assert sorted(lr_by_step) == list(range(1, 16))
    expected = [LR] * 5 + [LR * 2 / 3] * 5 + [LR / 3] * 5
    assert [lr_by_step[s] for s in range(1, 16)] == pytest.approx(expected)
    train_record = next(r for r in records if r["event"] == "train")
    assert set(train_record["losses"]) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    assert train_record["images_per_s"] > 0
    assert train_record["epoch"] == 1

    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [5, 10, 15]  # every epoch end (eval_every=1)
    assert all({"val_l1", "psnr", "ssim"} <= set(r["metrics"]) for r in evals)
    for r in evals:  # 3 rows (real_A, fake_B, real_B) x 2 held-out items of 32 px, 2 px gaps
        grid = Image.open(r["grid"])
        assert grid.size == (2 * 34 + 2, 3 * 34 + 2)
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "step_000005.png",
        "step_000010.png",
        "step_000015.png",
    ]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/G_L1", "lr/G", "perf/images_per_s", "metrics/ssim"} <= tags
    assert len(events.Scalars("loss/G_L1")) == 15

    states = [p.state for p in progress]
    assert states.count("evaluating") == 3
    assert states[-1] == "finished"
    running = [p for p in progress if p.state == "running"]
    assert running[-1].eta_s == 0
    assert running[0].eta_s is not None
    assert running[0].eta_s > 0
    assert final.checkpoint
    assert Path(final.checkpoint).name == "step_000015.pt"
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    assert json.loads((run_dir / "config.json").read_text())["recipe"] == "pix2pix"


def test_bf16_autocast_with_channels_last_trains_on_cpu(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", amp="bf16", channels_last=True, max_steps=3)
    final = train(config)
    assert final.state == "finished"
    assert final.step == 3
    assert final.losses
    assert all(math.isfinite(v) for v in final.losses.values())
    assert math.isfinite(final.metrics["val_l1"])


def test_fp16_autocast_checkpoints_its_grad_scaler(tmp_path: Path) -> None:
    final = train(tiny_config(tmp_path / "run", amp="fp16", max_steps=2))
    assert final.state == "finished"
    assert final.checkpoint is not None
    scaler = load_state(Path(final.checkpoint))["scaler"]
    assert scaler["scale"] > 0
    assert "growth_interval" in scaler


def test_should_stop_checkpoints_cancels_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    asked = []

    def stop_after_three() -> bool:
        asked.append(1)
        return len(asked) > 3

    stopped = train(tiny_config(run_dir), should_stop=stop_after_three)
    assert stopped.state == "canceled"
    assert stopped.step == 3
    assert stopped.checkpoint
    assert Path(stopped.checkpoint).name == "step_000003.pt"
    state = load_state(Path(stopped.checkpoint))
    assert (state["step"], state["epoch"], state["batch"]) == (3, 0, 3)

    resumed = train(tiny_config(run_dir), resume=Path(stopped.checkpoint))
    assert resumed.state == "finished"
    assert resumed.step == 15
    steps = [r["step"] for r in read_log(run_dir) if r["event"] == "train"]
    assert steps == list(range(1, 16))  # one log, continued, no step twice


def test_unknown_recipe_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"known: .*pix2pix"):
        train(tiny_config(tmp_path, recipe="pix3pix"))


def test_data_without_val_split_holds_out_a_fixed_slice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_paired_folders(data, n_train=10, n_val=0, size=32)
    config = tiny_config(tmp_path, data=str(data))
    a = open_run_data(config, "paired", 32, 2, DistContext(torch.device("cpu")))
    b = open_run_data(config, "paired", 32, 2, DistContext(torch.device("cpu")))
    assert len(a.heldout) == 1  # type: ignore[arg-type]
    assert len(a.train) == 9
    assert a.heldout.indices == b.heldout.indices  # type: ignore[attr-defined]
    assert set(a.heldout.indices).isdisjoint(a.train.dataset.indices)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("policy", "metric", "new", "served", "moves"),
    [
        ("if-better", "val_l1", {"val_l1": 0.3}, {"val_l1": 0.2}, False),
        ("if-better", "val_l1", {"val_l1": 0.2}, {"val_l1": 0.2}, True),  # not worse
        ("if-better", "ssim", {"ssim": 0.5}, {"ssim": 0.6}, False),  # higher is better
        ("if-better", "ssim", {"ssim": 0.7}, {"ssim": 0.6}, True),
        ("if-better", "val_l1", {"val_l1": 0.9}, None, True),  # nothing served yet
        ("if-better", "val_l1", {"val_l1": 0.9}, {"ssim": 0.1}, True),  # served has no val_l1
        ("if-better", "val_l1", {}, {"val_l1": 0.2}, False),  # new has no val_l1
        ("always", "val_l1", {"val_l1": 0.9}, {"val_l1": 0.1}, True),
        ("never", "val_l1", {"val_l1": 0.1}, None, False),
    ],
)
def test_should_serve_rules(policy, metric, new, served, moves) -> None:
    assert should_serve(policy, metric, new, served)[0] is moves


def test_a_worse_version_is_published_but_not_served_and_always_serves(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    name = "sketch2photo-pix2pix"
    files = write_files(tmp_path / "fake", {"model.onnx": b"x"})
    best = registry.publish(make_manifest(name, metrics={"val_l1": 0.0}), files)
    assert registry.current(name) == best.version == 1

    final = train(tiny_config(tmp_path / "run", max_steps=2), registry=registry)
    (worse,) = final.published
    assert (worse.version, worse.served) == (2, False)
    assert registry.current(name) == 1
    assert registry.manifest(name, 2).metrics["val_l1"] > 0  # published all the same

    recipe, state = recipe_from_checkpoint(Path(final.checkpoint or ""))
    (forced,) = publish_recipe(
        recipe,
        registry,
        metrics=state["metrics"],
        steps=state["step"],
        policy="always",
        metric="val_l1",
    )
    assert forced.served
    assert registry.current(name) == forced.version == 3
    assert registry.manifest(name, 3).parent_version == 1


def test_publishes_every_n_epochs_and_at_the_end(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    config = tiny_config(tmp_path / "run", epochs_decay=1, publish_every=1, publish="always")
    final = train(config, registry=registry)
    assert [(p.version, p.served) for p in final.published] == [(1, True), (2, True)]
    assert [registry.manifest("sketch2photo-pix2pix", v).steps for v in (1, 2)] == [5, 10]
    records = [r for r in read_log(tmp_path / "run") if r["event"] == "publish"]
    assert [r["step"] for r in records] == [5, 10]


def test_config_overrides_reach_the_recipe(tmp_path: Path) -> None:
    config = TrainConfig.load(
        recipe="pix2pix", data="synthetic://4", overrides=["options.lambda_l1=5", "batch_size=3"]
    )
    assert config.options == {"lambda_l1": 5}
    assert config.batch_size == 3
