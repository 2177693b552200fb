"""DDP on two CPU processes (gloo): identical weights on both ranks, synchronised batch norm.

One torchrun launch (``ddp_worker.py``) serves every test here: it checks GlooSyncBatchNorm
against a fixed batch, then trains a tiny pix2pix through the CLI with each rank dumping its
weights.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from shared.registry import Registry
from tests.trainer.tiny_runs import REPO, SYNC_BN_SEED, load_state, python, subprocess_env

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    cmd = [
        python(),
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(WORKER),
        str(root / "sync_bn"),
        "--model-root",
        str(root / "models"),
        "train",
        "--recipe",
        "pix2pix-rank-dump",
        "--data",
        "synthetic://8?val=2",
        "--run-dir",
        str(root / "run"),
        "--max-steps",
        "3",
        "--set",
        "image_size=32",
        "--set",
        "batch_size=2",
        "--set",
        "num_workers=0",
        "--set",
        "epochs=1",
        "--set",
        "epochs_decay=1",
        "--set",
        "eval_samples=2",
        "--set",
        "options.ngf=4",
        "--set",
        "options.ndf=4",
        "--set",
        "log_every=1",
    ]
    done = subprocess.run(
        cmd, env=subprocess_env(), cwd=REPO, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_two_ranks_train_pix2pix_to_identical_weights(ddp_run: Path) -> None:
    run_dir = ddp_run / "run"
    init0 = load_state(run_dir / "init-rank0.pt")
    final0, final1 = (load_state(run_dir / f"final-rank{r}.pt") for r in (0, 1))
    assert "GlooSyncBatchNorm" in final0["types"]
    assert "BatchNorm2d" not in final0["types"]
    for net in ("netG", "netD"):
        for key, value in final0[net].items():
            # parameters, and batch-norm running statistics too (the ranks saw different data)
            assert torch.equal(value, final1[net][key]), f"{net}.{key} differs between ranks"
    changed = [
        k
        for k, v in final0["netG"].items()
        if v.is_floating_point() and not torch.equal(v, init0["netG"][k])
    ]
    assert any(k.endswith("weight") for k in changed)


def test_rank_zero_alone_checkpoints_logs_and_publishes(ddp_run: Path) -> None:
    run_dir = ddp_run / "run"
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("step_*.pt"))
    assert checkpoints == ["step_000002.pt", "step_000003.pt"]  # epoch end (2 steps), the end
    saved = load_state(run_dir / "checkpoints" / "latest.pt")
    final0 = load_state(run_dir / "final-rank0.pt")
    for key, value in saved["nets"]["netG"].items():
        assert torch.equal(value, final0["netG"][key])
    assert saved["data"]["world_size"] == 2
    steps = [line for line in (run_dir / "log.jsonl").read_text().splitlines() if '"train"' in line]
    assert len(steps) == 3  # one record per step, not one per rank
    assert Registry(ddp_run / "models").current("sketch2photo-pix2pix") == 1


def test_gloo_sync_batchnorm_equals_batchnorm_on_the_whole_batch(ddp_run: Path) -> None:
    r0, r1 = (load_state(ddp_run / "sync_bn" / f"rank{r}.pt") for r in (0, 1))
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(SYNC_BN_SEED))
    x.requires_grad_(True)
    bn = nn.BatchNorm2d(3)
    y = bn(x)
    weights = torch.cat([torch.arange(y[:2].numel()), torch.arange(y[2:].numel())])
    (y * weights.view_as(y)).sum().backward()

    torch.testing.assert_close(torch.cat([r0["y"], r1["y"]]), y.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([r0["grad"], r1["grad"]]), x.grad, atol=1e-4, rtol=1e-4)
    for r in (r0, r1):
        torch.testing.assert_close(r["mean"], bn.running_mean)
        torch.testing.assert_close(r["var"], bn.running_var)
    # DDP averages the ranks' weight gradients; their sum is the whole batch's gradient
    torch.testing.assert_close(r0["wgrad"] + r1["wgrad"], bn.weight.grad, atol=1e-3, rtol=1e-4)
