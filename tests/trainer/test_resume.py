"""Exact resume: a run killed with SIGKILL and resumed ends bit-identical to an unbroken run.

Run A trains 12 steps in one go. Run B is the CLI in a subprocess (same config file), killed
with SIGKILL once its checkpoint at step 7 exists (mid-epoch: epoch 2, batch 2), then resumed
from that checkpoint to step 12. Both cross an epoch end with a learning-rate decay step and
evaluations, and the U-Net draws dropout masks; every tensor of every net, optimizer and
scheduler, and the RNG states, must be equal (CPU, deterministic, one thread, no workers).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from services.trainer.config import TrainConfig
from services.trainer.engine.loop import train
from tests.trainer.tiny_runs import load_state, python, subprocess_env, tiny_fields

KILL_AT = 7
STEPS = 12


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Nested dicts / lists of tensors and plain values: equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict), where
        assert set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def kill_after_checkpoint(config_file: Path, run_dir: Path, model_root: Path) -> Path:
    """Start the CLI, SIGKILL it as soon as step_00000{KILL_AT}.pt exists; return that file."""
    checkpoint = run_dir / "checkpoints" / f"step_{KILL_AT:06d}.pt"
    proc = subprocess.Popen(
        [
            python(),
            "-m",
            "services.trainer",
            "--model-root",
            str(model_root),
            "train",
            "--config",
            str(config_file),
            "--run-dir",
            str(run_dir),
            "--publish",
            "never",
            "--set",
            f"checkpoint_every={KILL_AT}",
        ],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while not checkpoint.exists():
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else b""
                pytest.fail(f"trainer exited early ({proc.returncode}): {err!r}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint at step 7 within 120 s")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL  # a real kill, not a clean end
    return checkpoint


def test_killed_and_resumed_run_matches_the_uninterrupted_one(tmp_path: Path) -> None:
    # 64 px: the U-Net then has a dropout block, so training draws from torch's RNG
    fields = tiny_fields(tmp_path / "unused", deterministic=True, image_size=64)
    del fields["run_dir"]
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps(fields))

    config_a = TrainConfig.model_validate(
        {**fields, "run_dir": str(tmp_path / "a"), "max_steps": STEPS}
    )
    final_a = train(config_a)
    assert final_a.step == STEPS
    assert final_a.checkpoint is not None

    run_b = tmp_path / "b"
    checkpoint = kill_after_checkpoint(config_file, run_b, tmp_path / "models")
    killed = load_state(checkpoint)
    assert (killed["step"], killed["epoch"], killed["batch"]) == (KILL_AT, 1, 2)

    config_b = TrainConfig.model_validate({**fields, "run_dir": str(run_b), "max_steps": STEPS})
    final_b = train(config_b, resume=checkpoint)
    assert final_b.state == "finished"
    assert final_b.step == STEPS

    a, b = load_state(Path(final_a.checkpoint)), load_state(Path(final_b.checkpoint or ""))
    assert (b["step"], b["epoch"], b["batch"]) == (STEPS, 2, 2)
    for key in ("nets", "optimizers", "schedulers", "extra", "rng"):
        assert_same(a[key], b[key], key)
    assert a["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(2e-4 / 3)  # epoch 3
    assert final_b.metrics == pytest.approx(final_a.metrics)
